from __future__ import annotations

from celery import shared_task

from governance.core.jobs import job_run


# Idempotent: safe to redeliver if a worker dies mid-run.
@shared_task(name="governance.core.tasks.heartbeat", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def heartbeat() -> None:
    """A periodic no-op whose JobRun rows prove that beat schedules and a worker executes."""
    with job_run("governance.core.tasks.heartbeat") as run:
        run.add("beats")
