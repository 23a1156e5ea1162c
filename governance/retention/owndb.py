"""The portal backs up its own database (C24): dump, encrypt, store, register; and restore.

Dumps are native, not `dumpdata`: `pg_dump --format=custom` on PostgreSQL and SQLite's
online backup API on the embedded default. A native dump keeps every byte as stored
(field ciphertext, audit hash chain, sequences, triggers), runs without loading rows
into Python, and restores with `pg_restore` in one transaction; `dumpdata`/`loaddata`
would decrypt and re-encrypt every field through the ORM, fire signals, skip triggers
and sequences, and hold large tables in memory.

"Incremental": a logical dump cannot be incremental. The weekly run is registered as
`full`, the daily runs as `incremental`, and both are complete dumps: a daily restore
point that needs one artefact, at the cost of storage (the portal's own database is
small). Block-level incrementals of a large PostgreSQL belong to pgBackRest or WAL-G,
which report to the same register. Each artefact is encrypted (backup_crypto), written
through the STORAGES alias RETENTION_BACKUP_STORAGE, registered with its SHA-256, size,
location and 90-day expiry, so the policy check and the expiry task cover it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import environ
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import storages
from django.db import connections
from django.utils import timezone

from governance.retention.backup_crypto import BackupError, BackupIntegrityError, decrypt_stream, encrypt_stream
from governance.retention.backups import backup_register
from governance.retention.models import BackupRecord

READ_SIZE = 1024 * 1024
ENGINES = {"django.db.backends.postgresql": "postgresql", "django.db.backends.sqlite3": "sqlite"}


def _engine(settings_dict: dict) -> str:
    try:
        return ENGINES[settings_dict["ENGINE"]]
    except KeyError:
        raise BackupError(f"Backups support PostgreSQL and SQLite, not {settings_dict['ENGINE']}.") from None


def _pg_env(settings_dict: dict) -> dict[str, str]:
    """libpq environment for pg_dump/pg_restore: the password never appears in `ps`."""
    env = dict(os.environ)
    for var, key in (("PGHOST", "HOST"), ("PGPORT", "PORT"), ("PGUSER", "USER"), ("PGPASSWORD", "PASSWORD")):
        if settings_dict.get(key):
            env[var] = str(settings_dict[key])
    env["PGDATABASE"] = settings_dict["NAME"]
    if sslmode := settings_dict.get("OPTIONS", {}).get("sslmode"):
        env["PGSSLMODE"] = sslmode
    return env


def _pg_tool(name: str) -> str:
    folder = settings.RETENTION_PG_BIN_DIR
    tool = str(Path(folder) / name) if folder else shutil.which(name)
    if not tool or not Path(tool).exists():
        raise BackupError(f"{name} not found; install the PostgreSQL client or set RETENTION_PG_BIN_DIR.")
    return tool


# --- dump -----------------------------------------------------------------------------------------


def _pg_dump_chunks(settings_dict: dict, stderr) -> Iterator[bytes]:
    cmd = [_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges"]
    proc = subprocess.Popen(cmd, env=_pg_env(settings_dict), stdout=subprocess.PIPE, stderr=stderr)  # noqa: S603
    try:
        while block := proc.stdout.read(READ_SIZE):
            yield block
    finally:
        proc.stdout.close()
        code = proc.wait()
    if code != 0:
        stderr.seek(0)
        raise BackupError(f"pg_dump failed ({code}): {stderr.read().decode(errors='replace')[-2000:]}")


def _sqlite_dump_chunks(alias: str, workdir: Path) -> Iterator[bytes]:
    """A consistent copy through the online backup API (works with the web and workers running)."""
    connection = connections[alias]
    connection.ensure_connection()
    copy = workdir / "dump.sqlite3"
    target = sqlite3.connect(copy)
    try:
        connection.connection.backup(target)
    finally:
        target.close()
    with copy.open("rb") as fh:
        while block := fh.read(READ_SIZE):
            yield block


def database_backup(*, kind: str, alias: str = "default") -> BackupRecord:
    """Dump, encrypt and store the database, then register the run (failed runs too)."""
    if kind not in BackupRecord.Kind.values:
        raise ValidationError({"kind": f"Choose one of {', '.join(BackupRecord.Kind.values)}."})
    settings_dict = connections[alias].settings_dict
    engine = _engine(settings_dict)
    started = timezone.now()
    name = f"portal-db/{started:%Y/%m}/{started:%Y%m%dT%H%M%SZ}-{kind}-{engine}.assystdb"
    metadata = {"engine": engine, "kind": kind, "started_at": started.isoformat(), "format": "assystdb-1"}
    register = {
        "kind": kind,
        "source": f"portal:{engine}:{settings_dict['NAME'] if engine == 'postgresql' else 'default'}"[:200],
        "started_at": started,
        "encrypted": True,
        "location": settings.RETENTION_BACKUP_STORAGE_LOCATION,
        "reported_by": "portal",
    }
    with tempfile.TemporaryDirectory(prefix="assyst-backup-") as tmp:
        workdir = Path(tmp)
        out_path = workdir / "backup.assystdb"
        try:
            with out_path.open("wb") as out, (workdir / "stderr").open("w+b") as stderr:
                chunks = (
                    _pg_dump_chunks(settings_dict, stderr)
                    if engine == "postgresql"
                    else _sqlite_dump_chunks(alias, workdir)
                )
                encrypt_stream(chunks, out, metadata=metadata)
            (workdir / "dump.sqlite3").unlink(missing_ok=True)
            digest = _sha256_file(out_path)
            with out_path.open("rb") as fh:
                stored = storages[settings.RETENTION_BACKUP_STORAGE].save(name, File(fh))
        except BackupError:
            backup_register(
                **register, finished_at=timezone.now(), size_bytes=0, checksum="", succeeded=False, artefact=""
            )
            raise
        return backup_register(
            **register,
            finished_at=timezone.now(),
            size_bytes=out_path.stat().st_size,
            checksum=f"sha256:{digest}",
            artefact=stored,
        )


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(READ_SIZE):
            h.update(block)
    return h.hexdigest()


# --- restore --------------------------------------------------------------------------------------


@contextmanager
def _decrypted(artefact: str) -> Iterator[tuple[Path, dict]]:
    """Check the registered checksum, decrypt every chunk to a private temporary file."""
    storage = storages[settings.RETENTION_BACKUP_STORAGE]
    if not storage.exists(artefact):
        raise BackupError(f"No backup named {artefact!r} in the backup storage.")
    with tempfile.TemporaryDirectory(prefix="assyst-restore-") as tmp:
        plain = Path(tmp) / "plain"
        digest = hashlib.sha256()
        with storage.open(artefact, "rb") as src, plain.open("wb") as out:
            hashing = _HashingReader(src, digest)
            metadata = decrypt_stream(hashing, out)
        record = BackupRecord.objects.filter(artefact=artefact).order_by("-finished_at").first()
        if record and record.checksum and record.checksum != f"sha256:{digest.hexdigest()}":
            raise BackupIntegrityError("The backup does not match the checksum in the backup register. Refusing it.")
        yield plain, metadata


class _HashingReader:
    def __init__(self, src, digest) -> None:
        self.src, self.digest = src, digest

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.digest.update(data)
        return data


def backup_verify(*, artefact: str) -> dict:
    """Decrypt and check a stored backup without restoring it; returns its metadata."""
    with _decrypted(artefact) as (_plain, metadata):
        return metadata


def database_restore(*, artefact: str, target_url: str) -> dict:
    """Restore a backup into an EMPTY database given as a URL (never over live data)."""
    target = environ.Env.db_url_config(target_url)
    engine = _engine(target)
    with _decrypted(artefact) as (plain, metadata):
        if metadata.get("engine") != engine:
            raise BackupError(f"This is a {metadata.get('engine')} backup; the target is {engine}.")
        if engine == "postgresql":
            _pg_restore(plain, target)
        else:
            _sqlite_restore(plain, Path(target["NAME"]))
    return metadata


def _pg_connect(settings_dict: dict):
    import psycopg

    params = {"dbname": settings_dict["NAME"]}
    for key, arg in (("HOST", "host"), ("PORT", "port"), ("USER", "user"), ("PASSWORD", "password")):
        if settings_dict.get(key):
            params[arg] = str(settings_dict[key])
    if sslmode := settings_dict.get("OPTIONS", {}).get("sslmode"):
        params["sslmode"] = sslmode
    return psycopg.connect(**params)


def _pg_restore(plain: Path, target: dict) -> None:
    with _pg_connect(target) as conn:
        (tables,) = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()
    if tables:
        raise BackupError(f"The target database {target['NAME']!r} is not empty ({tables} tables). Restore only into "
                          "an empty database.")  # fmt: skip
    cmd = [_pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
    result = subprocess.run(  # noqa: S603
        [*cmd, "--dbname", target["NAME"], str(plain)], env=_pg_env(target), capture_output=True, check=False
    )
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed: {result.stderr.decode(errors='replace')[-2000:]}")


def _sqlite_restore(plain: Path, path: Path) -> None:
    if path.exists() and path.stat().st_size:
        raise BackupError(f"The target {path} exists and is not empty. Restore only into a new file.")
    check = sqlite3.connect(plain)
    try:
        if check.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupIntegrityError("The decrypted SQLite database fails its integrity check.")
    except sqlite3.DatabaseError as exc:
        raise BackupIntegrityError(f"The decrypted file is not a SQLite database: {exc}") from exc
    finally:
        check.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    shutil.copyfile(plain, part)
    os.chmod(part, 0o600)
    os.replace(part, path)


# --- comparing a restore with its source ------------------------------------------------------------


def database_fingerprint(cursor, vendor: str) -> dict[str, tuple[int, str]]:
    """Per table: row count and an order-independent SHA-256 over every row's text form.

    Works on any DB-API cursor, so the source (through Django) and a restored database
    (a plain connection) are compared the same way, value by value.
    """
    result = {}
    if vendor == "postgresql":
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        for (table,) in cursor.fetchall():
            quoted = '"' + table.replace('"', '""') + '"'
            cursor.execute(f"SELECT md5(t::text) FROM {quoted} AS t")  # noqa: S608 - name from the catalogue
            result[table] = _digest(row[0] for row in cursor.fetchall())
    else:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        for (table,) in cursor.fetchall():
            quoted = '"' + table.replace('"', '""') + '"'
            cursor.execute(f"PRAGMA table_info({quoted})")
            columns = " || '|' || ".join(f'quote("{c[1]}")' for c in cursor.fetchall())
            cursor.execute(f"SELECT {columns} FROM {quoted}")  # noqa: S608 - names from the catalogue
            result[table] = _digest(hashlib.md5(row[0].encode()).hexdigest() for row in cursor.fetchall())  # noqa: S324
    return result


def _digest(row_hashes) -> tuple[int, str]:
    rows = sorted(row_hashes)
    return len(rows), hashlib.sha256("".join(rows).encode()).hexdigest()


def target_fingerprint(target_url: str) -> dict[str, tuple[int, str]]:
    target = environ.Env.db_url_config(target_url)
    if _engine(target) == "postgresql":
        with _pg_connect(target) as conn, conn.cursor() as cursor:
            return database_fingerprint(cursor, "postgresql")
    conn = sqlite3.connect(target["NAME"])
    try:
        return database_fingerprint(conn.cursor(), "sqlite")
    finally:
        conn.close()
