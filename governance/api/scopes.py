"""What an API token may do: its scopes, and the model permission each one also needs.

A call succeeds only when the token carries the scope AND its user still holds the
permission (C25): a token never does more than its account could do in the admin, and
taking a role away from a service account disarms its tokens at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    name: str
    description: str
    permission: str  # "app_label.codename" the token's user must hold ("" for customer scopes)
    customer: bool = False  # may a customer admin give it to an organisation token


SCOPES: tuple[Scope, ...] = (
    Scope(
        "incidents:read",
        "Read incidents, their timelines, affected organisations and deadlines.",
        "incidents.view_incident",
        customer=True,
    ),
    Scope(
        "incidents:write",
        "Open incidents, add affected organisations, post timeline updates.",
        "incidents.change_incident",
    ),
    Scope("backups:read", "List backup runs in the register.", "retention.view_backuprecord"),
    Scope("backups:write", "Register backup runs.", "retention.add_backuprecord"),
    Scope("audit:read", "Read the audit trail (for a SIEM).", "audit.view_auditevent"),
    Scope("access-requests:read", "Read support-access requests and their status.", "access.view_supportaccessrequest"),
    Scope(
        "access-requests:write", "Open support-access requests (a ticketing system).", "access.add_supportaccessrequest"
    ),
    Scope("risks:read", "Read the risk register and change records.", "risk.view_risk"),
    Scope("risks:write", "Create risks and change records.", "risk.add_risk"),
    Scope("access-log:read", "Read the organisation's access transparency log.", "", customer=True),
)
BY_NAME = {s.name: s for s in SCOPES}
STAFF_SCOPES = tuple(s.name for s in SCOPES if s.name != "access-log:read")
CUSTOMER_SCOPES = tuple(s.name for s in SCOPES if s.customer)
# Customer scopes that need no staff permission: the token's organisation is the limit.
EXTRA_PERMISSION = {"risks:write": ("risk.add_change",), "risks:read": ("risk.view_change",)}


def choices(names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(n, f"{n}: {BY_NAME[n].description}") for n in names]


def missing_permissions(user, scopes: list[str]) -> list[str]:
    """Scopes (of a staff token) whose permission `user` does not hold."""
    missing = []
    for name in scopes:
        scope = BY_NAME[name]
        perms = [p for p in (scope.permission, *EXTRA_PERMISSION.get(name, ())) if p]
        if not all(user.has_perm(p) for p in perms):
            missing.append(name)
    return missing
