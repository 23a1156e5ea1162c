"""Reads with rules: an organisation's policy, and the organisation's own audit log (C28)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from governance.audit.models import AuditEvent
from governance.orgsecurity.models import OrganisationSecurityPolicy
from governance.tenancy.models import Organisation

# What an organisation's own audit log shows: events attributed to it whose action is
# listed here. An allowlist, not "everything with this organisation_id": the trail also
# holds staff-internal events about the organisation (legal requests under a
# non-disclosure order, internal approvals) that must not reach the customer.
ORG_LOG_ACTION_PREFIXES = ("orgsecurity.",)
ORG_LOG_ACTIONS = (
    "support_access.customer_approved",
    "support_access.customer_denied",
    "support_access.revoked",
    "support_access.limits_changed",
    "organisation.contact_changed",
    "incident.evidence_downloaded",
)

# Filter categories offered to the customer admin: label -> actions / prefixes.
CATEGORIES = {
    "logins": ("Sign-ins and sign-outs", ("orgsecurity.login", "orgsecurity.logout")),
    "failed": (
        "Failed sign-ins and refused requests",
        ("orgsecurity.login_failed", "orgsecurity.two_factor_failed", "orgsecurity.ip_refused"),
    ),
    "two_factor": ("Two-factor", ("orgsecurity.two_factor_",)),
    "settings": (
        "Setting changes",
        (
            "orgsecurity.policy_changed",
            "orgsecurity.sessions_revoked",
            "support_access.limits_changed",
            "organisation.contact_changed",
        ),
    ),
    "exports": ("Exports and downloads", ("orgsecurity.audit_exported", "incident.evidence_downloaded")),
    "support": (
        "Support-access decisions",
        ("support_access.customer_approved", "support_access.customer_denied", "support_access.revoked"),
    ),
}


def _matches(names: tuple[str, ...]) -> Q:
    q = Q()
    for name in names:
        q |= Q(action__startswith=name) if name.endswith((".", "_")) else Q(action=name)
    return q


def policy_for(organisation: Organisation) -> OrganisationSecurityPolicy:
    """The organisation's policy, or an unsaved one with the defaults (nothing enforced)."""
    policy = OrganisationSecurityPolicy.objects.filter(organisation=organisation).first()
    return policy or OrganisationSecurityPolicy(organisation=organisation)


def organisation_audit_events(organisation: Organisation) -> QuerySet[AuditEvent]:
    """Events of the organisation's own audit log, newest first (no per-row queries)."""
    visible = _matches(ORG_LOG_ACTION_PREFIXES) | _matches(ORG_LOG_ACTIONS)
    return AuditEvent.objects.filter(visible, organisation_id=organisation.pk).order_by("-created_at", "-id")


def category_filter(key: str) -> Q:
    return _matches(CATEGORIES[key][1])


ACTION_LABELS = {
    "orgsecurity.login": "Signed in",
    "orgsecurity.logout": "Signed out",
    "orgsecurity.login_failed": "Failed sign-in",
    "orgsecurity.ip_refused": "Refused: address not allowed",
    "orgsecurity.policy_changed": "Security settings changed",
    "orgsecurity.sessions_revoked": "Sessions signed out",
    "orgsecurity.audit_exported": "Audit log exported",
    "orgsecurity.two_factor_enrolled": "Two-factor set up",
    "orgsecurity.two_factor_verified": "Two-factor code accepted",
    "orgsecurity.two_factor_failed": "Two-factor code refused",
    "orgsecurity.two_factor_reset": "Two-factor reset by an admin",
    "orgsecurity.two_factor_recovery_codes_replaced": "Recovery codes replaced",
    "support_access.customer_approved": "Support access approved",
    "support_access.customer_denied": "Support access denied",
    "support_access.revoked": "Support grant revoked",
    "support_access.limits_changed": "Support-access limits changed",
    "organisation.contact_changed": "Primary contact changed",
    "incident.evidence_downloaded": "Incident evidence downloaded",
}


def _plain(value) -> str:
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def event_details(data: dict) -> str:
    """One line of text for an event's data, e.g. "idle_timeout_minutes: none → 30"."""
    parts = []
    for key, value in sorted((data or {}).items()):
        if key == "changes" and isinstance(value, dict):
            parts += [f"{field}: {_plain(c.get('from'))} → {_plain(c.get('to'))}" for field, c in sorted(value.items())]
        elif isinstance(value, dict):
            parts.append(f"{key}: " + ", ".join(f"{k}={_plain(v)}" for k, v in sorted(value.items())))
        else:
            parts.append(f"{key}: {_plain(value)}")
    return "; ".join(parts)
