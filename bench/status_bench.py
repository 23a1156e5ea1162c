"""Public status page benchmark (issue 5, "Performance"): gunicorn on loopback over
PostgreSQL with 10,000 historic incidents, measured with wrk.

    make bench-status                          # needs DATABASE_URL (PostgreSQL) and wrk
    make bench-status BENCH_ARGS="--duration 5"

What it does, in order (about 1.5 minutes with the defaults):

1. creates a throwaway PostgreSQL database next to the one DATABASE_URL names (dropped at
   the end, also on Ctrl-C or failure); uses Redis for the cache when REDIS_URL is set,
   under a private key prefix whose keys are deleted at the end, else a file cache in a
   temporary folder;
2. migrates and loads 10,000 resolved general incidents spread over two years (three
   public updates and one internal update each, one or two affected components, status
   changes feeding the 90-day bars), six components in two groups, one upcoming
   maintenance and one unresolved incident;
3. collects static files into a temporary STATIC_ROOT and starts gunicorn on 127.0.0.1
   (sync workers, 2 x cores + 1) with production settings: DEBUG off, whitenoise with
   the hashed manifest, ALLOWED_HOSTS=127.0.0.1, and only SECURE_SSL_REDIRECT turned off
   (plain HTTP on loopback);
4. warms the cache, then runs `wrk --latency` with 64 connections for 15 s each against
   a static file served by whitenoise from the same gunicorn (the floor of the stack),
   `/status/`, `/api/v2/summary.json` and `/status/` with `If-None-Match` (the 304
   path), and prints requests/s, p50, p99, the ratios to the static file and whether the
   goal is met (ratio >= 0.8, p99 < 50 ms).

wrk runs on the same machine as gunicorn and takes CPU from it (as it does for the
static file). The load average and the CPU other processes used during each run are
printed, so a run disturbed by something else shows it.

wrk is Debian's package: `apt-get install -y wrk`.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import os
import random
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.outbox_bench import _tree, create_database, free_port  # noqa: E402

GOAL_RATIO = 0.8
GOAL_P99_MS = 50.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A precondition failed: printed without a traceback."""


# --- preconditions ----------------------------------------------------------------------------


def _loopback(host: str | None) -> bool:
    if not host or host.startswith("/"):  # a Unix socket is local too
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_preconditions() -> tuple[str, str]:
    wrk = shutil.which("wrk")
    if not wrk:
        raise BenchError("wrk is not installed. It is Debian's package: `apt-get install -y wrk` (as root).")
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        raise BenchError(
            "DATABASE_URL must point at a PostgreSQL server, e.g. "
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres: the benchmark creates and drops "
            "a temporary database there."
        )
    for name in ("DATABASE_URL", "REDIS_URL"):
        value = os.environ.get(name)
        if value and not _loopback(urlsplit(value).hostname):
            raise BenchError(f"{name} must name a loopback address (127.0.0.1, ::1, localhost): this benchmark "
                             "only talks to services on this machine.")  # fmt: skip
    return wrk, url


# --- the data ---------------------------------------------------------------------------------


