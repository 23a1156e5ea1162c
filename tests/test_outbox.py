"""The notice outbox (C15, C17): rows written with the update, delivered over real SMTP
(aiosmtpd on loopback) with a deterministic Message-ID, retried with backoff, taken over
after a dead worker's lease, and neither lost nor duplicated when a worker is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.conf import settings as django_settings
from django.db import connection, connections, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from assyst.celery import app as celery_app
from governance.access.roles import INCIDENT_MANAGER
from governance.audit.models import AuditEvent
from governance.core.models import JobRun
from incidents import services, tasks
from incidents.models import AffectedOrganisation, Incident, IncidentUpdate, Notification
from incidents.outbox import message_id_for, outbox_claim, outbox_deliver, outbox_send, outbox_sweep
from tests.factories import OrganisationFactory, StaffFactory

pytestmark = pytest.mark.commitment("C15")

BASE_DIR = Path(__file__).resolve().parent.parent
T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
ACTIONS = "Reset the passwords of your administrators and review the access log."


# --- A real SMTP server on loopback ------------------------------------------------------------


class Sink:
    """aiosmtpd handler that keeps every message it accepted (answered 250).

    With `hold_first`, the first message is held before the final answer until `release`
    is set, and is then refused: a sender killed meanwhile never saw it accepted.
    """

    def __init__(self, *, hold_first: bool = False) -> None:
        self.accepted: list[dict] = []
        self.hold_first = hold_first
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(envelope.content, policy=default_policy)
        if self.hold_first:
            self.hold_first = False
            self.holding.set()
            await asyncio.to_thread(self.release.wait, 120)
            return "451 4.3.0 Held and dropped by the test"
        self.accepted.append({"message_id": message["Message-ID"], "to": list(envelope.rcpt_tos), "message": message})
        return "250 2.0.0 OK"

    def ids(self) -> Counter:
        return Counter(m["message_id"] for m in self.accepted)


class SmtpServer:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        with socket.socket() as s:  # an ephemeral port, kept across stop/start
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def _smtp_settings(port: int) -> dict[str, str]:
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_USE_TLS": "false",
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
    }


def _serve(settings, sink: Sink):
    server = SmtpServer(sink)
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    return server


@pytest.fixture
def smtp(settings):
    server = _serve(settings, Sink())
    yield server
    server.stop()


# --- Helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def enqueued(monkeypatch):
    """The ids the update's on-commit hook queued (no broker needed)."""
    ids: list[int] = []
    monkeypatch.setattr(tasks.deliver_notification, "delay", lambda pk: ids.append(pk))
    return ids


def _incident(orgs, *, breach: bool = False) -> tuple[Incident, object]:
    manager = StaffFactory(role=INCIDENT_MANAGER)
    now = timezone.now()
    incident = services.incident_create(
        acting_user=manager,
        title="Export service exposed invoices",
        description="Invoices were readable by other customers.",
        kind=Incident.Kind.SPECIFIC,
        detected_at=now - timedelta(hours=2),
        aware_at=now - timedelta(hours=1),
        personal_data_breach=breach,
        data_categories=["contact details"] if breach else [],
        organisations=orgs,
    )
    return incident, manager


def _post(incident, manager) -> IncidentUpdate:
    return services.incident_update_post(
        incident=incident,
        acting_user=manager,
        visibility=IncidentUpdate.Visibility.PUBLIC,
        status=Incident.Status.IDENTIFIED,
        message="We closed the export endpoint and are reviewing its logs.",
        actions_for_customers=ACTIONS,
    )


def _notice(django_capture_on_commit_callbacks, orgs, **kwargs) -> IncidentUpdate:
    incident, manager = _incident(orgs, **kwargs)
    with django_capture_on_commit_callbacks(execute=True):
        return _post(incident, manager)


