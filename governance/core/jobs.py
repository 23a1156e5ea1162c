"""Running periodic jobs: a lease so runs never overlap, and a JobRun row for each run."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from governance.core.models import JobLock, JobRun

log = logging.getLogger(__name__)


def lock_acquire(*, name: str, ttl: timedelta) -> str | None:
    """Take the lease `name` for `ttl`; return a holder token, or None if it is held."""
    holder = f"{socket.gethostname()}:{uuid.uuid4().hex}"
    now = timezone.now()
    try:
        with transaction.atomic():
            JobLock.objects.get_or_create(name=name)
    except IntegrityError:
        pass  # created concurrently; the conditional update below decides
    taken = JobLock.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__lt=now), name=name).update(
        holder=holder, expires_at=now + ttl
    )
    return holder if taken else None


def lock_release(*, name: str, holder: str) -> None:
    JobLock.objects.filter(name=name, holder=holder).update(holder="", expires_at=None)


class RunRecorder:
    """Handed to the job body so it can report counts."""

    def __init__(self, run: JobRun) -> None:
        self.run = run
        self.counts: dict[str, int] = {}

    def add(self, key: str, amount: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + amount


@contextmanager
def job_run(task: str, *, lock_ttl: timedelta | None = None) -> Iterator[RunRecorder | None]:
    """Record a JobRun around the block; with `lock_ttl`, skip if another run holds the lease.

    Yields None when the run was skipped. Exceptions are recorded and re-raised.
    """
    worker = socket.gethostname()
    holder = None
    if lock_ttl is not None:
        holder = lock_acquire(name=task, ttl=lock_ttl)
        if holder is None:
            now = timezone.now()
            JobRun.objects.create(
                task=task, started_at=now, finished_at=now, outcome=JobRun.Outcome.SKIPPED, worker=worker
            )
            yield None
            return
    run = JobRun.objects.create(task=task, started_at=timezone.now(), worker=worker)
    recorder = RunRecorder(run)
    try:
        yield recorder
    except BaseException as exc:
        run.outcome = JobRun.Outcome.FAILURE
        run.error = f"{type(exc).__name__}: {exc}"[:5000]
        raise
    else:
        run.outcome = JobRun.Outcome.SUCCESS
    finally:
        run.finished_at = timezone.now()
        run.counts = recorder.counts
        run.save(update_fields=["outcome", "error", "finished_at", "counts"])
        if holder:
            lock_release(name=task, holder=holder)


# Options of every task that sends email to staff: a redelivery after a lost worker means
# at worst a second email, which beats none; SMTP hiccups (OSError) retry with backoff.
EMAIL_TASK_OPTIONS = {
    "ignore_result": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (OSError,),
    "retry_backoff": 30,
    "max_retries": 8,
}