def load_data(n_incidents: int, seed: int = 5) -> dict:
    """10,000 resolved general incidents over two years, components, one unresolved
    incident and one upcoming maintenance; written with bulk inserts (the services would
    queue notifications and audit events for every one of them)."""
    from django.db.models import F
    from django.utils import timezone

    from governance.access.models import User
    from incidents.models import (
        Component,
        ComponentGroup,
        ComponentStatus,
        ComponentStatusChange,
        Incident,
        IncidentUpdate,
        MaintenanceUpdate,
        ScheduledMaintenance,
    )

    rng = random.Random(seed)
    now = timezone.now().replace(microsecond=0)
    user = User.objects.create(username="bench-status", is_staff=True)
    portal = ComponentGroup.objects.create(name="Portal", position=1)
    api = ComponentGroup.objects.create(name="API and integrations", position=2)
    started = (now - timedelta(days=800)).date()
    components = [
        Component.objects.create(name=name, group=group, position=i, start_date=started)
        for i, (name, group) in enumerate(
            [
                ("Web portal", portal),
                ("Single sign-on", portal),
                ("Reports", portal),
                ("Customer API", api),
                ("Webhooks", api),
                ("Email notifications", api),
            ]
        )
    ]

    Sev, St = Incident.Severity, Incident.Status
    severities = [Sev.MINOR] * 6 + [Sev.MAJOR] * 3 + [Sev.CRITICAL]
    span = 730 * 24 * 3600
    incidents = []
    for i in range(n_incidents):
        aware = now - timedelta(days=1, seconds=rng.randrange(span))
        incidents.append(
            Incident(
                title=f"Historic incident {i + 1}: elevated error rates",
                description="Some requests failed or were slow for a while.",
                kind=Incident.Kind.GENERAL,
                severity=rng.choice(severities),
                status=St.RESOLVED,
                detected_at=aware - timedelta(minutes=rng.randrange(1, 30)),
                aware_at=aware,
                closed_at=aware + timedelta(hours=rng.randrange(2, 48)),
                created_by=user,
            )
        )
    Incident.objects.bulk_create(incidents, batch_size=2000)
    # auto_now_add stamped "now": an incident is created when we become aware of it.
    Incident.objects.update(created_at=F("aware_at"))

    updates, links, changes = [], [], []
    through = Component.incidents.through
    window = now - timedelta(days=95)
    for incident in incidents:
        t = incident.aware_at
        steps = [
            (St.INVESTIGATING, "We are investigating elevated error rates."),
            (rng.choice([St.IDENTIFIED, St.MONITORING]), "The cause is found and a fix is being applied."),
            (St.RESOLVED, "This incident is resolved. We are sorry for the disruption."),
        ]
        for n, (status, message) in enumerate(steps):
            t = t + timedelta(minutes=rng.randrange(10, 240))
            updates.append(
                IncidentUpdate(
                    incident=incident,
                    visibility=IncidentUpdate.Visibility.PUBLIC,
                    status=status,
                    message=message,
                    actions_for_customers="Nothing is needed from you." if n < 2 else "",
                    created_by=user,
                    created_at=t,
                )  # fmt: skip
            )
            if n == 0:
                updates.append(
                    IncidentUpdate(
                        incident=incident,
                        visibility=IncidentUpdate.Visibility.INTERNAL,
                        status=status,
                        message="Internal: paging the on-call database engineer.",
                        created_by=user,
                        created_at=t,
                    )  # fmt: skip
                )
        affected = rng.sample(components, rng.choice([1, 1, 2]))
        links += [through(component_id=c.pk, incident_id=incident.pk) for c in affected]
        if incident.aware_at >= window:
            for c in affected:
                bad = rng.choice([ComponentStatus.DEGRADED_PERFORMANCE, ComponentStatus.PARTIAL_OUTAGE])
                changes.append((c, bad, incident.aware_at, t))
    IncidentUpdate.objects.bulk_create(updates, batch_size=5000)
    through.objects.bulk_create(links, batch_size=5000)
    status_rows = []
    for c, bad, start, end in sorted(changes, key=lambda x: x[2]):
        status_rows += [
            ComponentStatusChange(component=c, previous_status=ComponentStatus.OPERATIONAL, status=bad, at=start),
            ComponentStatusChange(component=c, previous_status=bad, status=ComponentStatus.OPERATIONAL, at=end),
        ]
    ComponentStatusChange.objects.bulk_create(status_rows, batch_size=5000)

    # The incident everyone is refreshing the page for.
    api_component = components[3]
    current = Incident.objects.create(
        title="Customer API: elevated error rates",
        description="Some API requests fail with HTTP 503.",
        kind=Incident.Kind.GENERAL,
        severity=Sev.MAJOR,
        status=St.IDENTIFIED,
        detected_at=now - timedelta(minutes=50),
        aware_at=now - timedelta(minutes=45),
        created_by=user,
    )
    current.status_components.add(api_component)
    first = IncidentUpdate.objects.create(
        incident=current, visibility=IncidentUpdate.Visibility.PUBLIC, status=St.INVESTIGATING,
        message="We are investigating errors on the customer API.", actions_for_customers="Retry failed requests.",
        created_by=user, created_at=now - timedelta(minutes=40),
    )  # fmt: skip
    IncidentUpdate.objects.create(
        incident=current, visibility=IncidentUpdate.Visibility.PUBLIC, status=St.IDENTIFIED,
        message="A database failover is in progress; errors should stop within the hour.",
        actions_for_customers="Retry failed requests with backoff.", created_by=user,
        created_at=now - timedelta(minutes=10),
    )  # fmt: skip
    Component.objects.filter(pk=api_component.pk).update(status=ComponentStatus.PARTIAL_OUTAGE)
    ComponentStatusChange.objects.create(
        component=api_component, previous_status=ComponentStatus.OPERATIONAL, status=ComponentStatus.PARTIAL_OUTAGE,
        at=first.created_at, incident_update=first, created_by=user,
    )  # fmt: skip

    maintenance = ScheduledMaintenance.objects.create(
        name="Database upgrade",
        scheduled_for=now + timedelta(days=3),
        scheduled_until=now + timedelta(days=3, hours=2),
        created_by=user,
    )
    maintenance.components.add(components[0], components[3])
    MaintenanceUpdate.objects.create(
        maintenance=maintenance, status=ScheduledMaintenance.Status.SCHEDULED, created_by=user, created_at=now,
        body="We will upgrade the database; the portal may be read-only for a few minutes.",
    )  # fmt: skip
    return {
        "incidents": Incident.objects.count(),
        "updates": IncidentUpdate.objects.count(),
        "status_changes": ComponentStatusChange.objects.count(),
    }


