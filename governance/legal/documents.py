"""Encrypted storage of legal documents (orders, objection letters).

Same approach as incident evidence (incidents/evidence.py), whose checks are reused:
the type comes from the file's first bytes, size and types follow EVIDENCE_MAX_BYTES
and EVIDENCE_ALLOWED_TYPES, bytes are encrypted with the current field-encryption
key (key id header, so rotation and fallbacks work) under a random name, and the
sha256 of the plaintext is checked on every read. Files live under their own root,
LEGAL_DOCUMENT_ROOT, so access to evidence storage never includes legal orders.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from governance.core.encryption import DataKey, DecryptionError, current_key, key_id_of, keyring
from governance.legal.models import LegalDocument
from incidents.evidence import evidence_check_file, safe_filename

__all__ = ["check_file", "safe_filename", "write_encrypted", "read_decrypted", "remove", "legal_documents_rotate"]

check_file = evidence_check_file


def _path_of(stored_name: str) -> Path:
    root = Path(settings.LEGAL_DOCUMENT_ROOT).resolve()
    path = (root / stored_name).resolve()
    if root not in path.parents:
        raise ValidationError("Invalid legal document storage name.")
    return path


def _write_atomically(path: Path, token: bytes, suffix: str) -> None:
    tmp = path.with_suffix(suffix)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(token)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_encrypted(data: bytes) -> str:
    """Encrypt and store `data`; return its random storage name."""
    stored_name = f"{secrets.token_hex(1)}/{secrets.token_hex(24)}.bin"
    path = _path_of(stored_name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_atomically(path, current_key().encrypt(data), ".part")
    return stored_name


def remove(stored_name: str) -> None:
    _path_of(stored_name).unlink(missing_ok=True)


def read_decrypted(document: LegalDocument) -> bytes:
    token = _path_of(document.stored_name).read_bytes()
    wanted = key_id_of(token)
    for key in keyring():
        if hmac.compare_digest(key.key_id, wanted):
            data = key.decrypt(token)
            break
    else:
        raise DecryptionError("no configured key matches this file's key id")
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), document.sha256):
        raise DecryptionError("legal document does not match its recorded sha256")
    return data


def legal_documents_rotate(*, key: DataKey, dry_run: bool = False) -> tuple[int, int]:
    """Re-encrypt every legal document not yet under `key` (hook of `rotate_encryption_key`)."""
    checked = rewritten = 0
    for document in LegalDocument.objects.order_by("pk").iterator(chunk_size=200):
        path = _path_of(document.stored_name)
        checked += 1
        if hmac.compare_digest(key_id_of(path.read_bytes()), key.key_id):
            continue
        rewritten += 1
        if not dry_run:
            _write_atomically(path, key.encrypt(read_decrypted(document)), ".rotating")
    return checked, rewritten
