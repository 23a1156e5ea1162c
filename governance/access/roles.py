"""Staff roles (C25): Django groups defined here in code and synced idempotently.

Each role lists exactly the model permissions it needs (least privilege). No role
holds guardian's own object-permission permissions: object permissions on customer
data are given only by the support-access workflow, never by hand in the admin.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission
from django.db import transaction


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    permissions: tuple[str, ...]  # "app_label.codename"


SECURITY_OFFICER = "Security officer"
SUPPORT_ENGINEER = "Support engineer"
INCIDENT_MANAGER = "Incident manager"
RISK_OWNER = "Risk owner"
DATA_PROTECTION_OFFICER = "Data protection officer"
AUDITOR = "Auditor"
LEGAL_COUNSEL = "Legal counsel"
BACKUP_REPORTER = "Backup reporter"

# Apps whose every model an auditor may view (read-only evidence).
# The risk register work a risk owner does (C23, C26); security officers do it too, and more.
RISK_WORK = (
    "risk.view_risk",
    "risk.add_risk",
    "risk.change_risk",
    "risk.view_control",
    "risk.add_control",
    "risk.change_control",
    "risk.view_riskmatrix",
    "risk.view_riskacceptance",
    "risk.add_riskacceptance",
    "risk.view_riskreview",
    "risk.add_riskreview",
    "risk.view_reviewreminder",
    "risk.view_change",
    "risk.add_change",
    "risk.change_change",
    "risk.view_riskassessment",
    "risk.add_riskassessment",
    "risk.view_continuityplan",
    "risk.add_continuityplan",
    "risk.change_continuityplan",
    "risk.view_continuityplanversion",
    "risk.view_continuityexercise",
    "risk.add_continuityexercise",
    "risk.view_overallriskreview",
)

AUDITED_APPS = (
    "tenancy",
    "access",
    "audit",
    "core",
    "incidents",
    "legal",
    "disclosure",
    "retention",
    "risk",
    "trust",
    "api",
    "auth",
    "otp_totp",
    "axes",
    "orgsecurity",
    "sso",
)

ROLES: tuple[Role, ...] = (
    Role(
        SECURITY_OFFICER,
        "Runs the security programme: organisations, staff accounts, roles, evidence.",
        (
            "tenancy.view_organisation",
            "tenancy.add_organisation",
            "tenancy.change_organisation",
            "tenancy.view_membership",
            "tenancy.add_membership",
            "tenancy.change_membership",
            "tenancy.delete_membership",
            "access.view_user",
            "access.add_user",
            "access.change_user",
            "auth.view_group",
            "audit.view_auditevent",
            "core.view_jobrun",
            "access.decide_internal",
            "access.view_supportaccessrequest",
            "access.view_supportgrant",
            "access.change_supportgrant",
            "access.view_accesslogentry",
            "access.view_accessreviewcampaign",
            "access.change_accessreviewcampaign",
            "access.view_accessreviewitem",
            "access.change_accessreviewitem",
            "axes.view_accessattempt",
            "axes.delete_accessattempt",
            "otp_totp.view_totpdevice",
            "otp_totp.delete_totpdevice",
            # Customers' own security settings (C28): read-only for staff.
            "orgsecurity.view_organisationsecuritypolicy",
            # Single sign-on per organisation (C28): staff set it up with the customer and own email domains.
            "sso.view_ssoconfiguration",
            "sso.add_ssoconfiguration",
            "sso.change_ssoconfiguration",
            "disclosure.view_vulnerabilityreport",
            "disclosure.triage_vulnerabilityreport",
            "disclosure.view_reportevent",
            # Termination and clean-up (C21), backups (C22, C24).
            "retention.confirm_termination",
            "retention.view_termination",
            "retention.add_termination",
            "retention.view_cleanuprun",
            "retention.view_deletioncertificate",
            "retention.view_backuprecord",
            "retention.view_backuppolicycheck",
            # Risk register, changes (approver), overall review (signer), continuity (C23, C26).
            *RISK_WORK,
            "risk.add_riskmatrix",
            "risk.change_riskacceptance",
            "risk.approve_change",
            "risk.add_overallriskreview",
            "risk.change_overallriskreview",
            "risk.sign_overallriskreview",
            "risk.manage_all_risks",
            # The trust report and what the public trust page shows.
            "trust.view_trust_report",
            "trust.view_publishedcommitment",
            "trust.add_publishedcommitment",
            "trust.delete_publishedcommitment",
            # Integration API: service accounts and their tokens (issue, revoke).
            "api.view_serviceaccount",
            "api.add_serviceaccount",
            "api.view_apitoken",
            "api.add_apitoken",
            "api.change_apitoken",
        ),
    ),
    Role(
        SUPPORT_ENGINEER,
        "Answers support tickets; sees customer data only through an approved grant (C02-C04).",
        (
            "tenancy.view_organisation",
            "access.add_supportaccessrequest",
            "access.view_supportaccessrequest",
            "access.view_supportgrant",
        ),
    ),
    Role(
        INCIDENT_MANAGER,
        "Runs incidents and breach notices.",
        (
            "tenancy.view_organisation",
            "core.view_jobrun",
            "incidents.view_incident",
            "incidents.add_incident",
            "incidents.change_incident",
            "incidents.close_incident",
            "incidents.view_affectedorganisation",
            "incidents.view_incidentupdate",
            "incidents.add_incidentupdate",
            "incidents.view_correctiveaction",
            "incidents.add_correctiveaction",
            "incidents.change_correctiveaction",
            "incidents.view_notification",
            "incidents.requeue_notification",
            "incidents.view_evidence",
            "incidents.add_evidence",
            "incidents.change_evidence",
            "incidents.view_rootcauseanalysis",
            "incidents.add_rootcauseanalysis",
            "incidents.change_rootcauseanalysis",
            "incidents.view_reportrequest",
            "incidents.change_reportrequest",
            # The public status page (C14): components, their groups, maintenance.
            "incidents.view_componentgroup",
            "incidents.add_componentgroup",
            "incidents.change_componentgroup",
            "incidents.view_component",
            "incidents.add_component",
            "incidents.change_component",
            "incidents.view_componentstatuschange",
            "incidents.view_scheduledmaintenance",
            "incidents.add_scheduledmaintenance",
            "incidents.change_scheduledmaintenance",
            "incidents.view_maintenanceupdate",
            # Status subscriptions: subscribers manage themselves; webhooks are set up by staff.
            "incidents.view_statussubscriber",
            "incidents.view_statuswebhook",
            "incidents.add_statuswebhook",
            "incidents.change_statuswebhook",
        ),
    ),
    Role(
        RISK_OWNER,
        "Owns risks, controls and continuity plans; requests and assesses changes (C23, C26).",
        (
            "tenancy.view_organisation",
            # Register, acceptances of own risks, reviews, change requests and assessments, plans.
            *RISK_WORK,
        ),
    ),
    Role(
        DATA_PROTECTION_OFFICER,
        "Oversees personal data, breach notices and legal requests.",
        (
            "tenancy.view_organisation",
            "audit.view_auditevent",
            "core.view_jobrun",
            "incidents.view_incident",
            "incidents.view_affectedorganisation",
            "incidents.view_incidentupdate",
            "incidents.view_correctiveaction",
            "incidents.view_notification",
            "incidents.view_reportrequest",
            "legal.view_legalrequest",
            "legal.view_reviewchecklist",
            "legal.view_decision",
            "legal.view_customernotice",
            "legal.view_nondisclosureorder",
            "legal.view_disclosure",
            "trust.view_trust_report",
        ),
    ),
    Role(
        LEGAL_COUNSEL,
        "Reviews law-enforcement requests, decides, objects, tells customers, records disclosures (C27).",
        (
            "tenancy.view_organisation",
            "legal.view_legalrequest",
            "legal.add_legalrequest",
            "legal.review_legalrequest",
            "legal.view_legaldocument",
            "legal.add_legaldocument",
            "legal.view_reviewchecklist",
            "legal.view_decision",
            "legal.view_customernotice",
            "legal.view_nondisclosureorder",
            "legal.view_disclosure",
        ),
    ),
    Role(
        BACKUP_REPORTER,
        "For the service accounts of backup tools: register runs through the API, read the register (C24).",
        ("retention.view_backuprecord", "retention.add_backuprecord"),
    ),
    Role(AUDITOR, "Reads everything needed as evidence; changes nothing.", ()),
)

ROLE_NAMES = tuple(r.name for r in ROLES)


def _resolve(perms: tuple[str, ...]) -> list[Permission]:
    wanted = {tuple(p.split(".", 1)) for p in perms}
    found = {
        (p.content_type.app_label, p.codename): p
        for p in Permission.objects.select_related("content_type").filter(codename__in=[c for _, c in wanted])
    }
    missing = wanted - set(found)
    if missing:
        raise LookupError(f"Unknown permissions in role definitions: {sorted('.'.join(m) for m in missing)}")
    return [found[w] for w in sorted(wanted)]


def _auditor_permissions() -> list[Permission]:
    return list(
        Permission.objects.filter(content_type__app_label__in=AUDITED_APPS, codename__startswith="view_").exclude(
            # Customer personal data is never part of a role, however read-only.
            codename__in=["view_customer_data"]
        )
    )


@transaction.atomic
def roles_sync() -> dict[str, int]:
    """Create or update every role group so its permissions are exactly the declared ones."""
    result = {}
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role.name)
        perms = _auditor_permissions() if role.name == AUDITOR else _resolve(role.permissions)
        current = set(group.permissions.values_list("pk", flat=True))
        target = {p.pk for p in perms}
        if current != target:
            # Through the m2m API so the change lands in the audit trail.
            group.permissions.remove(*(current - target))
            group.permissions.add(*(target - current))
        result[role.name] = len(target)
    return result


def sync_roles_after_migrate(sender, **kwargs) -> None:
    """post_migrate receiver: sync once, after the last app's permissions exist."""
    from django.apps import apps

    # Django signals only apps that have a models module, in INSTALLED_APPS order.
    if sender is [a for a in apps.get_app_configs() if a.models_module is not None][-1]:
        roles_sync()
