"""Clean-up purge benchmark (C21): one organisation holding 1,000,000 records on PostgreSQL.

    make bench-purge                                  # DATABASE_URL=postgres://... required
    make bench-purge BENCH_ARGS="--records 100000"    # quicker

Creates and drops a throwaway database on the server DATABASE_URL names (loopback only),
migrates it, then three rounds, each on freshly seeded data (INSERT ... SELECT FROM
generate_series, then VACUUM ANALYZE), next to a small control organisation that must
survive untouched:

1. raw SQL: the same rows deleted by hand-written DELETE statements in one transaction,
   children first (the fastest the database can do it, no batching, no progress);
2. purge: the real clean-up (`services.cleanup_run`, what the Celery task calls) in a
   separate worker process, which reports its own wall time and peak RSS;
3. kill: the same purge SIGKILLed half way, then a restarted worker finishes; the
   benchmark checks that nothing of the organisation is left, that the certificate's
   counts equal what was seeded (nothing counted twice or missed), and that the
   progress recorded at the kill equalled the rows then gone.

Prints records per second, the ratio purge / raw SQL, and the worker's peak memory.
Goal: ratio >= 0.5, peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.outbox_bench import create_database  # noqa: E402
from bench.status_bench import BenchError, _loopback  # noqa: E402

GOAL_RATIO = 0.5
GOAL_RSS_MB = 300
# Share of the organisation's records per table (sums to 1); the rest of the schema's
# organisation tables hold a handful of rows each.
SHARES = {
    "users": 0.005,  # customer accounts (and as many memberships)
    "requests": 0.04,  # support requests, each with a named engineer
    "grants": 0.04,  # a grant per request, each with its engineer
    "log": 0.60,  # the access log: the bulk, as in real life
    "notifications": 0.23,  # outbox rows of incident notices
}


# --- seeding ----------------------------------------------------------------------------------------


def _expr(field, connection, overrides: dict[str, str]) -> str | None:
    """A SQL expression over the series value `g` for one column, or None to leave it out."""
    column = field.column
    if column in overrides:
        return overrides[column]
    if field.primary_key:
        return None
    db_type = (field.db_type(connection) or "").lower()
    if field.is_relation:
        if field.null:
            return "NULL"
        raise BenchError(f"{field.model._meta.label}.{column} needs a value")
    if field.null:
        return "NULL"
    default = field.get_default() if field.has_default() and not callable(field.default) else None
    if db_type == "bytea":
        return "'\\x00'::bytea"
    if db_type.startswith(("varchar", "text", "char")):
        if field.unique:
            return f"'{field.model._meta.model_name[:6]}-' || g || '-{secrets.token_hex(3)}'"
        return "'" + str(default or "x")[: getattr(field, "max_length", None) or 20].replace("'", "''") + "'"
    if db_type == "jsonb":
        return "'[]'::jsonb" if isinstance(field.default, type) and field.default is list else "'{}'::jsonb"
    if db_type.startswith("timestamp"):
        return "now()"
    if db_type == "date":
        return "current_date"
    if db_type == "interval":
        return "interval '1 hour'"
    if db_type == "boolean":
        return "true" if default else "false"
    if db_type in ("integer", "bigint", "smallint") or "integer" in db_type:
        return str(int(default or 0))
    raise BenchError(f"no seed expression for {field.model._meta.label}.{column} ({db_type})")


def _insert(model, n: int, overrides: dict[str, str]) -> tuple[int, int]:
    """Insert n rows; returns the (contiguous) id range. One session, so ids are consecutive."""
    from django.db import connection

    if n <= 0:
        return 0, -1
    cols, exprs = [], []
    for field in model._meta.concrete_fields:
        expr = _expr(field, connection, overrides)
        if expr is not None:
            cols.append(connection.ops.quote_name(field.column))
            exprs.append(expr)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM generate_series(1, %s) AS g "
            "RETURNING id",
            [n],
        )
        ids = [row[0] for row in cursor.fetchall()]
    lo, hi = min(ids), max(ids)
    if hi - lo + 1 != n:
        raise BenchError(f"ids of {model._meta.label} are not contiguous")
    return lo, hi


def seed_organisation(name: str, total: int, staff_id: int) -> tuple[int, int]:
    """An organisation with `total` records across its tables; returns (org id, records)."""
    from django.apps import apps
    from django.db import transaction

    from governance.tenancy.models import Membership, Organisation

    User = apps.get_model("access", "User")
    Request = apps.get_model("access", "SupportAccessRequest")
    Grant = apps.get_model("access", "SupportGrant")
    Log = apps.get_model("access", "AccessLogEntry")
    Notification = apps.get_model("incidents", "Notification")
    n = {k: max(1, int(total * share)) for k, share in SHARES.items()}
    # Users and memberships: n users; requests and grants count twice (row + m2m row).
    n["log"] = total - 1 - 2 * n["users"] - 4 * n["requests"] - n["notifications"]
    n["grants"] = n["requests"]
    with transaction.atomic():
        org = Organisation.objects.create(name=name, slug=name.lower().replace(" ", "-"))
        org_id = org.pk
        u_lo, _ = _insert(User, n["users"], {"is_active": "true"})
        _insert(
            Membership,
            n["users"],
            {"user_id": f"{u_lo} + g - 1", "organisation_id": str(org_id), "role": "'viewer'"},
        )
        scope = "'[\"tickets\"]'::jsonb"
        r_lo, _ = _insert(
            Request,
            n["requests"],
            {"organisation_id": str(org_id), "requester_id": str(staff_id), "status": "'approved'", "scope": scope},
        )
        _insert(
            Request.named_staff.through,
            n["requests"],
            {"supportaccessrequest_id": f"{r_lo} + g - 1", "user_id": str(staff_id)},
        )
        g_lo, _ = _insert(
            Grant,
            n["grants"],
            {"organisation_id": str(org_id), "request_id": f"{r_lo} + g - 1", "scope": scope},
        )
        _insert(Grant.staff.through, n["grants"], {"supportgrant_id": f"{g_lo} + g - 1", "user_id": str(staff_id)})
        _insert(
            Log,
            n["log"],
            {
                "organisation_id": str(org_id),
                "grant_id": f"{g_lo} + mod(g, {n['grants']})",
                "staff_id": str(staff_id),
                "object_repr": "'Ticket #' || g",
            },
        )
        _insert(
            Notification,
            n["notifications"],
            {"organisation_id": str(org_id), "idempotency_key": f"'bench-{org_id}-' || g", "subject": "'Notice'"},
        )
    return org_id, total


def org_records(org_id: int) -> int:
    """Rows the purge must delete for this organisation, counted by hand in SQL."""
    from django.db import connection

    sql = f"""
        SELECT (SELECT count(*) FROM access_accesslogentry WHERE organisation_id = {org_id})
             + (SELECT count(*) FROM access_supportaccessrequest_named_staff s
                  JOIN access_supportaccessrequest r ON r.id = s.supportaccessrequest_id
                  WHERE r.organisation_id = {org_id})
             + (SELECT count(*) FROM access_supportgrant_staff s
                  JOIN access_supportgrant r ON r.id = s.supportgrant_id WHERE r.organisation_id = {org_id})
             + (SELECT count(*) FROM access_supportgrant WHERE organisation_id = {org_id})
             + (SELECT count(*) FROM access_supportaccessrequest WHERE organisation_id = {org_id})
             + (SELECT count(*) FROM incidents_notification WHERE organisation_id = {org_id})
             + 2 * (SELECT count(*) FROM tenancy_membership WHERE organisation_id = {org_id})
             + (SELECT count(*) FROM tenancy_organisation WHERE id = {org_id})
    """  # noqa: S608 - integers only
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def raw_delete(org_id: int) -> float:
    """The baseline: what a DBA would type, children first, one transaction."""
    from django.db import connection, transaction

    o = int(org_id)
    statements = [
        "CREATE TEMP TABLE doomed_users ON COMMIT DROP AS "
        f"SELECT user_id FROM tenancy_membership WHERE organisation_id = {o}",
        f"DELETE FROM access_accesslogentry WHERE organisation_id = {o}",
        f"DELETE FROM access_supportaccessrequest_named_staff WHERE supportaccessrequest_id IN "
        f"(SELECT id FROM access_supportaccessrequest WHERE organisation_id = {o})",
        f"DELETE FROM access_supportgrant_staff WHERE supportgrant_id IN "
        f"(SELECT id FROM access_supportgrant WHERE organisation_id = {o})",
        f"DELETE FROM access_supportgrant WHERE organisation_id = {o}",
        f"DELETE FROM access_supportaccessrequest WHERE organisation_id = {o}",
        f"DELETE FROM incidents_notification WHERE organisation_id = {o}",
        f"DELETE FROM tenancy_membership WHERE organisation_id = {o}",
        "DELETE FROM access_user WHERE id IN (SELECT user_id FROM doomed_users)",
        f"DELETE FROM tenancy_organisation WHERE id = {o}",
    ]  # fmt: skip
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
    return time.perf_counter() - started


def vacuum() -> None:
    from django.db import connection

    connection.close()
    connection.ensure_connection()
    connection.connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connection.close()


def terminate(org_id: int) -> int:
    """A confirmed termination, written directly: the benchmark measures the purge, not the two-person rule."""
    from django.utils import timezone

    from governance.retention.models import Termination
    from governance.tenancy.models import Organisation

    Organisation._base_manager.filter(pk=org_id).update(status=Organisation.Status.TERMINATED)
    now = timezone.now()
    return Termination.objects.create(
        organisation_id=org_id,
        organisation_pk=org_id,
        organisation_name=f"bench {org_id}",
        status=Termination.Status.CONFIRMED,
        reason="benchmark",
        requested_via=Termination.Via.STAFF,
        requested_by_repr="bench",
        requested_at=now,
        confirmed_by_repr="bench",
        confirmed_at=now,
    ).pk


# --- the worker ---------------------------------------------------------------------------------------


def worker_main(batch_size: int | None) -> None:
    """Runs in the worker process: the real clean-up run, then its own timing and peak RSS."""
    import django

    django.setup()
    from django_scopes import scopes_disabled

    from governance.retention import services

    with scopes_disabled():
        started = time.perf_counter()
        run = services.cleanup_run(batch_size=batch_size)
        seconds = time.perf_counter() - started
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec from the forked
    # copy of the parent, so it would report the benchmark process's own size.
    peak_kib = _vmhwm_kib()
    print(json.dumps({"seconds": seconds, "peak_kib": peak_kib, "run": run.pk}), flush=True)


def _vmhwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def spawn_worker(env: dict, batch_size: int | None, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    if batch_size:
        cmd += ["--batch-size", str(batch_size)]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log.open("ab"), start_new_session=True, text=True
    )


def finish(proc: subprocess.Popen, log: Path, timeout: float = 3600) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise BenchError(f"worker exited {proc.returncode}:\n{tail}")
    return json.loads(out.strip().splitlines()[-1])


def _progress(termination_id: int) -> int:
    from governance.retention.models import Termination

    counts = Termination.objects.filter(pk=termination_id).values_list("purge_counts", flat=True).first() or {}
    return sum(counts.values())


# --- main ---------------------------------------------------------------------------------------------


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="records of the purged organisation")
    parser.add_argument("--batch-size", type=int, default=None, help="purge batch (default: the setting)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.batch_size)
        return 0

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        print("bench-purge: DATABASE_URL must point at a PostgreSQL server, e.g. "
              "DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres (a throwaway database is created there).",
              file=sys.stderr)  # fmt: skip
        return 2
    from urllib.parse import urlsplit

    if not _loopback(urlsplit(url).hostname):
        print("bench-purge: DATABASE_URL must name a loopback address.", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="assyst-purge-bench-"))
    drop = None
    began = time.monotonic()
    try:
        database_url, drop = create_database(tmp)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_ENV_FILE": "/nonexistent",
            "DJANGO_DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "CRYPTOGRAPHY_KEY": secrets.token_urlsafe(32),
            "DATABASE_URL": database_url,
            "DATABASE_CONN_MAX_AGE": "0",
            "LOG_LEVEL": "WARNING",
            "BENCH_BROKER_DIR": str(tmp / "broker"),
            "PYTHONPATH": str(ROOT),
        }
        os.environ.update(env)
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection
        from django_scopes import scopes_disabled

        from governance.access.models import User
        from governance.retention.models import DeletionCertificate

        scopes_disabled().__enter__()
        batch = args.batch_size or settings.RETENTION_PURGE_BATCH_SIZE
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
        print(f"database: PostgreSQL {version}, throwaway {settings.DATABASES['default']['NAME']}; "
              f"{os.cpu_count()} cores; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)  # fmt: skip
        started = time.monotonic()
        call_command("migrate", verbosity=0)
        print(f"migrate: {time.monotonic() - started:.1f} s", flush=True)
        staff = User.objects.create(username="bench-staff", is_staff=True)
        control_id, _ = seed_organisation("Control Org", max(1000, args.records // 100), staff.pk)
        control_before = org_records(control_id)

        def seeded(label: str) -> tuple[int, int]:
            t = time.monotonic()
            org_id, _ = seed_organisation(f"Bench {label}", args.records, staff.pk)
            total = org_records(org_id)
            vacuum()
            print(f"seed {label}: {total:,} records in {time.monotonic() - t:.1f} s", flush=True)
            return org_id, total

        # 1. raw SQL baseline
        org_id, total = seeded("raw")
        raw_s = raw_delete(org_id)
        if org_records(org_id):
            raise BenchError("raw DELETE left rows behind")
        raw_rate = total / raw_s
        print(f"raw SQL DELETE: {total:,} records in {raw_s:.2f} s = {raw_rate:,.0f} records/s", flush=True)

        # 2. the real purge in a worker process
        org_id, total = seeded("purge")
        termination_id = terminate(org_id)
        result = finish(spawn_worker(env, args.batch_size, tmp / "worker.log"), tmp / "worker.log")
        left = org_records(org_id)
        cert = DeletionCertificate.objects.get(termination_id=termination_id)
        counted = sum(cert.counts.values())
        purge_rate = total / result["seconds"]
        peak_mb = result["peak_kib"] / 1024
        print(f"purge (batch {batch}): {total:,} records in {result['seconds']:.2f} s = {purge_rate:,.0f} records/s; "
              f"worker peak RSS {peak_mb:.0f} MB; left {left}; certificate counts {counted:,}", flush=True)  # fmt: skip

        # 3. killed half way, restarted
        org_id, total = seeded("kill")
        termination_id = terminate(org_id)
        proc = spawn_worker(env, args.batch_size, tmp / "worker-kill.log")
        deadline = time.monotonic() + 3600
        while _progress(termination_id) < total // 2:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("the worker ended before half way")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        at_kill = _progress(termination_id)
        gone_at_kill = total - org_records(org_id)
        print(f"kill: SIGKILL at {at_kill:,} counted / {gone_at_kill:,} gone of {total:,}", flush=True)
        resumed = finish(spawn_worker(env, args.batch_size, tmp / "worker-resume.log"), tmp / "worker-resume.log")
        left_after = org_records(org_id)
        cert2 = DeletionCertificate.objects.get(termination_id=termination_id)
        counted2 = sum(cert2.counts.values())
        control_after = org_records(control_id)
        print(f"restart: finished in {resumed['seconds']:.2f} s, peak RSS {resumed['peak_kib'] / 1024:.0f} MB; "
              f"left {left_after}; certificate counts {counted2:,} (seeded {total:,})", flush=True)  # fmt: skip
    except BenchError as exc:
        print(f"bench-purge: {exc}", file=sys.stderr)
        return 2
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001, S110
            pass
        if drop:
            drop()
        shutil.rmtree(tmp, ignore_errors=True)

    ratio = purge_rate / raw_rate
    print()
    print("| run | records | seconds | records/s | ratio to raw SQL | worker peak RSS |")
    print("|---|---|---|---|---|---|")
    print(f"| raw SQL DELETE (one transaction) | {total:,} | {raw_s:.2f} | {raw_rate:,.0f} | 1.00 | - |")
    print(f"| purge, batch {batch} (worker) | {total:,} | {result['seconds']:.2f} | {purge_rate:,.0f} | {ratio:.2f} | "
          f"{peak_mb:.0f} MB |")  # fmt: skip
    print()
    checks = {
        f"ratio {ratio:.2f} >= {GOAL_RATIO}": ratio >= GOAL_RATIO,
        f"peak RSS {peak_mb:.0f} MB < {GOAL_RSS_MB} MB": peak_mb < GOAL_RSS_MB,
        "purge left nothing and counted every record once": left == 0 and counted == total,
        "at the kill, the recorded progress equals the rows gone": at_kill == gone_at_kill,
        "after the restart nothing is left and nothing is counted twice": left_after == 0 and counted2 == total,
        "the control organisation is untouched": control_after == control_before,
    }
    for text, ok in checks.items():
        print(f"{'met ' if ok else 'MISSED'}: {text}")
    print(f"total time: {time.monotonic() - began:.0f} s")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
