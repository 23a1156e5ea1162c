"""Demo rows behind the staff dashboard and the trust report (called by `seed_demo`).

A year of history written as rows with past dates (the services stamp "now", so history
cannot go through them): breach notices and their public updates and deliveries, report
and RCA requests, closed incidents with corrective actions, vulnerability reports, a
completed access review, backups and daily policy checks, audit-chain verifications. Today's
open work goes through the services: a support-access request waiting for a decision and an
active grant. One processor notice went out late (with its reason), so the report shows
what a missed deadline looks like. Idempotent: each part is skipped if already present.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import Group
from django.utils import timezone

from governance.access.models import AccessReviewCampaign, AccessReviewItem, SupportAccessRequest, User
from governance.tenancy.models import Organisation

# (days ago aware, organisation slug, hours until notice, late reason)
PAST_BREACHES = [
    (330, "contoso", 9, ""),
    (250, "northwind", 6, ""),
    (190, "contoso", 14, ""),
    (120, "fabrikam", 31, "The affected records were confirmed by forensic analysis only after 30 hours."),
    (75, "contoso", 30, ""),
    (40, "northwind", 11, ""),
]
PUBLISHED = ("C08", "C12", "C14", "C16", "C24")


def seed_trust_demo(*, now: datetime | None = None) -> None:
    now = now or timezone.now()
    staff = {u.username: u for u in User.objects.filter(is_staff=True)}
    orgs = {o.slug: o for o in Organisation.objects.all()}
    _past_incidents(now, staff["ines"], orgs)
    _vulnerability_reports(now, staff["sofia"])
    _access_review(now, staff["sofia"])
    _support_access(now, staff, orgs)
    _backups(now)
    _job_runs(now)
    _published(staff["sofia"])


def _past_incidents(now, manager: User, orgs: dict[str, Organisation]) -> None:
    from incidents.models import (
        AffectedOrganisation,
        CorrectiveAction,
        Incident,
        IncidentUpdate,
        Notification,
        ReportRequest,
    )
    from incidents.services import notice_deadline
    from incidents.workdays import report_due_dates

    if Incident.objects.filter(title__startswith="[history]").exists():
        return
    customer = {
        slug: User.objects.filter(membership__organisation=org, membership__role="admin").first()
        for slug, org in orgs.items()
    }
    for n, (days, slug, hours, late_reason) in enumerate(PAST_BREACHES, start=1):
        org = orgs[slug]
        aware = now - timedelta(days=days)
        notified = aware + timedelta(hours=hours)
        incident = Incident.objects.create(
            title=f"[history] Breach {n}: export sent to a wrong recipient",
            description="A scheduled export reached a recipient outside the organisation.",
            kind=Incident.Kind.SPECIFIC,
            severity=Incident.Severity.MAJOR,
            status=Incident.Status.RESOLVED,
            detected_at=aware - timedelta(minutes=30),
            aware_at=aware,
            personal_data_breach=True,
            data_categories=["names", "email addresses"],
            approx_people=40 * n,
            incident_manager=manager,
            created_by=manager,
            closed_at=aware + timedelta(days=9),
        )
        role = org.data_protection_role
        AffectedOrganisation.objects.create(
            incident=incident,
            organisation=org,
            role=role,
            deadline_at=notice_deadline(role=role, aware_at=aware),
            notified_at=notified,
            late_reason=late_reason,
            escalated_percent=90 if late_reason else 0,
        )
        update = IncidentUpdate.objects.create(
            incident=incident,
            visibility=IncidentUpdate.Visibility.PUBLIC,
            status=Incident.Status.IDENTIFIED,
            message="An export file reached a wrong recipient, who confirmed deleting it.",
            actions_for_customers="Tell the people concerned if your own policy requires it; nothing else is needed.",
            created_by=manager,
            created_at=notified,
        )
        notice = Notification.objects.create(
            idempotency_key=f"demo-history-{incident.pk}",
            incident=incident,
            update=update,
            organisation=org,
            recipient=org.primary_contact_email,
            subject=f"Security incident #{incident.pk}: export sent to a wrong recipient",
            body="(demo notice)",
            status=Notification.Status.SENT,
            attempts=1,
            next_attempt_at=notified,
            sent_at=notified + timedelta(minutes=2),
            message_id=f"<demo-{incident.pk}@assyst.example>",
        )
        # created_at is auto_now_add: written as of the update that queued it.
        Notification.objects.filter(pk=notice.pk).update(created_at=notified)
        CorrectiveAction.objects.create(
            incident=incident,
            title="Check the export recipient list against the organisation's domains",
            owner=manager,
            due_date=(aware + timedelta(days=7)).date(),
            status=CorrectiveAction.Status.DONE,
            decided_by=manager,
            decided_at=aware + timedelta(days=6),
        )
        if customer.get(slug) and n % 2:
            requested = aware + timedelta(days=2)
            target, limit = report_due_dates(requested)
            ReportRequest.objects.create(
                incident=incident,
                organisation=org,
                kind=ReportRequest.Kind.REPORT,
                requested_by=customer[slug],
                requested_at=requested,
                due_target=target,
                due_limit=limit,
                delivered_at=requested + timedelta(days=4),
                delivered_by=manager,
            )
    # Today's work: the open breach (seeded by seed_demo) has a complete report requested.
    open_breach = Incident.objects.filter(title="Misdirected export files").first()
    if open_breach is not None and customer.get("contoso"):
        requested = now - timedelta(days=5)
        target, limit = report_due_dates(requested)
        ReportRequest.objects.get_or_create(
            incident=open_breach,
            organisation=orgs["contoso"],
            kind=ReportRequest.Kind.REPORT,
            delivered_at=None,
            defaults={
                "requested_by": customer["contoso"],
                "requested_at": requested,
                "due_target": target,
                "due_limit": limit,
            },
        )


def _vulnerability_reports(now, officer: User) -> None:
    from governance.disclosure.models import VulnerabilityReport
    from governance.disclosure.services import first_response_due

    if VulnerabilityReport.objects.filter(reference__startswith="VR-DEMO").exists():
        return
    for n, (days, hours, summary) in enumerate(
        [
            (200, 20, "Reflected XSS in the export file name"),
            (90, 30, "Missing rate limit on the password reset form"),
            (30, 6, "Verbose error page reveals the framework version"),
            (2, None, "Open redirect after sign-in"),
        ],
        start=1,
    ):
        received = now - timedelta(days=days)
        VulnerabilityReport.objects.create(
            reference=f"VR-DEMO-{n}",
            summary=summary,
            affected_product="Customer portal",
            steps_to_reproduce="(demo)",
            impact="(demo)",
            status=VulnerabilityReport.Status.NEW if hours is None else VulnerabilityReport.Status.FIXED,
            received_at=received,
            first_response_due=first_response_due(received),
            first_response_at=None if hours is None else received + timedelta(hours=hours),
        )


def _access_review(now, officer: User) -> None:
    if AccessReviewCampaign.objects.exists():
        return
    end = now - timedelta(days=45)
    campaign = AccessReviewCampaign.objects.create(
        period_start=end - timedelta(days=91),
        period_end=end,
        due_at=end + timedelta(days=14),
        status=AccessReviewCampaign.Status.COMPLETED,
        completed_at=end + timedelta(days=9),
        completed_by=officer,
    )
    holders = User.objects.filter(is_staff=True, groups__isnull=False).distinct()
    AccessReviewItem.objects.bulk_create(
        AccessReviewItem(
            campaign=campaign,
            kind=AccessReviewItem.Kind.ROLE,
            user=user,
            role=Group.objects.filter(user=user).values_list("name", flat=True).first() or "",
            decision=AccessReviewItem.Decision.CERTIFIED,
            decided_by=officer,
            decided_at=end + timedelta(days=8),
        )
        for user in holders
    )


def _support_access(now, staff: dict[str, User], orgs: dict[str, Organisation]) -> None:
    from governance.access.services import (
        support_request_create,
        support_request_decide_customer,
        support_request_decide_internal,
    )

    requests = SupportAccessRequest.objects.with_scopes_disabled()
    common = {
        "requester": staff["sam"],
        "reason_type": "customer_support",
        "scope": ["people", "profile"],
        "requested_start": now,
        "named_staff": [staff["sam"]],
    }
    if not requests.filter(ticket_reference="SUP-4711").exists():
        support_request_create(
            organisation=orgs["northwind"],
            ticket_reference="SUP-4711",
            justification="Invoices fail to export for two users; need to inspect their accounts.",
            requested_duration=timedelta(hours=2),
            **common,
        )
    if not requests.filter(ticket_reference="SUP-4702").exists():
        request = support_request_create(
            organisation=orgs["contoso"],
            ticket_reference="SUP-4702",
            justification="A user's reports show the wrong time zone; need to check their profile settings.",
            requested_duration=timedelta(hours=3),
            **common,
        )
        admin = User.objects.filter(membership__organisation=orgs["contoso"], membership__role="admin").first()
        support_request_decide_internal(request=request, acting_user=staff["sofia"], approve=True)
        support_request_decide_customer(request=request, acting_user=admin, approve=True)


def _backups(now) -> None:
    """Backups as an external tool reports them (unless governance/retention/demo.py already
    registered some), the daily policy checks of the days before, and today's check for real."""
    from django.conf import settings

    from governance.retention.backups import backup_policy_check
    from governance.retention.models import BackupPolicyCheck, BackupRecord

    if not BackupRecord.objects.exists():
        records = []
        for day in range(0, 15):
            finished = (now - timedelta(days=day)).replace(hour=1, minute=0, second=0, microsecond=0)
            if finished > now:
                continue
            kind = BackupRecord.Kind.FULL if finished.weekday() == 6 else BackupRecord.Kind.INCREMENTAL
            records.append(
                BackupRecord(
                    kind=kind,
                    source="pgbackrest:main",
                    started_at=finished - timedelta(minutes=40 if kind == "full" else 6),
                    finished_at=finished,
                    size_bytes=(38 if kind == "full" else 2) * 1024**3,
                    checksum="sha256:" + "0" * 64,
                    encrypted=True,
                    location=settings.RETENTION_PRIMARY_LOCATION,
                    artefact=f"pgbackrest/{finished:%Y%m%d}-{kind}",
                    expires_at=finished + timedelta(days=settings.RETENTION_BACKUP_DAYS),
                    reported_by="api",
                )
            )
        BackupRecord.objects.bulk_create(records)
    if BackupPolicyCheck.objects.exists():
        return
    # The beat task's earlier daily checks, while the register covered them; today's runs for real.
    BackupPolicyCheck.objects.bulk_create(
        BackupPolicyCheck(checked_at=(now - timedelta(days=d)).replace(hour=7, minute=30), misses=[], alerted=False)
        for d in range(1, 14)
    )
    backup_policy_check(now=now)


def _job_runs(now) -> None:
    """Today's audit-chain verification, run for real (the trust report counts these)."""
    from governance.audit.tasks import TASK_NAME, verify_audit_chain
    from governance.core.models import JobRun

    if not JobRun.objects.filter(task=TASK_NAME, started_at__date=now.date()).exists():
        verify_audit_chain.run()


def _published(officer: User) -> None:
    from governance.trust.models import PublishedCommitment
    from governance.trust.services import published_commitment_add

    if PublishedCommitment.objects.exists():
        return
    for cid in PUBLISHED:
        published_commitment_add(commitment_id=cid, acting_user=officer)