def _poll(condition, *, timeout: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _statuses() -> dict[str, int]:
    return Counter(Notification.objects.values_list("status", flat=True))


# --- Rows with the update --------------------------------------------------------------------------


@pytest.mark.django_db
def test_notice_rows_are_written_in_the_update_transaction(django_capture_on_commit_callbacks, enqueued):
    orgs = OrganisationFactory.create_batch(2)
    incident, manager = _incident(orgs)

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError):
        with transaction.atomic():
            _post(incident, manager)
            assert Notification.objects.count() == 2
            raise RuntimeError("the request failed after the update")
    assert Notification.objects.count() == 0
    assert not IncidentUpdate.objects.exists()
    assert callbacks == []  # nothing queued for rows that never existed

    with django_capture_on_commit_callbacks(execute=True):
        update = _post(incident, manager)
    rows = Notification.objects.filter(update=update)
    assert rows.count() == 2
    assert sorted(enqueued) == sorted(rows.values_list("pk", flat=True))
    assert set(rows.values_list("status", flat=True)) == {Notification.Status.PENDING}


# --- Delivery ----------------------------------------------------------------------------------------


@pytest.mark.commitment("C17")
@pytest.mark.django_db
def test_delivery_sends_one_message_to_the_primary_contact_and_records_it(
    smtp, django_capture_on_commit_callbacks, enqueued
):
    orgs = OrganisationFactory.create_batch(2)
    update = _notice(django_capture_on_commit_callbacks, orgs, breach=True)

    for pk in enqueued:
        assert outbox_deliver(notification_id=pk) == "sent"
        assert outbox_deliver(notification_id=pk) == "skipped"  # a redelivered task sends nothing

    sink = smtp.sink
    assert len(sink.accepted) == 2
    for org in orgs:
        row = Notification.objects.get(update=update, organisation=org)
        [message] = [m for m in sink.accepted if m["to"] == [org.primary_contact_email]]
        assert message["message_id"] == message_id_for(row.idempotency_key) == row.message_id
        body = message["message"].get_content()
        assert "WHAT YOU SHOULD DO" in body and ACTIONS in body  # C17
        assert message["message"]["Subject"] == row.subject
        assert row.status == Notification.Status.SENT
        assert row.attempts == 1 and row.sent_at is not None and row.lease_until is None and row.last_error == ""
        affected = AffectedOrganisation.objects.get(incident=update.incident, organisation=org)
        assert affected.notified_at == row.sent_at

        event = AuditEvent.objects.get(action="incident.notice_sent", object_id=str(row.pk))
        assert event.organisation_id == org.pk
        assert event.data["message_id"] == row.message_id
        assert org.primary_contact_email not in str(event.data) + event.object_repr


@pytest.mark.django_db
def test_a_later_notice_keeps_the_first_notified_at(smtp, django_capture_on_commit_callbacks, enqueued):
    [org] = OrganisationFactory.create_batch(1)
    first = _notice(django_capture_on_commit_callbacks, [org])
    outbox_deliver(notification_id=enqueued.pop())
    notified_at = AffectedOrganisation.objects.get(incident=first.incident).notified_at
    with django_capture_on_commit_callbacks(execute=True):
        _post(first.incident, first.created_by)
    outbox_deliver(notification_id=enqueued.pop())
    assert AffectedOrganisation.objects.get(incident=first.incident).notified_at == notified_at
    assert len(smtp.sink.ids()) == 2


