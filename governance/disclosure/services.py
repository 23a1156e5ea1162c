"""Vulnerability disclosure (C11): receive a report, triage it, remind about the target.

Every state change is one function here, called the same way from the public form,
the admin and the Celery task. Each runs in a transaction, checks its rule, saves with
`update_fields` and writes its audit event in the same transaction. Email goes out only
after commit.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from cvss import CVSS3
from cvss.exceptions import CVSSError
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from governance.access.models import User
from governance.access.roles import SECURITY_OFFICER
from governance.audit.services import audit_record
from governance.disclosure import policies
from governance.disclosure.models import ReportEvent, VulnerabilityReport
from incidents.models import Incident
from incidents.workdays import add_working_days, clock_start, previous_working_day, uk_date

log = logging.getLogger(__name__)

Status = VulnerabilityReport.Status

# Which status may follow which. Duplicate and not applicable can be reopened (to
# triaged) when new facts arrive; disclosed is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.NEW: frozenset({Status.TRIAGED, Status.DUPLICATE, Status.NOT_APPLICABLE}),
    Status.TRIAGED: frozenset({Status.ACCEPTED, Status.DUPLICATE, Status.NOT_APPLICABLE}),
    Status.ACCEPTED: frozenset({Status.FIXED, Status.DUPLICATE}),
    Status.FIXED: frozenset({Status.DISCLOSED}),
    Status.DUPLICATE: frozenset({Status.TRIAGED}),
    Status.NOT_APPLICABLE: frozenset({Status.TRIAGED}),
    Status.DISCLOSED: frozenset(),
}
# A note is required where the reporter or a later reader needs the reason.
NOTE_REQUIRED = frozenset({Status.NOT_APPLICABLE})
CLOSED_FOR_INCIDENTS = frozenset({Status.DUPLICATE, Status.NOT_APPLICABLE})

# Crockford's base32 without look-alikes (0/O, 1/I/L): easy to read out on the phone.
_REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


# --- helpers ----------------------------------------------------------------------------------


def new_reference() -> str:
    """A random reference: it reveals nothing about how many reports we receive."""
    return "VR-" + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(10))


def first_response_due(received_at: datetime) -> date:
    """N England working days after the report's day 0 (see incidents.workdays)."""
    return add_working_days(clock_start(received_at), settings.DISCLOSURE_FIRST_RESPONSE_WORKING_DAYS)


@dataclass(frozen=True)
class CvssScore:
    vector: str
    base_score: Decimal
    severity: str


def cvss_parse(vector: str) -> CvssScore:
    """Validate and score a CVSS v3.1 vector; ValidationError with a readable reason otherwise."""
    vector = vector.strip()
    if not vector.startswith("CVSS:3.1/"):
        raise ValidationError('Give a CVSS v3.1 vector starting with "CVSS:3.1/", or leave the field empty.')
    try:
        parsed = CVSS3(vector)
    except CVSSError as exc:
        raise ValidationError(f"This is not a valid CVSS v3.1 vector: {exc}.") from exc
    return CvssScore(
        vector=parsed.clean_vector(),
        base_score=Decimal(str(parsed.base_score)),
        severity=parsed.severities()[0],
    )


def security_officer_emails() -> list[str]:
    group = Group.objects.filter(name=SECURITY_OFFICER).first()
    if group is None:
        return []
    return sorted({u.email for u in group.user_set.filter(is_active=True, is_staff=True) if u.email})


def _admin_url(report: VulnerabilityReport) -> str:
    return f"{settings.SITE_URL}/admin/disclosure/vulnerabilityreport/{report.pk}/change/"


# --- the public side --------------------------------------------------------------------------


def submission_rate_exceeded(*, client_ip: str | None, now: datetime | None = None) -> bool:
    """Count one submission from `client_ip`; True once it is past the limit (fixed window).

    Kept in the shared cache (Redis in production), so every web node counts together.
    Every POST counts, valid or not: probing the form costs the same as filing.
    """
    window = settings.DISCLOSURE_RATE_WINDOW_SECONDS
    moment = now or timezone.now()
    slot = int(moment.timestamp()) // window
    key = f"disclosure:submit:{client_ip or 'unknown'}:{slot}"
    cache.add(key, 0, timeout=window + 60)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=window + 60)
        count = 1
    return count > settings.DISCLOSURE_RATE_LIMIT


