"""Celery adapters for incidents: deliver outbox rows and sweep the outbox."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone
from django_scopes import scopes_disabled

from governance.core.jobs import job_run
from incidents import outbox

log = logging.getLogger(__name__)

SWEEP_TASK = "incidents.tasks.sweep_outbox"
# One sweep delivers at most this many rows and stops taking new ones after the budget,
# so it ends well inside its lease and the task time limits; the next minute continues.
SWEEP_LIMIT = 1000
SWEEP_BUDGET_SECONDS = 50
SWEEP_LEASE = timedelta(seconds=SWEEP_BUDGET_SECONDS + outbox.SEND_TIMEOUT_SECONDS + 40)


# acks_late + reject_on_worker_lost: a redelivery is harmless because the claim (status +
# lease) lets only one sender have the row, and a sent row is never claimed again.
@shared_task(
    name="incidents.tasks.deliver_notification", ignore_result=True, acks_late=True, reject_on_worker_lost=True
)
def deliver_notification(notification_id: int) -> None:
    """Send one outbox row now; failures are rescheduled on the row, not by Celery."""
    with scopes_disabled():
        outcome = outbox.outbox_deliver(notification_id=notification_id)
    if outcome == "missing":
        log.warning("notification %s vanished before delivery", notification_id)


@shared_task(name=SWEEP_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def sweep_outbox() -> None:
    """Every minute: deliver rows whose retry is due, whose task was lost (broker down at
    commit) or whose worker died mid-send (lease expired)."""
    with scopes_disabled(), job_run(SWEEP_TASK, lock_ttl=SWEEP_LEASE) as run:
        if run is None:
            return
        counts = outbox.outbox_sweep(now=timezone.now(), limit=SWEEP_LIMIT, budget_seconds=SWEEP_BUDGET_SECONDS)
        for key, value in counts.items():
            run.add(key, value)


# Autodiscovery imports `<app>.tasks` only: the other task modules register from here.
from incidents import tasks_deadlines, tasks_reports  # noqa: E402, F401
