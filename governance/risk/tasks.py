"""Celery adapters for the risk register (C23, C26): daily scans and owner emails.

Scans are idempotent (reminder rows are unique per risk, due date and kind; expiry and
flags are state changes checked under lock), so a redelivery is harmless.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import timezone
from django_scopes import scopes_disabled

from governance.core.jobs import EMAIL_TASK_OPTIONS, job_run
from governance.risk.models import ContinuityPlan, ReviewReminder, RiskAcceptance

log = logging.getLogger(__name__)

REVIEWS_TASK = "governance.risk.tasks.remind_risk_reviews"
EXPIRE_TASK = "governance.risk.tasks.expire_risk_acceptances"
CONTINUITY_TASK = "governance.risk.tasks.check_continuity_plans"


def _admin_url(path: str) -> str:
    return f"{settings.SITE_URL}/admin/risk/{path}"


@shared_task(name=REVIEWS_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def remind_risk_reviews() -> None:
    """Daily: reminders 30 and 7 days before and on the review date; overdue flags."""
    from governance.risk.reviews import review_reminders_send

    with scopes_disabled(), job_run(REVIEWS_TASK, lock_ttl=timedelta(minutes=10)) as run:
        if run is None:
            return
        for key, value in review_reminders_send(today=timezone.localdate()).items():
            run.add(key, value)


@shared_task(name=EXPIRE_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def expire_risk_acceptances() -> None:
    """Daily: expired acceptances reopen their risk and tell the owner."""
    from governance.risk.services import acceptances_expire

    with scopes_disabled(), job_run(EXPIRE_TASK, lock_ttl=timedelta(minutes=10)) as run:
        if run is None:
            return
        run.add("expired", len(acceptances_expire(today=timezone.localdate())))


@shared_task(name=CONTINUITY_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def check_continuity_plans() -> None:
    """Daily: plans with an overdue review or no exercise within a year are flagged (C23)."""
    from governance.risk.continuity import continuity_plans_flag

    with scopes_disabled(), job_run(CONTINUITY_TASK, lock_ttl=timedelta(minutes=10)) as run:
        if run is None:
            return
        run.add("flagged", continuity_plans_flag(today=timezone.localdate()))


@shared_task(name="governance.risk.tasks.send_review_reminder", **EMAIL_TASK_OPTIONS)
def send_review_reminder(reminder_id: int) -> None:
    from governance.risk.services import risk_owner_recipients

    reminder = ReviewReminder.objects.filter(pk=reminder_id).select_related("risk__owner", "risk__owner_team").first()
    if reminder is None:
        log.warning("review reminder %s vanished before sending", reminder_id)
        return
    risk = reminder.risk
    recipients = risk_owner_recipients(risk)
    if not recipients:
        log.warning("risk %s has no owner address; reminder %s not emailed", risk.code, reminder_id)
        return
    days = (reminder.due_on - timezone.localdate()).days
    if reminder.kind == ReviewReminder.Kind.OVERDUE:
        subject = f"[Assyst] Risk review overdue: {risk.code} (due {reminder.due_on:%Y-%m-%d})"
    elif days <= 0:
        subject = f"[Assyst] Risk review due today: {risk.code}"
    else:
        subject = f"[Assyst] Risk review due in {days} days: {risk.code} ({reminder.due_on:%Y-%m-%d})"
    body = render_to_string(
        "risk/email/review_reminder.txt",
        {"risk": risk, "reminder": reminder, "days": days, "url": _admin_url(f"risk/{risk.pk}/change/")},
    )
    send_mail(subject, body, None, recipients)


@shared_task(name="governance.risk.tasks.notify_acceptance_expired", **EMAIL_TASK_OPTIONS)
def notify_acceptance_expired(acceptance_id: int) -> None:
    from governance.risk.services import risk_owner_recipients

    acceptance = (
        RiskAcceptance.objects.filter(pk=acceptance_id).select_related("risk__owner", "risk__owner_team").first()
    )
    if acceptance is None:
        log.warning("risk acceptance %s vanished before notification", acceptance_id)
        return
    risk = acceptance.risk
    recipients = risk_owner_recipients(risk)
    if recipients:
        body = render_to_string(
            "risk/email/acceptance_expired.txt",
            {"risk": risk, "acceptance": acceptance, "url": _admin_url(f"risk/{risk.pk}/change/")},
        )
        send_mail(f"[Assyst] Risk acceptance expired, risk reopened: {risk.code}", body, None, recipients)


@shared_task(name="governance.risk.tasks.notify_continuity_plan", **EMAIL_TASK_OPTIONS)
def notify_continuity_plan(plan_id: int) -> None:
    from governance.risk.continuity import plan_flags

    plan = ContinuityPlan.objects.filter(pk=plan_id).select_related("owner").first()
    if plan is None or not plan.owner.email:
        return
    flags = plan_flags(plan, today=timezone.localdate())
    if not flags:
        return
    body = render_to_string(
        "risk/email/continuity_flagged.txt",
        {"plan": plan, "flags": flags, "url": _admin_url(f"continuityplan/{plan.pk}/change/")},
    )
    send_mail(f"[Assyst] Continuity plan needs attention: {plan.title}", body, None, [plan.owner.email])
