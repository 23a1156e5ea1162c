"""Outbox delivery benchmark: one specific incident affecting N organisations, one public
update (N outbox rows), delivered by a real Celery worker to a local SMTP sink.

    make bench                      # 10,000 organisations
    make bench ORGS=1000            # quicker

Uses a throwaway database (a temporary SQLite file, or a temporary PostgreSQL database
created and dropped here when DATABASE_URL is set) and Redis when REDIS_URL is set (a
private queue), else the filesystem broker in a temporary folder. Two runs: an
undisturbed one, and one where the worker is SIGKILLed half way, restarted, and the
outbox sweep takes over what the dead worker held. Prints, per run: rows, wall time,
messages/second, duplicates (Message-IDs the SMTP server accepted more than once), lost
(notifications never accepted) and the worker's peak RSS.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from email.parser import BytesHeaderParser
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Sink:
    """SMTP handler counting accepted messages by Message-ID."""

    def __init__(self) -> None:
        self.ids: Counter = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        message_id = BytesHeaderParser().parsebytes(envelope.content)["Message-ID"]
        with self.lock:
            self.ids[message_id] += 1
        return "250 2.0.0 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- worker process tree -----------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


def _vmhwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Worker:
    def __init__(self, queue: str, env: dict[str, str], log: Path, concurrency: int) -> None:
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "assyst", "worker", "-Q", queue,
             "--concurrency", str(concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel", "WARNING"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.peaks: dict[int, int] = {}

    def sample(self) -> None:
        for pid in _tree(self.process.pid):
            self.peaks[pid] = max(self.peaks.get(pid, 0), _vmhwm_kib(pid))

    def kill(self) -> None:
        self.sample()
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(60)
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.sample()
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(60)
        if not self.log.closed:
            self.log.close()


# --- database -------------------------------------------------------------------------------


def create_database(tmp: Path) -> tuple[str, callable]:
    """A throwaway database URL and the function that drops it."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return f"sqlite:///{tmp / 'bench.sqlite3'}", lambda: None
    import psycopg

    parts = urlsplit(url)
    name = f"assyst_bench_{uuid.uuid4().hex[:12]}"
    admin = urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(parts._replace(path=f"/{name}")), drop


# --- the runs -----------------------------------------------------------------------------------


