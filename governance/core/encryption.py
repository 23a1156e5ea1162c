"""Encryption at rest for personal data (C06), on top of django-cryptography-5.

django-cryptography gives us AES-256-CBC with an HMAC-SHA256 signature (its
`FernetBytes` and `FernetSigner`) and field plumbing (binary column, only `isnull`
lookups). Used as shipped it has three traps (shared/PITFALLS.md): the HMAC is keyed
with `SECRET_KEY` (rotating it makes every value unreadable), rotating the data key
gives `InvalidToken`, and values are pickled. This adapter fixes all three:

* Both the AES key and the HMAC key are derived from `CRYPTOGRAPHY_KEY` alone
  (HKDF-SHA256), so `SECRET_KEY` can rotate freely.
* Every ciphertext starts with a version byte and an 8-byte key id, so reads pick the
  right key out of `CRYPTOGRAPHY_KEY` + `CRYPTOGRAPHY_KEY_FALLBACKS`, and
  `rotate_encryption_key` can tell which rows still need re-encryption (resumable).
* Values are serialised as JSON, not pickle: a leaked key must not become code
  execution.

Equal plaintexts encrypt differently, so lookups go through a keyed HMAC "blind index"
column (`blind_index()`), whose key is also derived from `CRYPTOGRAPHY_KEY`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models
from django_cryptography.core.signing import BadSignature, FernetSigner
from django_cryptography.fields import EncryptedMixin
from django_cryptography.utils.crypto import FernetBytes

FORMAT_VERSION = b"\x01"
KEY_ID_LENGTH = 8
_HEADER_LENGTH = 1 + KEY_ID_LENGTH


class DecryptionError(Exception):
    """A stored value could not be decrypted with any configured key."""


@dataclass(frozen=True)
class DataKey:
    """One data key: AES-256 key, HMAC key, blind-index key and a public key id."""

    key_id: bytes
    fernet: FernetBytes
    index_key: bytes

    @classmethod
    def derive(cls, secret: str) -> DataKey:
        material = HKDF(algorithm=hashes.SHA256(), length=96, salt=b"assyst-field-encryption", info=b"v1").derive(
            secret.encode()
        )
        enc_key, mac_key, index_key = material[:32], material[32:64], material[64:]
        key_id = hashlib.sha256(b"key-id" + mac_key).digest()[:KEY_ID_LENGTH]
        return cls(key_id=key_id, fernet=FernetBytes(enc_key, FernetSigner(mac_key)), index_key=index_key)

    def encrypt(self, plaintext: bytes) -> bytes:
        return FORMAT_VERSION + self.key_id + self.fernet.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self.fernet.decrypt(token[_HEADER_LENGTH:])
        except BadSignature as exc:
            raise DecryptionError("ciphertext failed its integrity check") from exc


@lru_cache(maxsize=16)
def _derive(secret: str) -> DataKey:
    return DataKey.derive(secret)


def current_key() -> DataKey:
    return _derive(settings.FIELD_ENCRYPTION_KEY)


def keyring() -> list[DataKey]:
    """The current key first, then the fallbacks still accepted for reading."""
    return [current_key(), *(_derive(s) for s in settings.FIELD_ENCRYPTION_KEY_FALLBACKS)]


def key_id_of(token: bytes) -> bytes:
    token = bytes(token)
    if token[:1] != FORMAT_VERSION or len(token) < _HEADER_LENGTH:
        raise DecryptionError("not a ciphertext of a known format")
    return token[1:_HEADER_LENGTH]


def encrypt_value(value: Any, key: DataKey | None = None) -> bytes:
    return (key or current_key()).encrypt(json.dumps(value, separators=(",", ":")).encode())


def decrypt_value(token: bytes) -> Any:
    token = bytes(token)
    wanted = key_id_of(token)
    for key in keyring():
        if hmac.compare_digest(key.key_id, wanted):
            return json.loads(key.decrypt(token))
    raise DecryptionError(
        "no configured key matches this value's key id; add the old key to CRYPTOGRAPHY_KEY_FALLBACKS"
    )


def normalise_email(value: str) -> str:
    return value.strip().lower()


def blind_index(value: str, *, purpose: str, key: DataKey | None = None) -> str:
    """Keyed HMAC of a normalised value, for equality lookups on an encrypted column."""
    key = key or current_key()
    return hmac.new(key.index_key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def blind_index_candidates(value: str, *, purpose: str) -> list[str]:
    """Index values under every configured key, so lookups work during a rotation."""
    return [blind_index(value, purpose=purpose, key=k) for k in keyring()]


class _EncryptedField(EncryptedMixin):
    """Replaces django-cryptography's key handling, serialisation and migration path."""

    wasinstance = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("key") or kwargs.get("ttl"):
            raise TypeError("per-field keys and ttl are not supported; keys come from CRYPTOGRAPHY_KEY")
        super().__init__(*args, **kwargs)
        # The library builds a FernetBytes keyed from SECRET_KEY here; we never use it.
        self._fernet = None

    def _dump(self, value: Any) -> bytes:
        return encrypt_value(value)

    def _load(self, value: bytes) -> Any:
        return decrypt_value(value)

    def clone(self):
        name, path, args, kwargs = self.deconstruct()
        return self.__class__(*args, **kwargs)

    def deconstruct(self):
        # Skip EncryptedMixin.deconstruct: migrations must name our class, not the base.
        return super(EncryptedMixin, self).deconstruct()


class EncryptedCharField(_EncryptedField, models.CharField):
    """A CharField stored as AES-256 ciphertext (C06)."""

    base_class = models.CharField


class EncryptedEmailField(_EncryptedField, models.EmailField):
    """An EmailField stored as AES-256 ciphertext (C06); pair it with a blind index."""

    base_class = models.EmailField


class EncryptedTextField(_EncryptedField, models.TextField):
    """Free text marked sensitive, stored as AES-256 ciphertext (C06)."""

    base_class = models.TextField


# Re-encryption of data kept outside encrypted columns (e.g. evidence files). Apps register
# a callable `hook(*, key, dry_run) -> (checked, rewritten)` in their AppConfig.ready();
# `rotate_encryption_key` runs each after the columns.
ROTATION_HOOKS: dict[str, Callable[..., tuple[int, int]]] = {}


def encrypted_fields(model: type[models.Model]) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if isinstance(f, _EncryptedField)]


class BlindIndexField(models.CharField):
    """Keyed HMAC of another (encrypted) field, kept in step on every save.

    Lookups: `Model.objects.filter(email_index__in=blind_index_candidates(v, purpose=...))`.
    """

    def __init__(self, *args: Any, source: str = "", purpose: str = "", **kwargs: Any) -> None:
        self.source, self.purpose = source, purpose
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("db_index", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.update(source=self.source, purpose=self.purpose)
        return name, path, args, kwargs

    def compute(self, instance: models.Model, key: DataKey | None = None) -> str:
        value = getattr(instance, self.source)
        return blind_index(normalise_email(value), purpose=self.purpose, key=key) if value else ""

    def pre_save(self, model_instance: models.Model, add: bool) -> str:
        value = self.compute(model_instance)
        setattr(model_instance, self.attname, value)
        return value


class BlindIndexedSaveMixin(models.Model):
    """Adds blind-index columns to `update_fields` when their source field is saved."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            extra = {
                f.name
                for f in self._meta.concrete_fields
                if isinstance(f, BlindIndexField) and f.source in update_fields
            }
            kwargs["update_fields"] = set(update_fields) | extra
        super().save(*args, **kwargs)
