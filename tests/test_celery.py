"""Background jobs leave evidence (C25): JobRun rows with counts or errors, leases that
stop overlapping runs, a schedule that only names real tasks, and a real worker that
executes them through the configured broker (Redis in CI)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.conf import settings as django_settings
from django.db import connections
from kombu import Exchange
from kombu import Queue as KombuQueue

from assyst.celery import BEAT_SCHEDULE, _configure
from assyst.celery import app as celery_app
from governance.audit.models import AuditEvent
from governance.core.jobs import job_run, lock_acquire, lock_release
from governance.core.models import JobLock, JobRun
from governance.core.tasks import heartbeat

pytestmark = pytest.mark.commitment("C25")

HEARTBEAT = "governance.core.tasks.heartbeat"


# --- job_run and leases ----------------------------------------------------------------


@pytest.mark.django_db
def test_job_run_records_success_with_counts():
    with job_run("tests.job") as run:
        run.add("scanned", 2)
        run.add("scanned")
        run.add("removed")

    job = JobRun.objects.get(task="tests.job")
    assert job.outcome == JobRun.Outcome.SUCCESS
    assert job.counts == {"scanned": 3, "removed": 1}
    assert job.error == ""
    assert job.finished_at >= job.started_at
    assert job.worker


@pytest.mark.django_db
def test_job_run_records_failure_with_error_text_and_reraises():
    with pytest.raises(ValueError, match="scanner exploded"), job_run("tests.job") as run:
        run.add("scanned")
        raise ValueError("scanner exploded")

    job = JobRun.objects.get(task="tests.job")
    assert job.outcome == JobRun.Outcome.FAILURE
    assert job.error == "ValueError: scanner exploded"
    assert job.counts == {"scanned": 1}
    assert job.finished_at is not None


@pytest.mark.django_db
def test_lock_refuses_a_second_holder_until_the_lease_expires(time_machine):
    time_machine.move_to(datetime(2030, 1, 1, 12, 0, tzinfo=UTC), tick=False)
    first = lock_acquire(name="tests.lock", ttl=timedelta(minutes=5))
    assert first is not None
    assert lock_acquire(name="tests.lock", ttl=timedelta(minutes=5)) is None

    time_machine.shift(timedelta(minutes=4, seconds=59))
    assert lock_acquire(name="tests.lock", ttl=timedelta(minutes=5)) is None

    time_machine.shift(timedelta(seconds=2))  # the first holder's lease has run out
    second = lock_acquire(name="tests.lock", ttl=timedelta(minutes=5))
    assert second is not None and second != first
    assert JobLock.objects.get(name="tests.lock").holder == second

    # A stale holder cannot release the new holder's lease; the holder can.
    lock_release(name="tests.lock", holder=first)
    assert lock_acquire(name="tests.lock", ttl=timedelta(minutes=5)) is None
    lock_release(name="tests.lock", holder=second)
    assert lock_acquire(name="tests.lock", ttl=timedelta(minutes=5)) is not None


@pytest.mark.django_db
def test_job_run_with_lease_skips_an_overlapping_run_and_releases_afterwards():
    with job_run("tests.locked", lock_ttl=timedelta(minutes=5)) as outer:
        assert outer is not None
        with job_run("tests.locked", lock_ttl=timedelta(minutes=5)) as inner:
            assert inner is None
        outer.add("done")

    outcomes = sorted(JobRun.objects.filter(task="tests.locked").values_list("outcome", flat=True))
    assert outcomes == [JobRun.Outcome.SKIPPED, JobRun.Outcome.SUCCESS]
    # The lease was released when the run ended, so the next run is not skipped.
    assert lock_acquire(name="tests.locked", ttl=timedelta(minutes=5)) is not None


@pytest.mark.django_db
def test_job_run_releases_the_lease_after_a_failure():
    with pytest.raises(RuntimeError), job_run("tests.locked", lock_ttl=timedelta(minutes=5)):
        raise RuntimeError("boom")
    assert lock_acquire(name="tests.locked", ttl=timedelta(minutes=5)) is not None


# --- Configuration -----------------------------------------------------------------------


def test_beat_schedule_names_only_registered_tasks():
    celery_app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    assert celery_app.conf.beat_schedule == BEAT_SCHEDULE
    assert BEAT_SCHEDULE
    for name, entry in BEAT_SCHEDULE.items():
        assert entry["task"] in celery_app.tasks, f"beat entry {name!r} names unknown task {entry['task']!r}"


def test_json_only_and_time_limits_below_the_redis_visibility_timeout(settings):
    conf = celery_app.conf
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.enable_utc and conf.timezone == "UTC"
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit

    # The same configuration applied to a Redis broker, whatever this run uses.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    redis_app = Celery("redis-config-check")
    _configure(redis_app)
    visibility = redis_app.conf.broker_transport_options["visibility_timeout"]
    assert redis_app.conf.task_time_limit < visibility
    assert redis_app.conf.task_soft_time_limit < redis_app.conf.task_time_limit


def test_filesystem_broker_keeps_every_folder_under_the_broker_dir(settings, tmp_path):
    """kombu's default control folder is "control" in the working directory: processes
    started elsewhere would not share exchange bindings, and messages would be dropped."""
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_DIR = tmp_path
    fs_app = Celery("filesystem-config-check")
    _configure(fs_app)
    options = fs_app.conf.broker_transport_options
    folders = {k: v for k, v in options.items() if k.endswith("_folder") or k.startswith("data_folder")}
    assert set(folders) == {"data_folder_in", "data_folder_out", "processed_folder", "control_folder"}
    for key, folder in folders.items():
        assert Path(folder).is_relative_to(tmp_path), key
        assert Path(folder).is_dir(), key


def test_the_configured_broker_is_the_one_in_use():
    """Redis (with a visibility timeout above the hard time limit) when REDIS_URL is set,
    the embedded filesystem broker otherwise."""
    if django_settings.REDIS_URL:
        assert celery_app.conf.broker_url.startswith("redis")
        assert celery_app.conf.task_time_limit < celery_app.conf.broker_transport_options["visibility_timeout"]
    else:
        assert celery_app.conf.broker_url == "filesystem://"
        assert "data_folder_in" in celery_app.conf.broker_transport_options


# --- A real worker -------------------------------------------------------------------------


def _close_worker_thread_connections(**kwargs) -> None:
    # Runs in the worker thread after each task: its PostgreSQL connection must not
    # outlive the test, or dropping the test database is refused.
    connections.close_all()


def _queue_remove(queue: str) -> None:
    # Declared again on this connection so it knows the binding it is asked to remove.
    with celery_app.connection_for_write() as conn:
        bound = KombuQueue(queue, Exchange(queue), routing_key=queue).bind(conn.default_channel)
        bound.declare()
        bound.delete()
        bound.exchange.delete()
    control = celery_app.conf.broker_transport_options.get("control_folder")
    if control:  # the filesystem transport keeps an emptied binding table
        Path(control, f"{queue}.exchange").unlink(missing_ok=True)


@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_heartbeat_through_the_configured_broker():
    broker_url = celery_app.connection_for_write().as_uri()
    if django_settings.REDIS_URL:
        assert broker_url.startswith("redis")
    else:
        assert broker_url.startswith("filesystem")
    audit_before = AuditEvent.objects.count()
    last_id = JobRun.objects.order_by("-id").values_list("id", flat=True).first() or 0
    # A private queue, so a developer's worker or another test run sharing the broker
    # neither takes this message nor hands us theirs.
    queue = f"test-{uuid.uuid4().hex}"

    task_postrun.connect(_close_worker_thread_connections, weak=False)
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=[queue], shutdown_timeout=30):
            heartbeat.apply_async(queue=queue)
            deadline = time.monotonic() + 30
            run = None
            while run is None and time.monotonic() < deadline:
                run = JobRun.objects.filter(id__gt=last_id, task=HEARTBEAT).exclude(outcome="running").first()
                if run is None:
                    time.sleep(0.1)
    finally:
        task_postrun.disconnect(_close_worker_thread_connections)
        _queue_remove(queue)

    assert run is not None, "the worker did not record a heartbeat run within 30 s"
    assert run.outcome == JobRun.Outcome.SUCCESS
    assert run.counts == {"beats": 1}
    # The guard for this test's flush: no audit events were written by the worker.
    assert AuditEvent.objects.count() == audit_before
