"""Reads of users that need rules: the email column is encrypted, so lookups use its blind index."""

from __future__ import annotations

from governance.access.models import EMAIL_INDEX_PURPOSE, User
from governance.core.encryption import blind_index_candidates, normalise_email


def user_find_by_email(email: str) -> User | None:
    """The user with this email (case and surrounding spaces ignored), or None.

    The index is matched under every configured key, so the lookup keeps working between
    a key switch and the end of `rotate_encryption_key`. Email is not unique in the
    database; if several users share it, the oldest account wins.
    """
    normalised = normalise_email(email or "")
    if not normalised:
        return None
    candidates = blind_index_candidates(normalised, purpose=EMAIL_INDEX_PURPOSE)
    return User.objects.filter(email_index__in=candidates).order_by("pk").first()