# --- gunicorn and HTTP ------------------------------------------------------------------------


class Gunicorn:
    def __init__(self, port: int, workers: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "assyst.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--worker-class", "sync", "--worker-tmp-dir", "/dev/shm",
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"gunicorn exited with {self.process.returncode}; see its log above.")
            try:
                if get(self.port, "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError("gunicorn did not answer /healthz in time.")

    def cpu_ticks(self) -> int:
        return sum(_cpu_ticks(pid) for pid in _tree(self.process.pid))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(15)
        self.log.close()


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


# --- CPU accounting -------------------------------------------------------------------------


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError):
        return 0


def _redis_ticks() -> int:
    """CPU of the local redis-server (the cache the views read), counted apart from "others"."""
    total = 0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "redis-server":
                total += _cpu_ticks(int(comm.parent.name))
        except OSError:
            continue
    return total


def _busy_ticks() -> int:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values[:8]) - values[3] - values[4]  # all but idle and iowait (guest is in user)


def _children_ticks() -> int:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((usage.ru_utime + usage.ru_stime) * CLK_TCK)


def _self_ticks() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round((usage.ru_utime + usage.ru_stime) * CLK_TCK)


# --- wrk ----------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if not (rps and total and p50 and p99):
        raise BenchError(f"Could not parse wrk's output:\n{output}")
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
        "error_detail": socket_errors.group(0) if socket_errors else "",
        "non_2xx_3xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def run_wrk(wrk: str, gunicorn: Gunicorn, url: str, *, label: str, args, headers=()) -> dict:
    command = [wrk, "--latency", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
               "--timeout", "5s"]  # fmt: skip
    for header in headers:
        command += ["-H", header]
    command.append(url)
    load = os.getloadavg()[0]
    before = (time.monotonic(), _busy_ticks(), gunicorn.cpu_ticks(), _children_ticks(), _self_ticks(), _redis_ticks())
    completed = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + 30)
    after = (time.monotonic(), _busy_ticks(), gunicorn.cpu_ticks(), _children_ticks(), _self_ticks(), _redis_ticks())
    if completed.returncode != 0:
        raise BenchError(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    result = parse_wrk(completed.stdout)
    elapsed, busy, ours_gunicorn, ours_wrk, ours_self, redis_cpu = (b - a for a, b in zip(before, after, strict=True))
    cores = elapsed * CLK_TCK
    result.update(
        label=label,
        load=load,
        cpu_gunicorn=ours_gunicorn / cores,
        cpu_wrk=ours_wrk / cores,
        cpu_redis=redis_cpu / cores,
        cpu_others=max(0, busy - ours_gunicorn - ours_wrk - ours_self - redis_cpu) / cores,
    )
    print(
        f"  {label}: {result['rps']:,.0f} req/s, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"errors {result['errors']}, non-2xx/3xx {result['non_2xx_3xx']}; CPU (cores) gunicorn "
        f"{result['cpu_gunicorn']:.2f}, wrk {result['cpu_wrk']:.2f}, redis {result['cpu_redis']:.2f}, "
        f"other processes {result['cpu_others']:.2f}; "
        f"load before {load:.2f}",
        flush=True,
    )
    return result


# --- in-process profile (--profile) -----------------------------------------------------------


def profile_in_process(targets: dict[str, tuple[str, dict]], port: int, n: int) -> None:
    """Where a request's time goes without HTTP or gunicorn: each target n times through
    Django's WSGI handler (the whole middleware stack), then cProfile of the page."""
    import cProfile
    import io
    import pstats

    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()

    def call(path: str, headers: dict) -> None:
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(port), "HTTP_HOST": f"127.0.0.1:{port}", "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True,
            "wsgi.run_once": False, "wsgi.version": (1, 0),
            **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()},
        }  # fmt: skip
        body = handler(environ, lambda status, headers, exc_info=None: None)
        for _ in body:
            pass
        if hasattr(body, "close"):
            body.close()

    for name, (path, headers) in targets.items():
        call(path, headers)
        started = time.perf_counter()
        for _ in range(n):
            call(path, headers)
        print(f"in-process {name}: {(time.perf_counter() - started) * 1e6 / n:.0f} us per request", flush=True)
    for name, (path, headers) in targets.items():
        if name == "static":
            continue
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            call(path, headers)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
        print(f"\n--- cProfile {name} ({n} requests), by cumulative time ---")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:9000])


