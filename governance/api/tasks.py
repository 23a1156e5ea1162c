"""Celery adapters for the integration API."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from governance.core.jobs import job_run

PURGE_TASK = "governance.api.tasks.purge_idempotency_records"


@shared_task(name=PURGE_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def purge_idempotency_records() -> None:
    """Daily: stored first responses of Idempotency-Keys past their lifetime are deleted."""
    from governance.api.idempotency import idempotency_records_purge

    with job_run(PURGE_TASK, lock_ttl=timedelta(minutes=10)) as run:
        if run is None:
            return
        run.add("deleted", idempotency_records_purge(now=timezone.now()))
