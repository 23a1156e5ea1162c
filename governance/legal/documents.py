"""Encrypted storage of legal documents (orders, objection letters).

Same approach as incident evidence (incidents/evidence.py), whose checks are reused:
the type comes from the file's first bytes, size and types follow EVIDENCE_MAX_BYTES
and EVIDENCE_ALLOWED_TYPES, bytes are encrypted with the current field-encryption
key (key id header, so rotation and fallbacks work) under a random name, and the
sha256 of the plaintext is checked on every read. Files live under their own root,
LEGAL_DOCUMENT_ROOT, so access to evidence storage never includes legal orders.
"""

from __future__ import annotations

from governance.core.encrypted_files import EncryptedFileStore
from governance.core.encryption import DataKey
from governance.legal.models import LegalDocument
from incidents.evidence import evidence_check_file, safe_filename

__all__ = ["check_file", "safe_filename", "write_encrypted", "read_decrypted", "remove", "legal_documents_rotate"]

check_file = evidence_check_file
STORE = EncryptedFileStore("LEGAL_DOCUMENT_ROOT", "legal document")


def write_encrypted(data: bytes) -> str:
    """Encrypt and store `data`; return its random storage name."""
    return STORE.write(data)


def remove(stored_name: str) -> None:
    STORE.remove(stored_name)


def read_decrypted(document: LegalDocument) -> bytes:
    return STORE.read(document.stored_name, document.sha256)


def legal_documents_rotate(*, key: DataKey, dry_run: bool = False) -> tuple[int, int]:
    """Re-encrypt every legal document not yet under `key` (hook of `rotate_encryption_key`)."""
    files = LegalDocument.objects.order_by("pk").values_list("stored_name", "sha256").iterator(chunk_size=200)
    return STORE.rotate(files, key=key, dry_run=dry_run)