def report_submit(
    *,
    summary: str,
    affected_product: str,
    steps_to_reproduce: str,
    impact: str,
    cvss_vector: str = "",
    contact_email: str = "",
) -> VulnerabilityReport:
    """Store a report from the public form and, if an address was given, acknowledge it."""
    score = cvss_parse(cvss_vector) if cvss_vector.strip() else None
    now = timezone.now()
    with transaction.atomic():
        reference = new_reference()
        while VulnerabilityReport.objects.filter(reference=reference).exists():
            reference = new_reference()
        report = VulnerabilityReport.objects.create(
            reference=reference,
            summary=summary.strip(),
            affected_product=affected_product.strip(),
            steps_to_reproduce=steps_to_reproduce.strip(),
            impact=impact.strip(),
            cvss_vector=score.vector if score else "",
            cvss_base_score=score.base_score if score else None,
            cvss_severity=score.severity if score else "",
            contact_email=contact_email.strip(),
            received_at=now,
            first_response_due=first_response_due(now),
        )
        ReportEvent.objects.create(report=report, at=now, to_status=Status.NEW, note="Received through the form.")
        audit_record(
            action="disclosure.report_received",
            obj=report,
            actor_repr="public form",
            data={"cvss_severity": report.cvss_severity, "acknowledge": bool(report.contact_email)},
        )
        if report.contact_email:
            report_pk = report.pk
            transaction.on_commit(lambda: _enqueue_acknowledgement(report_pk))
    return report


def _enqueue_acknowledgement(report_pk: int) -> None:
    from governance.disclosure.tasks import acknowledge_report

    try:
        acknowledge_report.delay(report_pk)
    except Exception:  # the report is stored; a broker outage must not turn into a 500
        log.exception("could not queue the acknowledgement of vulnerability report %s", report_pk)


def report_acknowledge(*, report: VulnerabilityReport) -> bool:
    """Email the reporter that the report arrived. Returns False when there is no address.

    The message carries only our own text and the reference, never what the reporter
    typed: the form must not become a way to send arbitrary mail to arbitrary people.
    """
    if not report.contact_email:
        return False
    body = render_to_string(
        "disclosure/email/acknowledgement.txt",
        {
            "report": report,
            "policy_url": f"{settings.SITE_URL}/security/policy/",
            "working_days": settings.DISCLOSURE_FIRST_RESPONSE_WORKING_DAYS,
        },
    )
    send_mail(f"[Assyst] Vulnerability report {report.reference} received", body, None, [report.contact_email])
    return True


# --- triage -------------------------------------------------------------------------------------


def _require(user: User, action: policies.Action) -> None:
    if not policies.can(user, action):
        raise PermissionDenied("Only a security officer can triage vulnerability reports.")


def allowed_transitions(report: VulnerabilityReport) -> list[str]:
    return [s for s in Status.values if s in TRANSITIONS[report.status]]


def report_transition(
    *,
    report: VulnerabilityReport,
    acting_user: User,
    to_status: str,
    note: str = "",
    duplicate_of: VulnerabilityReport | None = None,
) -> VulnerabilityReport:
    """Move a report to `to_status` if the workflow allows it; the first move out of
    `new` is the first response that the working-day target measures."""
    _require(acting_user, "triage")
    note = note.strip()
    with transaction.atomic():
        report = VulnerabilityReport.objects.select_for_update().get(pk=report.pk)
        from_status = report.status
        errors: dict[str, str] = {}
        if to_status not in Status.values:
            errors["to_status"] = "Choose a status."
        elif to_status not in TRANSITIONS[from_status]:
            allowed = ", ".join(Status(s).label.lower() for s in allowed_transitions(report)) or "none"
            errors["to_status"] = (
                f"A {Status(from_status).label.lower()} report cannot become "
                f"{Status(to_status).label.lower()} (allowed: {allowed})."
            )
        if to_status in NOTE_REQUIRED and not note:
            errors["note"] = "Say why the report does not apply."
        if to_status == Status.DUPLICATE:
            if duplicate_of is None:
                errors["duplicate_of"] = "Link the original report."
            elif duplicate_of.pk == report.pk:
                errors["duplicate_of"] = "A report cannot duplicate itself."
            elif duplicate_of.status == Status.DUPLICATE:
                errors["duplicate_of"] = f"{duplicate_of.reference} is itself a duplicate: link its original."
        elif duplicate_of is not None:
            errors["duplicate_of"] = "Only a duplicate links to an original."
        if errors:
            raise ValidationError(errors)

        now = timezone.now()
        fields = ["status", "duplicate_of", "updated_at"]
        report.status = to_status
        report.duplicate_of = duplicate_of if to_status == Status.DUPLICATE else None
        first_response = report.first_response_at is None
        if first_response:
            report.first_response_at = now
            fields.append("first_response_at")
        report.save(update_fields=fields)
        ReportEvent.objects.create(
            report=report, at=now, acting_user=acting_user, from_status=from_status, to_status=to_status, note=note
        )
        audit_record(
            action="disclosure.report_transition",
            actor=acting_user,
            obj=report,
            data={
                "from": from_status,
                "to": to_status,
                "note": note,
                "duplicate_of": duplicate_of.reference if report.duplicate_of else None,
                "first_response": first_response,
            },
        )
    return report


