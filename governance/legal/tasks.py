"""Celery adapter for legal-request reminders: it only calls the service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone
from django_scopes import scopes_disabled

from governance.core.jobs import job_run
from governance.legal import services

REMIND_TASK = "governance.legal.tasks.remind_legal_requests"


# Each reminder is recorded on its row in the same transaction as its email is queued,
# so a redelivery after a lost worker sends nothing twice.
@shared_task(name=REMIND_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def remind_legal_requests() -> None:
    """Daily: response deadlines within two days; expired non-disclosure orders with customers not told."""
    with scopes_disabled(), job_run(REMIND_TASK, lock_ttl=timedelta(minutes=10)) as run:
        if run is None:
            return
        for key, amount in services.legal_reminders_send(now=timezone.now()).items():
            run.add(key, amount)
