"""Files encrypted at rest with the field-encryption data key (evidence, legal documents).

Same format and key ids as encrypted columns, so fallbacks and `rotate_encryption_key`
work the same way. Files get random names under their store's root (never a user's
filename), are written atomically with owner-only permissions, and the plaintext's
SHA-256 recorded by the caller is checked on every read.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from governance.core.encryption import DataKey, DecryptionError, current_key, key_id_of, keyring


class EncryptedFileStore:
    """A folder of encrypted files; `root_setting` names the setting holding its path."""

    def __init__(self, root_setting: str, label: str) -> None:
        self.root_setting, self.label = root_setting, label

    def path_of(self, stored_name: str) -> Path:
        root = Path(getattr(settings, self.root_setting)).resolve()
        path = (root / stored_name).resolve()
        if root not in path.parents:
            raise ValidationError(f"Invalid {self.label} storage name.")
        return path

    @staticmethod
    def _write_atomically(path: Path, token: bytes) -> None:
        """Private temporary file, fsync, rename: a crash leaves the old or the new content."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(token)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def write(self, data: bytes) -> str:
        """Encrypt and store `data` under the current key; return its random storage name."""
        stored_name = f"{secrets.token_hex(1)}/{secrets.token_hex(24)}.bin"
        self._write_atomically(self.path_of(stored_name), current_key().encrypt(data))
        return stored_name

    def read(self, stored_name: str, sha256: str) -> bytes:
        token = self.path_of(stored_name).read_bytes()
        wanted = key_id_of(token)
        for key in keyring():
            if hmac.compare_digest(key.key_id, wanted):
                data = key.decrypt(token)
                break
        else:
            raise DecryptionError("no configured key matches this file's key id")
        if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), sha256):
            raise DecryptionError(f"{self.label} does not match its recorded sha256")
        return data

    def remove(self, stored_name: str) -> None:
        self.path_of(stored_name).unlink(missing_ok=True)

    def rotate(self, files: Iterable[tuple[str, str]], *, key: DataKey, dry_run: bool) -> tuple[int, int]:
        """Re-encrypt each (stored_name, sha256) not yet under `key`; each file is replaced
        atomically, so a rerun after a crash continues with what is left."""
        checked = rewritten = 0
        for stored_name, sha256 in files:
            checked += 1
            if hmac.compare_digest(key_id_of(self.path_of(stored_name).read_bytes()), key.key_id):
                continue
            rewritten += 1
            if not dry_run:
                self._write_atomically(self.path_of(stored_name), key.encrypt(self.read(stored_name, sha256)))
        return checked, rewritten