def report_link_incident(
    *, report: VulnerabilityReport, acting_user: User, incident: Incident | None, note: str = ""
) -> VulnerabilityReport:
    """Record that a report became an incident (or undo a wrong link with None)."""
    _require(acting_user, "triage")
    with transaction.atomic():
        report = VulnerabilityReport.objects.select_for_update().get(pk=report.pk)
        if incident is not None and report.status in CLOSED_FOR_INCIDENTS:
            raise ValidationError(
                {"incident": f"A {Status(report.status).label.lower()} report cannot become an incident."}
            )
        before = report.incident_id
        report.incident = incident
        report.save(update_fields=["incident", "updated_at"])
        ReportEvent.objects.create(
            report=report,
            at=timezone.now(),
            acting_user=acting_user,
            note=(f"Linked to incident #{incident.pk}" if incident else "Incident link removed")
            + (f": {note.strip()}" if note.strip() else "."),
        )
        audit_record(
            action="disclosure.report_incident_linked",
            actor=acting_user,
            obj=report,
            data={"before": before, "after": incident.pk if incident else None},
        )
    return report


# --- the first-response target ------------------------------------------------------------------


def response_state(report: VulnerabilityReport, now: datetime | None = None) -> str:
    """'responded', 'overdue', 'due soon' (the working day before the target or the day) or 'on track'."""
    if report.first_response_at is not None:
        return "responded"
    today = uk_date(now or timezone.now())
    if today > report.first_response_due:
        return "overdue"
    if today >= previous_working_day(report.first_response_due):
        return "due soon"
    return "on track"


def reports_remind(*, now: datetime) -> dict[str, int]:
    """Daily: one digest to security officers of reports with no first response that are
    due within a working day (each reminded once) or past the target (each flagged once).

    The marks are saved in the transaction that queues the email, so a redelivered task
    sends nothing twice.
    """
    today = uk_date(now)
    counts = {"reminded": 0, "overdue": 0}
    with transaction.atomic():
        candidates = list(
            VulnerabilityReport.objects.select_for_update(skip_locked=True)
            .filter(first_response_at__isnull=True, status=Status.NEW)
            .filter(
                Q(first_response_due__lt=today, overdue_notified_at__isnull=True)
                | Q(reminded_at__isnull=True, overdue_notified_at__isnull=True)
            )
            .order_by("first_response_due", "pk")
        )
        due_soon, overdue = [], []
        for report in candidates:
            state = response_state(report, now)
            if state == "overdue":
                report.overdue_notified_at = now
                report.save(update_fields=["overdue_notified_at"])
                overdue.append(report)
            elif state == "due soon":
                report.reminded_at = now
                report.save(update_fields=["reminded_at"])
                due_soon.append(report)
        if not (due_soon or overdue):
            return counts
        for report, kind in [*((r, "reminder") for r in due_soon), *((r, "overdue") for r in overdue)]:
            audit_record(
                action=f"disclosure.report_{kind}",
                obj=report,
                data={"first_response_due": report.first_response_due},
            )
        counts.update(reminded=len(due_soon), overdue=len(overdue))
        recipients = security_officer_emails()
        if recipients:
            body = render_to_string(
                "disclosure/email/response_reminder.txt",
                {
                    "due_soon": [(r, _admin_url(r)) for r in due_soon],
                    "overdue": [(r, _admin_url(r)) for r in overdue],
                    "working_days": settings.DISCLOSURE_FIRST_RESPONSE_WORKING_DAYS,
                },
            )
            subject = f"[Assyst] Vulnerability reports awaiting a first response: {len(overdue)} overdue, " + (
                f"{len(due_soon)} due soon"
            )
            transaction.on_commit(lambda: send_mail(subject, body, None, recipients))
        else:
            log.warning("no security officer with an email address to remind about vulnerability reports")
    return counts
