"""Celery tasks for report and RCA requests (C16, C20)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone
from django_scopes import scopes_disabled

from governance.core.jobs import job_run
from incidents import reports

REMIND_TASK = "incidents.tasks_reports.remind_report_requests"


# Each message is recorded in reminder_sent_at in the same transaction, so a redelivery
# after a lost worker sends nothing twice.
@shared_task(name=REMIND_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def remind_report_requests() -> None:
    """Daily: remind incident managers a working day before a report's target; flag overdue ones."""
    with scopes_disabled(), job_run(REMIND_TASK, lock_ttl=timedelta(minutes=10)) as run:
        if run is None:
            return
        for key, amount in reports.report_requests_remind(now=timezone.now()).items():
            run.add(key, amount)
