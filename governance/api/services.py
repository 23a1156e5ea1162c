"""Service accounts and API tokens: create, issue (the secret is returned once), revoke.

Every change is audited in its transaction. Only a SHA-256 hash of a token is kept: the
secret is 256 random bits, so a fast hash is as safe as a slow one here, and checking a
token costs microseconds instead of Argon2's 100 ms on every API call.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from governance.access.models import User
from governance.access.roles import ROLE_NAMES, SECURITY_OFFICER
from governance.access.services import is_customer_admin
from governance.api import scopes as api_scopes
from governance.api.models import ApiToken, ServiceAccount
from governance.audit.services import audit_record
from governance.tenancy.models import Organisation

TOKEN_TAG = "asy"  # noqa: S105 (the public tag tokens start with, not a secret)
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
# The last-used time is written at most this often: one UPDATE per token a minute, not per call.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def split_token(raw: str) -> tuple[str, str] | None:
    """'asy_<8 chars>_<secret>' -> (prefix 'asy_<8 chars>', whole token); None if malformed."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_TAG or len(parts[1]) != 8 or not 32 <= len(parts[2]) <= 64:
        return None
    return f"{parts[0]}_{parts[1]}", raw


def _new_secret() -> tuple[str, str]:
    prefix = f"{TOKEN_TAG}_" + "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def _max_days() -> int:
    return settings.API_TOKEN_MAX_DAYS


def _check_common(name: str, scopes: list[str], expires_at: datetime, allowed: Iterable[str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    now = timezone.now()
    if not name.strip():
        errors["name"] = "Name what uses this token."
    if not scopes:
        errors["scopes"] = "Choose at least one scope."
    elif unknown := sorted(set(scopes) - set(allowed)):
        errors["scopes"] = f"Not allowed here: {', '.join(unknown)}."
    if expires_at <= now:
        errors["expires_at"] = "The expiry must be in the future."
    elif expires_at > now + timedelta(days=_max_days()):
        errors["expires_at"] = f"A token may live at most {_max_days()} days."
    return errors


# --- service accounts ---------------------------------------------------------------------


def service_account_create(*, username: str, description: str, role: str, acting_user: User) -> ServiceAccount:
    """A staff user for an integration, in one role, that can never sign in."""
    if not acting_user.has_perm("api.add_serviceaccount"):
        raise PermissionDenied("You cannot create service accounts.")
    errors = {}
    username = username.strip()
    if not username:
        errors["username"] = "Give the account a name."
    elif User.objects.filter(username__iexact=username).exists():
        errors["username"] = "This name is taken."
    if role not in ROLE_NAMES or role == SECURITY_OFFICER:
        # A security officer account may create accounts and tokens: never an integration.
        errors["role"] = "Choose a role (not Security officer)."
    if not description.strip():
        errors["description"] = "Say which integration acts as this account."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        user = User(username=username, is_staff=True, is_active=True)
        user.set_unusable_password()
        user.save()
        user.groups.add(Group.objects.get(name=role))
        account = ServiceAccount.objects.create(user=user, description=description.strip(), created_by=acting_user)
        audit_record(action="api.service_account_created", actor=acting_user, obj=account, data={"role": role})
    return account


# --- tokens -------------------------------------------------------------------------------------


def token_issue(
    *,
    service_account: ServiceAccount,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime,
    acting_user: User,
    rate_limit_per_minute: int | None = None,
) -> tuple[ApiToken, str]:
    """A staff token for a service account. Returns the token and its secret (shown once)."""
    if not acting_user.has_perm("api.add_apitoken"):
        raise PermissionDenied("You cannot issue API tokens.")
    scopes = sorted(set(scopes))
    errors = _check_common(name, scopes, expires_at, api_scopes.STAFF_SCOPES)
    if "scopes" not in errors and (missing := api_scopes.missing_permissions(service_account.user, scopes)):
        errors["scopes"] = (
            f"{service_account} lacks the permissions for: {', '.join(missing)}. Give it a role that has them first."
        )
    if not service_account.user.is_active:
        errors["service_account"] = "This service account is deactivated."
    if rate_limit_per_minute is not None and not 1 <= rate_limit_per_minute <= 10_000:
        errors["rate_limit_per_minute"] = "Between 1 and 10,000 calls a minute."
    if errors:
        raise ValidationError(errors)
    return _issue(
        kind=ApiToken.Kind.STAFF,
        user=service_account.user,
        organisation=None,
        name=name,
        scopes=scopes,
        expires_at=expires_at,
        acting_user=acting_user,
        rate_limit_per_minute=rate_limit_per_minute,
    )


def customer_token_issue(
    *, organisation: Organisation, name: str, scopes: Iterable[str], expires_at: datetime, acting_user: User
) -> tuple[ApiToken, str]:
    """A read-only token of one organisation, created by its customer admin (C09)."""
    if not is_customer_admin(acting_user, organisation):
        raise PermissionDenied("Only a customer admin of this organisation can create its API tokens.")
    scopes = sorted(set(scopes))
    errors = _check_common(name, scopes, expires_at, api_scopes.CUSTOMER_SCOPES)
    if errors:
        raise ValidationError(errors)
    return _issue(
        kind=ApiToken.Kind.CUSTOMER,
        user=acting_user,
        organisation=organisation,
        name=name,
        scopes=scopes,
        expires_at=expires_at,
        acting_user=acting_user,
        rate_limit_per_minute=None,
    )


def _issue(*, kind, user, organisation, name, scopes, expires_at, acting_user, rate_limit_per_minute):
    prefix, secret = _new_secret()
    with transaction.atomic():
        token = ApiToken.objects.with_scopes_disabled().create(
            kind=kind,
            name=name.strip()[:100],
            prefix=prefix,
            secret_hash=hash_secret(secret),
            user=user,
            organisation=organisation,
            scopes=scopes,
            expires_at=expires_at,
            rate_limit_per_minute=rate_limit_per_minute,
            created_by=acting_user,
        )
        audit_record(
            action="api.token_issued",
            actor=acting_user,
            obj=token,
            organisation_id=organisation.pk if organisation else None,
            data={
                "token": token.pk,
                "prefix": prefix,
                "kind": kind,
                "for": user.get_username(),
                "scopes": scopes,
                "expires_at": expires_at,
            },
        )
    return token, secret


def can_revoke(user: User, token: ApiToken) -> bool:
    if token.kind == ApiToken.Kind.CUSTOMER:
        return is_customer_admin(user, token.organisation)
    return user.is_active and user.is_staff and user.has_perm("api.change_apitoken")


def token_revoke(*, token: ApiToken, acting_user: User, reason: str) -> ApiToken:
    """Revoke a token at once; it is refused from the next call on."""
    if not can_revoke(acting_user, token):
        raise PermissionDenied("You cannot revoke this token.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the token is revoked."})
    with transaction.atomic():
        token = ApiToken.objects.with_scopes_disabled().select_for_update().get(pk=token.pk)
        if token.revoked_at is not None:
            raise ValidationError("This token is already revoked.")
        token.revoked_at = timezone.now()
        token.revoked_by = acting_user
        token.revoke_reason = reason.strip()[:200]
        token.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
        audit_record(
            action="api.token_revoked",
            actor=acting_user,
            obj=token,
            data={"token": token.pk, "prefix": token.prefix, "reason": token.revoke_reason},
        )
    return token


def token_touch(token: ApiToken, now: datetime) -> None:
    """Record use, at most once a minute per token (a SIEM polling every few seconds
    must not turn every read into a write)."""
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiToken.objects.with_scopes_disabled().filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now
