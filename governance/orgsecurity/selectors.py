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