@pytest.mark.django_db
def test_smtp_down_keeps_the_row_pending_with_backoff_and_the_sweep_delivers_later(
    smtp, django_capture_on_commit_callbacks, enqueued, time_machine
):
    time_machine.move_to(T0, tick=False)
    [org] = OrganisationFactory.create_batch(1)
    _notice(django_capture_on_commit_callbacks, [org])
    [pk] = enqueued
    smtp.stop()

    assert outbox_deliver(notification_id=pk) == "retry"
    row = Notification.objects.get(pk=pk)
    assert row.status == Notification.Status.PENDING and row.attempts == 1
    assert "Connection refused" in row.last_error or "ConnectionRefused" in row.last_error
    assert org.primary_contact_email not in row.last_error
    assert row.next_attempt_at == T0 + timedelta(seconds=30)
    assert row.lease_until is None and row.sent_at is None
    assert AffectedOrganisation.objects.get(organisation=org).notified_at is None

    assert outbox_sweep(now=T0 + timedelta(seconds=29), limit=100)["due"] == 0  # not before its time
    time_machine.move_to(T0 + timedelta(seconds=30), tick=False)
    assert outbox_sweep(now=timezone.now(), limit=100)["retry"] == 1
    row.refresh_from_db()
    assert row.attempts == 2 and row.next_attempt_at == T0 + timedelta(seconds=90)  # 30 s, then 60 s

    smtp.start()
    time_machine.move_to(T0 + timedelta(seconds=90), tick=False)
    assert outbox_sweep(now=timezone.now(), limit=100) == {
        "due": 1, "sent": 1, "retry": 0, "failed": 0, "skipped": 0, "missing": 0
    }  # fmt: skip
    row.refresh_from_db()
    assert row.status == Notification.Status.SENT and row.attempts == 3 and row.last_error == ""
    assert list(smtp.sink.ids().values()) == [1]


@pytest.mark.django_db
def test_after_max_attempts_the_row_is_failed_and_audited(
    smtp, settings, django_capture_on_commit_callbacks, enqueued, time_machine
):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    time_machine.move_to(T0, tick=False)
    [org] = OrganisationFactory.create_batch(1)
    _notice(django_capture_on_commit_callbacks, [org])
    [pk] = enqueued
    smtp.stop()

    outcomes = []
    for _ in range(3):
        outcomes += [outbox_deliver(notification_id=pk)]
        time_machine.shift(timedelta(hours=1))
    assert outcomes == ["retry", "retry", "failed"]
    row = Notification.objects.get(pk=pk)
    assert row.status == Notification.Status.FAILED and row.attempts == 3 and row.last_error
    event = AuditEvent.objects.get(action="incident.notice_failed")
    assert event.data["attempts"] == 3 and event.organisation_id == org.pk

    smtp.start()
    assert outbox_sweep(now=timezone.now() + timedelta(days=1), limit=100)["due"] == 0  # given up
    assert smtp.sink.accepted == []


@pytest.mark.django_db
def test_a_row_whose_worker_died_is_taken_over_by_the_sweep_after_its_lease(
    smtp, settings, django_capture_on_commit_callbacks, enqueued, time_machine
):
    time_machine.move_to(T0, tick=False)
    [org] = OrganisationFactory.create_batch(1)
    _notice(django_capture_on_commit_callbacks, [org])
    [pk] = enqueued
    lease = timedelta(seconds=settings.OUTBOX_SEND_LEASE_SECONDS)

    claimed = outbox_claim(notification_id=pk, now=T0)  # ... and the worker dies here
    assert claimed.status == Notification.Status.SENDING and claimed.lease_until == T0 + lease

    time_machine.move_to(T0 + lease - timedelta(seconds=1), tick=False)
    assert outbox_sweep(now=timezone.now(), limit=100)["due"] == 0  # the lease still holds
    assert outbox_deliver(notification_id=pk) == "skipped"  # so does a redelivered task

    time_machine.move_to(T0 + lease + timedelta(seconds=1), tick=False)
    assert outbox_sweep(now=timezone.now(), limit=100)["sent"] == 1
    row = Notification.objects.get(pk=pk)
    assert row.status == Notification.Status.SENT and row.attempts == 2
    assert smtp.sink.ids() == Counter({message_id_for(row.idempotency_key): 1})


