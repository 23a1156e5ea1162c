"""The notice-deadline monitor (C12, C13).

Each affected organisation of a personal-data breach has a notice deadline: aware + 72 h
for a controller (GDPR Art. 33(1)), aware + the "undue delay" target for a processor
(Art. 33(2)). While the notice is outstanding, a scan run every minute by beat escalates
to the incident manager and the data protection officer at 50, 75 and 90 % of the
window, and marks the deadline missed when it passes. Deadlines are rows scanned here,
never long Celery ETAs (they would be redelivered after the Redis visibility timeout).

These are internal escalations to staff, sent with `send_mail` after commit; customer
notices go through the outbox instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from governance.access.models import User
from governance.access.roles import DATA_PROTECTION_OFFICER, INCIDENT_MANAGER
from governance.audit.services import audit_record
from incidents.models import AffectedOrganisation

# Escalation levels, in percent of the window [aware_at, deadline_at].
THRESHOLDS: tuple[int, ...] = (50, 75, 90)
MISSED = "missed"


def open_deadlines():
    """Every outstanding notice: a deadline, no notice sent yet (all tenants)."""
    return AffectedOrganisation.objects.with_scopes_disabled().filter(
        deadline_at__isnull=False, notified_at__isnull=True
    )


def threshold_reached(*, aware_at: datetime, deadline_at: datetime, now: datetime) -> int:
    """The highest threshold (50, 75, 90) crossed at `now`, or 0.

    Exact integer arithmetic on timedeltas (microseconds), so a threshold is crossed at
    its exact second and never one tick early through float rounding.
    """
    window = deadline_at - aware_at
    elapsed = now - aware_at
    return max((t for t in THRESHOLDS if elapsed * 100 >= window * t), default=0)


def deadlines_scan(*, now: datetime) -> dict[str, int]:
    """Escalate outstanding notices that crossed a threshold; mark passed deadlines missed.

    Each row is handled in its own transaction under `select_for_update(skip_locked=True)`:
    a concurrent scan skips rows being handled, and the recorded `escalated_percent` /
    `missed_at` make a second scan send nothing again. After a gap (beat was down) only
    the highest crossed threshold is sent.
    """
    counts = {"scanned": 0, "escalated": 0, "missed": 0}
    candidates = open_deadlines().filter(missed_at__isnull=True).values_list("pk", flat=True)
    for pk in list(candidates):
        counts["scanned"] += 1
        with transaction.atomic():
            affected = (
                open_deadlines()
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("incident")
                .filter(pk=pk, missed_at__isnull=True)
                .first()
            )
            if affected is None:
                continue  # notified, missed or being handled by another scan meanwhile
            level = _due_level(affected, now)
            if level is None:
                continue
            if level == MISSED:
                affected.missed_at = now
                affected.save(update_fields=["missed_at"])
                counts["missed"] += 1
            else:
                affected.escalated_percent = level
                affected.save(update_fields=["escalated_percent"])
                counts["escalated"] += 1
            audit_record(
                action="incident.deadline_missed" if level == MISSED else "incident.deadline_escalated",
                obj=affected,
                data={
                    "incident": affected.incident_id,
                    "level": level,
                    "deadline_at": affected.deadline_at,
                    "role": affected.role,
                },
            )
            transaction.on_commit(lambda pk=affected.pk, level=level: _notify(pk, level))
    return counts


def _due_level(affected: AffectedOrganisation, now: datetime) -> int | str | None:
    if now >= affected.deadline_at:
        return MISSED
    reached = threshold_reached(aware_at=affected.incident.aware_at, deadline_at=affected.deadline_at, now=now)
    return reached if reached > affected.escalated_percent else None


def _notify(affected_id: int, level: int | str) -> None:
    from incidents.tasks_deadlines import notify_deadline_escalation

    notify_deadline_escalation.delay(affected_id, level)


# --- who is told and what --------------------------------------------------------------------


def escalation_recipients(affected: AffectedOrganisation) -> list[str]:
    """The incident's manager and every active DPO; the incident-manager group when the
    incident has nobody in charge. Staff addresses only."""
    manager_id = affected.incident.incident_manager_id
    who = Q(groups__name=DATA_PROTECTION_OFFICER)
    who |= Q(pk=manager_id) if manager_id else Q(groups__name=INCIDENT_MANAGER)
    users = User.objects.filter(who, is_active=True, is_staff=True)
    return sorted({email for email in users.values_list("email", flat=True) if email})


@dataclass(frozen=True)
class Escalation:
    subject: str
    body: str
    recipients: list[str]


def escalation_message(affected: AffectedOrganisation, level: int | str, *, now: datetime) -> Escalation:
    incident = affected.incident
    missed = level == MISSED
    if missed:
        subject = f"[Assyst] MISSED breach-notice deadline: {affected.organisation.name} in incident #{incident.pk}"
    else:
        subject = (
            f"[Assyst] Breach notice {level} % of the way to its deadline: "
            f"{affected.organisation.name} in incident #{incident.pk}"
        )
    context = {
        "affected": affected,
        "incident": incident,
        "level": level,
        "missed": missed,
        "left": _hours_left(affected.deadline_at, now),
        "admin_url": f"{settings.SITE_URL}/admin/incidents/incident/{incident.pk}/change/",
    }
    return Escalation(
        subject=subject,
        body=render_to_string("email/incident_escalation.txt", context),
        recipients=escalation_recipients(affected),
    )


def _hours_left(deadline_at: datetime, now: datetime) -> str:
    seconds = int((deadline_at - now).total_seconds())
    if seconds <= 0:
        return "none: the deadline has passed"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60} min"


def escalation_prepare(*, affected_id: int, level: int | str) -> Escalation | None:
    """The message for a recorded escalation, or None when it no longer applies: the row
    vanished, or the notice went out before this threshold's email did."""
    affected = open_deadlines().select_related("incident", "organisation").filter(pk=affected_id).first()
    if affected is None and level == MISSED:
        # A notice sent after the miss does not undo the miss: still tell them.
        affected = (
            AffectedOrganisation.objects.with_scopes_disabled()
            .select_related("incident", "organisation")
            .filter(pk=affected_id)
            .first()
        )
    if affected is None:
        return None
    return escalation_message(affected, level, now=timezone.now())
