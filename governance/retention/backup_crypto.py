"""Encryption at rest for the portal's own database backups (C24): streamed AES-256-GCM.

Why our own format rather than django-dbbackup's GPG: it needs a gpg binary and keyring
on every worker, and its restore goes through the ORM-free `pg_restore` anyway; AES-GCM
from `cryptography` (already installed) is a few dozen lines and authenticates every byte.

File layout (version 1):

    b"ASSYSTDB" | 0x01 | key id (8) | nonce prefix (7) | metadata length (4) | metadata JSON
    then chunks: ciphertext length (4) | ciphertext+tag, one per MiB of plaintext

Each chunk's nonce is the random prefix, a 4-byte counter and a final-chunk flag, and its
associated data is the whole header: chunks cannot be reordered, dropped, cut off at the
end or moved to another file, and the metadata cannot be edited, without the tag check
failing. The key comes from RETENTION_BACKUP_KEY (HKDF-SHA256), separate from the field
encryption key: a leaked backup key alone still shows only field ciphertext. Older keys
stay readable through RETENTION_BACKUP_KEY_FALLBACKS; the key id in the header picks one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MAGIC = b"ASSYSTDB"
VERSION = b"\x01"
KEY_ID_LENGTH = 8
NONCE_PREFIX_LENGTH = 7
CHUNK = 1024 * 1024
TAG = 16
MAX_METADATA = 64 * 1024
MIN_KEY_LENGTH = 32


class BackupError(Exception):
    """A backup could not be made, read or restored; the message says why."""


class BackupKeyError(BackupError):
    """No configured key matches the backup (wrong key, or the key is missing)."""


class BackupIntegrityError(BackupError):
    """The file is not an intact backup of ours: tampered, cut short or corrupt."""


@dataclass(frozen=True)
class BackupKey:
    key_id: bytes
    aead: AESGCM

    @classmethod
    def derive(cls, secret: str) -> BackupKey:
        material = HKDF(algorithm=hashes.SHA256(), length=64, salt=b"assyst-db-backup", info=b"v1").derive(
            secret.encode()
        )
        key_id = hashlib.sha256(b"backup-key-id" + material[32:]).digest()[:KEY_ID_LENGTH]
        return cls(key_id=key_id, aead=AESGCM(material[:32]))


def backup_keys() -> list[BackupKey]:
    """The current key first, then the fallbacks (read-only, for older backups)."""
    secrets_ = [settings.RETENTION_BACKUP_KEY, *settings.RETENTION_BACKUP_KEY_FALLBACKS]
    if not settings.RETENTION_BACKUP_KEY:
        raise ImproperlyConfigured(
            "RETENTION_BACKUP_KEY is not set: database backups are never written unencrypted. "
            "Set it to at least 32 random characters (see .env.example)."
        )
    if any(len(s) < MIN_KEY_LENGTH for s in secrets_):
        raise ImproperlyConfigured(f"RETENTION_BACKUP_KEY(_FALLBACKS) must be at least {MIN_KEY_LENGTH} characters.")
    return [BackupKey.derive(s) for s in secrets_]


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")


def encrypt_stream(chunks: Iterable[bytes], out: BinaryIO, *, metadata: dict) -> None:
    """Encrypt plaintext `chunks` (any sizes) into `out` with the current key."""
    key = backup_keys()[0]
    prefix = os.urandom(NONCE_PREFIX_LENGTH)
    meta = json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode()
    header = MAGIC + VERSION + key.key_id + prefix + struct.pack(">I", len(meta)) + meta
    out.write(header)
    counter = 0
    buffer = b""

    def emit(block: bytes, last: bool) -> None:
        sealed = key.aead.encrypt(_nonce(prefix, counter, last), block, header)
        out.write(struct.pack(">I", len(sealed)) + sealed)

    for piece in chunks:
        buffer += piece
        while len(buffer) > CHUNK:
            # Strictly more than a chunk left: this one is not the last.
            emit(buffer[:CHUNK], last=False)
            buffer = buffer[CHUNK:]
            counter += 1
    emit(buffer, last=True)


def read_header(src: BinaryIO) -> tuple[bytes, bytes, bytes, dict]:
    """(header bytes, key id, nonce prefix, metadata); refuses anything not ours."""
    fixed = src.read(len(MAGIC) + 1 + KEY_ID_LENGTH + NONCE_PREFIX_LENGTH + 4)
    if len(fixed) < len(MAGIC) + 1 or fixed[: len(MAGIC)] != MAGIC:
        raise BackupIntegrityError("Not an Assyst database backup (unknown file header).")
    if fixed[len(MAGIC) : len(MAGIC) + 1] != VERSION:
        raise BackupIntegrityError("Unsupported backup format version.")
    if len(fixed) < len(MAGIC) + 1 + KEY_ID_LENGTH + NONCE_PREFIX_LENGTH + 4:
        raise BackupIntegrityError("Backup header is cut short.")
    at = len(MAGIC) + 1
    key_id, prefix = fixed[at : at + KEY_ID_LENGTH], fixed[at + KEY_ID_LENGTH : at + KEY_ID_LENGTH + 7]
    (meta_len,) = struct.unpack(">I", fixed[-4:])
    if meta_len > MAX_METADATA:
        raise BackupIntegrityError("Backup header is corrupt (metadata too long).")
    meta = src.read(meta_len)
    if len(meta) != meta_len:
        raise BackupIntegrityError("Backup header is cut short.")
    try:
        metadata = json.loads(meta)
    except ValueError as exc:
        raise BackupIntegrityError("Backup header is corrupt (metadata).") from exc
    # Metadata is authenticated only once the first chunk's tag checks; callers must not act on it before.
    return fixed + meta, key_id, prefix, metadata


def decrypt_stream(src: BinaryIO, out: BinaryIO) -> dict:
    """Decrypt `src` into `out`, checking every chunk; returns the (authenticated) metadata.

    Raises BackupKeyError when no configured key has the file's key id, and
    BackupIntegrityError on any tampering, truncation or trailing data. `out` may hold a
    partial plaintext after an error: callers write it to a temporary file and discard it.
    """
    header, key_id, prefix, metadata = read_header(src)
    for key in backup_keys():
        if hmac.compare_digest(key.key_id, key_id):
            break
    else:
        raise BackupKeyError(
            f"No configured backup key matches this backup (key id {key_id.hex()}): set the key it was made with "
            "as RETENTION_BACKUP_KEY or in RETENTION_BACKUP_KEY_FALLBACKS."
        )
    counter = 0
    while True:
        length = src.read(4)
        if len(length) != 4:
            raise BackupIntegrityError("Backup is cut short (its final chunk is missing).")
        (size,) = struct.unpack(">I", length)
        if size < TAG or size > CHUNK + TAG:
            raise BackupIntegrityError("Backup is corrupt (bad chunk length).")
        sealed = src.read(size)
        if len(sealed) != size:
            raise BackupIntegrityError("Backup is cut short.")
        for last in (False, True):
            try:
                block = key.aead.decrypt(_nonce(prefix, counter, last), sealed, header)
                break
            except InvalidTag:
                continue
        else:
            raise BackupIntegrityError(
                f"Backup failed its integrity check at chunk {counter}: it was altered or corrupted. Refusing it."
            )
        out.write(block)
        counter += 1
        if last:
            if src.read(1):
                raise BackupIntegrityError("Backup has data after its final chunk. Refusing it.")
            return metadata