@pytest.mark.django_db
def test_a_slow_sender_after_a_takeover_does_not_change_the_sent_row(
    smtp, settings, django_capture_on_commit_callbacks, enqueued, time_machine
):
    time_machine.move_to(T0, tick=False)
    [org] = OrganisationFactory.create_batch(1)
    _notice(django_capture_on_commit_callbacks, [org])
    [pk] = enqueued
    slow = outbox_claim(notification_id=pk, now=T0)
    time_machine.shift(timedelta(seconds=settings.OUTBOX_SEND_LEASE_SECONDS + 1))
    assert outbox_deliver(notification_id=pk) == "sent"
    sent = Notification.objects.get(pk=pk)

    time_machine.shift(timedelta(seconds=5))
    outbox_send(slow)  # the slow one finally gets through: same Message-ID, row unchanged
    row = Notification.objects.get(pk=pk)
    assert (row.status, row.sent_at, row.attempts) == (Notification.Status.SENT, sent.sent_at, 2)
    assert AuditEvent.objects.filter(action="incident.notice_sent").count() == 1
    assert set(smtp.sink.ids()) == {row.message_id}


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claims_of_one_row_have_one_winner():
    now = timezone.now()
    rows = [
        Notification.objects.create(
            idempotency_key=f"test:{i}", recipient=f"r{i}@customer.example", subject="s", body="b", next_attempt_at=now
        )
        for i in range(20)
    ]
    if connection.vendor != "postgresql":
        # SQLite serialises writers (BEGIN IMMEDIATE): a sequential check is what it can show.
        for row in rows:
            assert outbox_claim(notification_id=row.pk, now=now) is not None
            assert outbox_claim(notification_id=row.pk, now=now) is None
        return

    winners: list[int] = []
    errors: list[BaseException] = []
    for row in rows:
        barrier = threading.Barrier(2)

        def claim(pk=row.pk, barrier=barrier):
            try:
                barrier.wait(timeout=10)
                if outbox_claim(notification_id=pk, now=now) is not None:
                    winners.append(pk)
            except BaseException as exc:
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=claim) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert sorted(winners) == sorted(r.pk for r in rows)  # exactly one winner per row
    assert set(Notification.objects.values_list("attempts", flat=True)) == {1}

    # And while one transaction holds the row lock, a claim skips it instead of waiting.
    locked, release = threading.Event(), threading.Event()
    extra = Notification.objects.create(
        idempotency_key="test:locked", recipient="x@customer.example", subject="s", body="b", next_attempt_at=now
    )

    def hold():
        with transaction.atomic():
            Notification.objects.select_for_update().get(pk=extra.pk)
            locked.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        assert outbox_claim(notification_id=extra.pk, now=now) is None
    finally:
        release.set()
        holder.join(10)
    assert outbox_claim(notification_id=extra.pk, now=now) is not None


# --- Broker down -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_broker_down_the_update_still_commits_and_the_sweep_delivers(
    smtp, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(pk):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.deliver_notification, "delay", broker_down)
    orgs = OrganisationFactory.create_batch(3)
    update = _notice(django_capture_on_commit_callbacks, orgs)  # no exception escapes the hook

    assert Notification.objects.filter(update=update, status=Notification.Status.PENDING).count() == 3
    assert smtp.sink.accepted == []

    tasks.sweep_outbox()
    run = JobRun.objects.get(task=tasks.SWEEP_TASK)
    assert run.outcome == JobRun.Outcome.SUCCESS
    assert run.counts["due"] == 3 and run.counts["sent"] == 3
    assert _statuses() == {Notification.Status.SENT: 3}
    assert sorted(smtp.sink.ids().values()) == [1, 1, 1]


@pytest.mark.django_db
def test_a_vanished_row_is_ignored(smtp):
    tasks.deliver_notification(987654321)
    assert outbox_deliver(notification_id=987654321) == "missing"
    assert smtp.sink.accepted == []


# --- Real workers ----------------------------------------------------------------------------------


def _close_worker_thread_connections(**kwargs) -> None:
    connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_the_queued_notices(smtp, monkeypatch):
    queue = f"test-outbox-{uuid.uuid4().hex}"
    monkeypatch.setattr(
        tasks.deliver_notification, "delay", lambda pk: tasks.deliver_notification.apply_async((pk,), queue=queue)
    )
    orgs = OrganisationFactory.create_batch(3)
    incident, manager = _incident(orgs)
    if connection.vendor == "sqlite":
        # The in-memory test database is shared between this thread and the worker's in
        # SQLite's shared-cache mode, where a reader's table lock makes the worker's write
        # fail at once ("table is locked"); let this thread's polling read without locks.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = 1")

    task_postrun.connect(_close_worker_thread_connections, weak=False)
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=[queue], shutdown_timeout=30):
            update = _post(incident, manager)  # commits; on commit the tasks are queued
            _poll(lambda: _statuses() == {"sent": 3}, timeout=30, what="three sent notices")
    finally:
        task_postrun.disconnect(_close_worker_thread_connections)
    assert sorted(smtp.sink.ids().values()) == [1, 1, 1]
    assert not AffectedOrganisation.objects.filter(incident=update.incident, notified_at__isnull=True).exists()


