"""Users (staff and customers) and, later, support-access requests and grants."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser

from governance.core.encryption import (
    BlindIndexedSaveMixin,
    BlindIndexField,
    EncryptedCharField,
    EncryptedEmailField,
)

EMAIL_INDEX_PURPOSE = "user.email"


class User(BlindIndexedSaveMixin, AbstractUser):
    """A person who signs in: staff (no membership) or a customer (one membership).

    Names and email are personal data, stored encrypted (C06); `email_index` is the
    blind index used to find a user by email.
    """

    first_name = EncryptedCharField("first name", max_length=150, blank=True)
    last_name = EncryptedCharField("last name", max_length=150, blank=True)
    email = EncryptedEmailField("email address", blank=True)
    email_index = BlindIndexField(source="email", purpose=EMAIL_INDEX_PURPOSE)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @property
    def is_customer(self) -> bool:
        return hasattr(self, "membership")