# --- cache clean-up -----------------------------------------------------------------------------


def delete_cache_keys(redis_url: str, prefix: str) -> int:
    """Only the benchmark's keys (its private prefix): never flush a shared database."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


# --- main ---------------------------------------------------------------------------------------


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _fmt_ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=10_000, help="historic incidents (10,000)")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run (15)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="wrk threads (cores)")
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        default=0,
        help="instead of wrk: time N in-process requests per target and cProfile them",
    )
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1, help="gunicorn workers")
    args = parser.parse_args()
    if args.duration > 30:
        parser.error("--duration: at most 30 s per run (the whole benchmark stays under 3 minutes)")

    try:
        wrk, _ = check_preconditions()
    except BenchError as exc:
        print(f"bench-status: {exc}", file=sys.stderr)
        return 2

    # Ctrl-C and SIGTERM raise KeyboardInterrupt so the clean-up runs (set explicitly: a
    # shell's background job inherits SIGINT ignored).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    load_at_start = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="assyst-status-bench-"))
    redis_url = os.environ.get("REDIS_URL", "")
    prefix = f"assyst-status-bench-{uuid.uuid4().hex[:8]}"
    drop_database = None
    gunicorn = None
    results: list[dict] = []
    checks: list[str] = []
    try:
        database_url, drop_database = create_database(tmp)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.status_settings",
            "DJANGO_ENV_FILE": "/nonexistent",
            "DJANGO_DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "CRYPTOGRAPHY_KEY": secrets.token_urlsafe(32),
            "DATABASE_URL": database_url,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback; everything else as in production
            "SITE_URL": "http://127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "BENCH_STATIC_ROOT": str(tmp / "static"),
            "BENCH_CACHE_PREFIX": prefix,
            "BENCH_CACHE_DIR": str(tmp / "cache"),
            "BENCH_BROKER_DIR": str(tmp / "broker"),
            "PYTHONPATH": str(ROOT),
        }
        os.environ.update(env)
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.staticfiles.storage import staticfiles_storage
        from django.core.management import call_command
        from django.db import connections

        cache_backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[1]
        cache_where = (
            f"Redis at {urlsplit(redis_url).hostname}:{urlsplit(redis_url).port or 6379}{urlsplit(redis_url).path}, "
            f"key prefix {prefix}"
            if redis_url
            else f"file cache in {tmp / 'cache'} (REDIS_URL not set)"
        )
        print(f"database: PostgreSQL, throwaway {settings.DATABASES['default']['NAME']}", flush=True)
        print(f"cache: {cache_backend}, {cache_where}", flush=True)
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in load_at_start)} ({os.cpu_count()} cores)")

        started = time.monotonic()
        call_command("migrate", verbosity=0)
        print(f"migrate: {time.monotonic() - started:.1f} s", flush=True)
        started = time.monotonic()
        counts = load_data(args.incidents)
        print(
            f"data: {counts['incidents']:,} incidents, {counts['updates']:,} updates, "
            f"{counts['status_changes']:,} component status changes in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        call_command("collectstatic", interactive=False, verbosity=0)
        static_path = "/" + settings.STATIC_URL.strip("/") + "/" + staticfiles_storage.stored_name("css/status.css")
        connections.close_all()

        port = free_port()
        gunicorn = Gunicorn(port, args.workers, env, tmp / "gunicorn.log")
        gunicorn.wait_ready()
        print(f"gunicorn: 127.0.0.1:{port}, {args.workers} sync workers", flush=True)

        # Warm-up: fill the cache once, then let every worker load its code and templates.
        targets = {"static": static_path, "page": "/status/", "json": "/api/v2/summary.json"}
        first = {}
        for name, path in targets.items():
            started = time.monotonic()
            status, headers, body = get(port, path)
            first[name] = (status, headers, len(body), (time.monotonic() - started) * 1000)
            if status != 200:
                raise BenchError(f"GET {path} answered {status}")
        for _ in range(4 * args.workers):
            for path in targets.values():
                get(port, path)
        etag = first["page"][1].get("etag")
        status_304, _, _ = get(port, "/status/", {"If-None-Match": etag})
        for name, (_status, headers, size, ms) in first.items():
            print(
                f"{name} {targets[name]}: first request {ms:.0f} ms, {size:,} bytes, "
                f"Vary: {headers.get('vary', '-')}, Cache-Control: {headers.get('cache-control', '-')}, "
                f"ETag: {headers.get('etag', '-')}, Set-Cookie: {'yes' if 'set-cookie' in headers else 'no'}",
                flush=True,
            )
            if "cookie" in headers.get("vary", "").lower() or "set-cookie" in headers:
                checks.append(f"{name} varies on or sets a cookie: shared caches cannot serve it")
        if status_304 != 304:
            raise BenchError(f"GET /status/ with If-None-Match {etag} answered {status_304}, not 304")
        _, gz_headers, gz_body = get(port, "/status/", {"Accept-Encoding": "gzip"})
        print(
            f"page /status/ to a client accepting gzip: {len(gz_body):,} bytes, "
            f"Content-Encoding: {gz_headers.get('content-encoding', '-')} (wrk sends no Accept-Encoding)",
            flush=True,
        )

        if args.profile:
            profile_in_process(
                {
                    "static": (static_path, {}),
                    "page": ("/status/", {}),
                    "json": ("/api/v2/summary.json", {}),
                    "page 304": ("/status/", {"If-None-Match": etag}),
                },
                port,
                args.profile,
            )
            return 0
        base = f"http://127.0.0.1:{port}"
        print(f"wrk: {args.connections} connections, {args.threads} threads, {args.duration} s per run", flush=True)
        results.append(run_wrk(wrk, gunicorn, base + static_path, label="static file (whitenoise)", args=args))
        results.append(run_wrk(wrk, gunicorn, base + "/status/", label="/status/", args=args))
        results.append(run_wrk(wrk, gunicorn, base + "/api/v2/summary.json", label="/api/v2/summary.json", args=args))
        results.append(
            run_wrk(wrk, gunicorn, base + "/status/", label="/status/ If-None-Match (304)", args=args,
                    headers=[f"If-None-Match: {etag}"])
        )  # fmt: skip
    except BenchError as exc:
        print(f"bench-status: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nbench-status: interrupted; cleaning up.", file=sys.stderr)
        return 130
    finally:
        if gunicorn is not None:
            gunicorn.stop()
            log = (tmp / "gunicorn.log").read_text(errors="replace").strip()
            if log:
                print(f"gunicorn log (last lines):\n{log[-2000:]}", file=sys.stderr)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001
            pass
        if drop_database is not None:
            drop_database()
        if redis_url:
            try:
                delete_cache_keys(redis_url, prefix)
            except Exception as exc:  # noqa: BLE001
                print(f"bench-status: could not delete cache keys {prefix}:*: {exc}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)

    static = results[0]["rps"]
    print()
    print("| target | requests/s | p50 | p99 | ratio to static | errors | load before | CPU others |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        ratio = r["rps"] / static if r is not results[0] else None
        r["ratio"] = ratio
        print(
            f"| {r['label']} | {r['rps']:,.0f} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {_fmt_ratio(ratio)} | "
            f"{r['errors'] + r['non_2xx_3xx']} | {r['load']:.2f} | {r['cpu_others']:.2f} |"
        )
    print()
    met = True
    for r in results[1:3]:
        ok_ratio = r["ratio"] >= GOAL_RATIO
        ok_p99 = r["p99_ms"] < GOAL_P99_MS
        met &= ok_ratio and ok_p99
        print(
            f"goal {r['label']}: ratio {r['ratio']:.2f} >= {GOAL_RATIO} {'met' if ok_ratio else 'MISSED'}; "
            f"p99 {r['p99_ms']:.1f} ms < {GOAL_P99_MS:.0f} ms {'met' if ok_p99 else 'MISSED'}"
        )
    for r in results:
        if r["errors"] or r["non_2xx_3xx"]:
            checks.append(f"{r['label']}: {r['error_detail'] or ''} non-2xx/3xx {r['non_2xx_3xx']}")
    for check in checks:
        print(f"warning: {check}")
    print(f"total time: {time.monotonic() - began:.0f} s")
    return 0 if met and not checks else 1


if __name__ == "__main__":
    sys.exit(main())