def _subprocess_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.postgresql":
        auth = quote(db["USER"] or "", safe="")
        if db["PASSWORD"]:
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = f"{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}"
        return f"postgres://{auth}@{host}/{quote(db['NAME'], safe='')}"
    name = str(db["NAME"])
    if name == ":memory:" or "mode=memory" in name:
        message = "the test database is in-memory SQLite: a worker subprocess cannot share it (runs in CI)"
        if os.environ.get("CI_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    return f"sqlite:///{Path(name).resolve()}"


class WorkerProcess:
    """`celery -A assyst worker --pool solo` on a private queue, against the test database."""

    def __init__(self, queue: str, env: dict[str, str], log: Path) -> None:
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "assyst", "worker", "--pool", "solo", "-Q", queue,
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
            cwd=BASE_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.mark.django_db(transaction=True)
def test_killing_the_worker_during_a_send_loses_and_duplicates_nothing(settings, monkeypatch, tmp_path):
    database_url = _subprocess_database_url()
    sink = Sink(hold_first=True)
    server = _serve(settings, sink)
    queue = f"test-outbox-kill-{uuid.uuid4().hex}"
    lease = 3
    env = {
        **os.environ,
        **_smtp_settings(server.port),
        "DATABASE_URL": database_url,
        "DATABASE_CONN_MAX_AGE": "0",
        "OUTBOX_SEND_LEASE_SECONDS": str(lease),
    }
    monkeypatch.setattr(
        tasks.deliver_notification, "delay", lambda pk: tasks.deliver_notification.apply_async((pk,), queue=queue)
    )
    orgs = OrganisationFactory.create_batch(4)
    incident, manager = _incident(orgs)
    log = tmp_path / "worker.log"
    workers: list[WorkerProcess] = []
    try:
        workers.append(WorkerProcess(queue, env, log))
        update = _post(incident, manager)  # committed; four tasks queued on commit
        if not sink.holding.wait(60):
            raise AssertionError("the worker never reached the SMTP server:\n" + log.read_text()[-3000:])
        workers[0].kill()  # SIGKILL while the server has not answered the first message
        sink.release.set()
        [stuck] = Notification.objects.filter(status=Notification.Status.SENDING)
        assert stuck.attempts == 1 and stuck.sent_at is None

        workers.append(WorkerProcess(queue, env, log))  # a new worker takes the rest of the queue
        _poll(lambda: _statuses().get("sent") == 3, timeout=60, what="the three queued notices")
        _poll(lambda: timezone.now() > stuck.lease_until, timeout=lease + 5, what="the lease to run out")
        tasks.sweep_outbox.apply_async(queue=queue)  # what beat does every minute
        _poll(lambda: _statuses() == {"sent": 4}, timeout=60, what="the sweep to take over the killed send")
    finally:
        for worker in workers:
            worker.stop()
        server.stop()

    rows = list(Notification.objects.filter(update=update))
    ids = sink.ids()
    assert len(rows) == 4
    assert {r.message_id for r in rows} == set(ids)  # 0 lost: every notice was accepted ...
    assert len(ids) == len(rows)  # ... under its own Message-ID
    assert max(ids.values()) == 1  # 0 duplicates
    stuck.refresh_from_db()
    assert stuck.status == Notification.Status.SENT and stuck.attempts == 2
    assert not AffectedOrganisation.objects.filter(incident=incident, notified_at__isnull=True).exists()
    assert django_settings.OUTBOX_SEND_LEASE_SECONDS != lease  # the short lease was the workers' only