def deliver_run(*, label, update_post, queue, env, tmp, concurrency, kill_half, lease, sink, timeout):
    from django.db import connections

    from incidents import tasks
    from incidents.models import Notification
    from incidents.outbox import message_id_for

    log = tmp / f"worker-{label}.log"
    workers = [Worker(queue, env, log, concurrency)]
    started = time.monotonic()
    update = update_post()
    posted = time.monotonic() - started
    rows = Notification.objects.filter(update=update)
    total = rows.count()
    sent_q = rows.filter(status=Notification.Status.SENT)
    killed_at = None
    last_sent, last_change, last_sweep = -1, time.monotonic(), 0.0
    deadline = started + timeout
    sent = 0
    while time.monotonic() < deadline:
        for worker in workers:
            worker.sample()
        sent = sent_q.count()
        now = time.monotonic()
        if sent != last_sent:
            last_sent, last_change = sent, now
        if sent >= total:
            break
        if kill_half and killed_at is None and sent >= total // 2:
            workers[-1].kill()
            killed_at = sent
            workers.append(Worker(queue, env, log, concurrency))
            last_change = now
        elif now - last_change > 3 and now - last_sweep > 3:
            # What beat does every minute: the sweep takes rows whose task was lost or
            # whose worker died (after the lease) and retries that are due.
            tasks.sweep_outbox.apply_async(queue=queue)
            last_sweep = now
        time.sleep(0.25)
    wall = time.monotonic() - started
    for worker in workers:
        worker.stop()
    connections.close_all()

    expected = {message_id_for(k) for k in rows.values_list("idempotency_key", flat=True)}
    with sink.lock:
        accepted = {mid: n for mid, n in sink.ids.items() if mid in expected}
    peaks = [sum(w.peaks.values()) for w in workers]
    per_process = max(max(w.peaks.values(), default=0) for w in workers)
    return {
        "run": label,
        "rows": total,
        "post_s": posted,
        "wall_s": wall,
        "msg_per_s": len(accepted) / wall if wall else 0.0,
        "duplicates": sum(1 for n in accepted.values() if n > 1),
        "lost": len(expected - set(accepted)),
        "sent_rows": sent,
        "killed_after": killed_at,
        "rss_tree_mib": max(peaks) / 1024,
        "rss_process_mib": per_process / 1024,
        "log": log,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orgs", type=int, default=10_000, help="affected organisations = outbox rows (10,000)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--lease", type=int, default=5, help="OUTBOX_SEND_LEASE_SECONDS for the run (5)")
    parser.add_argument("--timeout", type=int, default=1200, help="give up a run after this many seconds")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="assyst-bench-"))
    database_url, drop_database = create_database(tmp)
    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_ENV_FILE": "/nonexistent",
        "DJANGO_DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CRYPTOGRAPHY_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": database_url,
        "BENCH_BROKER_DIR": str(tmp / "broker"),
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_USE_TLS": "false",
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "OUTBOX_SEND_LEASE_SECONDS": str(args.lease),
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    results = []
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.utils import timezone
        from django_scopes import scopes_disabled

        from assyst.celery import app as celery_app
        from governance.access.models import User
        from governance.tenancy.models import Organisation
        from incidents import services, tasks
        from incidents.models import Incident, IncidentUpdate

        broker = celery_app.connection_for_write().as_uri()
        database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[1]
        print(f"database: {database} (throwaway), broker: {broker.split('://')[0]}, orgs: {args.orgs:,}", flush=True)
        started = time.monotonic()
        call_command("migrate", verbosity=0)
        with scopes_disabled():
            manager = User.objects.create(username="bench-manager", is_staff=True, is_superuser=True)
            Organisation.objects.bulk_create(
                [
                    Organisation(name=f"Bench org {i}", slug=f"bench-{i}", primary_contact_email=f"dpo{i}@bench.test")
                    for i in range(args.orgs)
                ],
                batch_size=1000,
            )
            now = timezone.now()
            incident = services.incident_create(
                acting_user=manager,
                title="Benchmark incident",
                description="A specific incident affecting every benchmark organisation.",
                kind=Incident.Kind.SPECIFIC,
                detected_at=now,
                aware_at=now,
                organisations=Organisation.objects.all(),
            )
        print(f"setup (migrate, {args.orgs:,} organisations, incident): {time.monotonic() - started:.1f} s", flush=True)

        queue = f"bench-outbox-{uuid.uuid4().hex[:8]}"
        tasks.deliver_notification.delay = lambda pk: tasks.deliver_notification.apply_async((pk,), queue=queue)

        def post(n: int):
            def run():
                with scopes_disabled():
                    return services.incident_update_post(
                        incident=incident,
                        acting_user=manager,
                        visibility=IncidentUpdate.Visibility.PUBLIC,
                        status=Incident.Status.IDENTIFIED,
                        message=f"Update {n}: we are investigating.",
                        actions_for_customers="Nothing is needed from you at this stage.",
                    )

            return run

        for n, (label, kill) in enumerate([("undisturbed", False), ("worker SIGKILLed half way", True)], 1):
            result = deliver_run(
                label=label, update_post=post(n), queue=queue, env=env, tmp=tmp, concurrency=args.concurrency,
                kill_half=kill, lease=args.lease, sink=sink, timeout=args.timeout,
            )  # fmt: skip
            results.append(result)
            print(
                f"{label}: rows {result['rows']:,}, post {result['post_s']:.1f} s, wall {result['wall_s']:.1f} s, "
                f"{result['msg_per_s']:.0f} msg/s, duplicates {result['duplicates']}, lost {result['lost']}, "
                f"worker peak RSS {result['rss_tree_mib']:.0f} MiB "
                f"(largest process {result['rss_process_mib']:.0f} MiB)"
                + (f", killed after {result['killed_after']:,} sent" if result["killed_after"] is not None else ""),
                flush=True,
            )
            if result["lost"]:
                print(Path(result["log"]).read_text()[-3000:], file=sys.stderr)
    finally:
        controller.stop()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001
            pass
        drop_database()
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    rss = f"worker peak RSS ({args.concurrency} processes + parent)"
    print(f"| run | rows | wall time | messages/s | duplicates | lost | {rss} |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['run']} | {r['rows']:,} | {r['wall_s']:.1f} s | {r['msg_per_s']:.0f} | {r['duplicates']} | "
            f"{r['lost']} | {r['rss_tree_mib']:.0f} MiB |"
        )
    return 1 if any(r["lost"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
