"""Celery tasks for the notice-deadline monitor (C12, C13)."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.core.mail import send_mail
from django.utils import timezone
from django_scopes import scopes_disabled

from governance.core.jobs import EMAIL_TASK_OPTIONS, job_run
from incidents import deadlines

log = logging.getLogger(__name__)

WATCH_TASK = "incidents.tasks_deadlines.watch_notice_deadlines"
NOTIFY_TASK = "incidents.tasks_deadlines.notify_deadline_escalation"


# Idempotent (each row records its escalation level and miss), so redelivery is harmless.
@shared_task(name=WATCH_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def watch_notice_deadlines() -> None:
    """Every minute: escalate outstanding breach notices at 50/75/90 %, mark misses."""
    with scopes_disabled(), job_run(WATCH_TASK, lock_ttl=timedelta(minutes=5)) as run:
        if run is None:
            return
        for key, amount in deadlines.deadlines_scan(now=timezone.now()).items():
            run.add(key, amount)


@shared_task(name=NOTIFY_TASK, **EMAIL_TASK_OPTIONS)
def notify_deadline_escalation(affected_id: int, level: int | str) -> None:
    """Email staff about one recorded escalation or miss (internal, not a customer notice)."""
    with scopes_disabled():
        message = deadlines.escalation_prepare(affected_id=affected_id, level=level)
    if message is None:
        log.info("deadline escalation %s for affected organisation %s no longer applies", level, affected_id)
        return
    if not message.recipients:
        log.error("deadline escalation %s for affected organisation %s has nobody to tell", level, affected_id)
        return
    send_mail(message.subject, message.body, None, message.recipients)
