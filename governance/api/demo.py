"""Demo and test helpers: a service account with its role(s), and a token for it.

`seed_demo` calls `seed_api_demo()` once; it prints the secret of a monitoring token
(incidents read/write), the only time it is shown.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from governance.access.models import User
from governance.api.models import ApiToken, ServiceAccount
from governance.api.services import _issue


@transaction.atomic
def service_account(username: str, *roles: str, created_by: User | None = None) -> ServiceAccount:
    """A service account in `roles` (created directly: demo data and tests only)."""
    user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True})
    user.set_unusable_password()
    user.is_staff = True
    user.save()
    user.groups.set(Group.objects.filter(name__in=roles))
    account, _ = ServiceAccount.objects.get_or_create(
        user=user, defaults={"description": f"{username} integration", "created_by": created_by or user}
    )
    return account


def token_for(
    user: User, scopes: list[str], *, organisation=None, days: int = 30, name: str = "test", **extra
) -> tuple[ApiToken, str]:
    """A token without the issue-time checks (tests build refused cases with it)."""
    kind = ApiToken.Kind.CUSTOMER if organisation is not None else ApiToken.Kind.STAFF
    token, secret = _issue(
        kind=kind,
        user=user,
        organisation=organisation,
        name=name,
        scopes=sorted(scopes),
        expires_at=timezone.now() + timedelta(days=days),
        acting_user=user,
        rate_limit_per_minute=extra.get("rate_limit_per_minute"),
    )
    return token, secret


def seed_api_demo() -> list[str]:
    """A monitoring service account (Incident manager role) with a fresh token; returns the
    lines to print, with the token's secret (its only showing). The backup tool's account
    (Backup reporter role) gets no token here: a security officer issues one in the admin."""
    service_account("svc-backups", "Backup reporter")
    account = service_account("svc-monitoring", "Incident manager")
    ApiToken.objects.with_scopes_disabled().filter(user=account.user, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoke_reason="Replaced when the demo data was seeded again."
    )
    _token, secret = token_for(account.user, ["incidents:read", "incidents:write"], days=90, name="Demo monitoring")
    return [
        "API token of the demo monitoring service account (incidents:read, incidents:write); shown only now:",
        f"  {secret}",
        f"  curl -H 'Authorization: Bearer {secret}' http://127.0.0.1:8000/api/v1/incidents/",
    ]


def organisation_token(organisation, scopes=("incidents:read", "access-log:read")) -> tuple[ApiToken, str]:
    """A token of `organisation` created by one of its customer admins (tests)."""
    from governance.api.services import customer_token_issue
    from governance.tenancy.models import Membership

    admin = Membership.objects.filter(organisation=organisation, role=Membership.Role.ADMIN).first()
    if admin is None:
        user = User.objects.create(username=f"{organisation.slug}-token-admin")
        admin = Membership.objects.create(user=user, organisation=organisation, role=Membership.Role.ADMIN)
    return customer_token_issue(
        organisation=organisation,
        name="Organisation token",
        scopes=list(scopes),
        expires_at=timezone.now() + timedelta(days=30),
        acting_user=admin.user,
    )
