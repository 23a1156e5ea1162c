"""The portal's own database backups (C24): encrypted, registered, restorable into an empty database.

Runs on whatever database the suite uses: SQLite locally, PostgreSQL in CI (pg_dump and
pg_restore into a database created here), never skipped.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management import CommandError, call_command
from django.db import connection

from assyst.celery import BEAT_SCHEDULE
from governance.retention import backups, owndb
from governance.retention.backup_crypto import BackupIntegrityError, BackupKeyError
from governance.retention.models import BackupRecord
from governance.retention.tasks import OWN_BACKUP_TASK, backup_portal_database
from governance.tenancy.models import Organisation
from tests.factories import MembershipFactory, approved_grant, support_request

pytestmark = [pytest.mark.commitment("C24")]


@pytest.fixture
def backup_settings(settings, tmp_path):
    settings.RETENTION_BACKUP_KEY = secrets.token_urlsafe(32)
    settings.RETENTION_BACKUP_KEY_FALLBACKS = []
    settings.RETENTION_PRIMARY_LOCATION = settings.RETENTION_BACKUP_STORAGE_LOCATION = "uk-south"
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "store"},
        },
    }
    return settings


@pytest.fixture
def empty_target(tmp_path):
    """A URL of an empty database of the suite's engine; dropped afterwards."""
    sd = connection.settings_dict
    if connection.vendor == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"
        return
    name = f"{sd['NAME']}_restore_{secrets.token_hex(4)}"
    admin = owndb._pg_connect({**sd, "NAME": "postgres"})
    admin.autocommit = True
    admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    auth = quote(sd["USER"] or "") + (f":{quote(sd['PASSWORD'])}" if sd.get("PASSWORD") else "")
    try:
        yield f"postgres://{auth}@{sd['HOST'] or 'localhost'}:{sd['PORT'] or 5432}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _customer_data():
    """Encrypted fields, several tenants, support requests and grants, the audit trail."""
    orgs = []
    for _ in range(3):
        member = MembershipFactory()
        orgs.append(member.organisation)
        approved_grant(member.organisation)
        support_request(member.organisation)
    return orgs


def _source_fingerprint():
    with connection.cursor() as cursor:
        return owndb.database_fingerprint(cursor, connection.vendor)


@pytest.mark.django_db(transaction=True)
def test_backup_restores_into_an_empty_database_identically(backup_settings, empty_target):
    orgs = _customer_data()
    before = _source_fingerprint()
    assert before["tenancy_organisation"][0] >= 3 and before["audit_auditevent"][0] > 0

    record = owndb.database_backup(kind="full")

    storage = storages["backups"]
    assert record.status == BackupRecord.Status.SUCCEEDED and record.encrypted
    assert record.location == "uk-south" and record.reported_by == "portal"
    assert record.expires_at == record.finished_at + timedelta(days=90)
    assert storage.exists(record.artefact) and storage.size(record.artefact) == record.size_bytes
    assert record.checksum.startswith("sha256:") and len(record.checksum) == 71
    raw = storage.open(record.artefact).read()
    # Encrypted at rest: no plaintext of the data is in the artefact.
    for org in orgs:
        assert org.name.encode() not in raw and org.slug.encode() not in raw
    assert b"tenancy_organisation" not in raw and b"SQLite format" not in raw

    owndb.database_restore(artefact=record.artefact, target_url=empty_target)
    after = owndb.target_fingerprint(empty_target)
    assert after == before  # every table, row by row (count and digest of each row's values)

    # Never over existing data.
    with pytest.raises(owndb.BackupError, match="not empty"):
        owndb.database_restore(artefact=record.artefact, target_url=empty_target)


@pytest.mark.django_db(transaction=True)
def test_tampered_truncated_or_wrongly_keyed_backups_are_refused(backup_settings, tmp_path):
    Organisation.objects.create(name="Tamper Ltd", slug="tamper")
    record = owndb.database_backup(kind="incremental")
    storage = storages["backups"]
    raw = storage.open(record.artefact).read()

    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01
    tampered = storage.save("tampered.assystdb", ContentFile(bytes(flipped)))
    with pytest.raises(BackupIntegrityError, match="integrity check"):
        owndb.backup_verify(artefact=tampered)
    truncated = storage.save("truncated.assystdb", ContentFile(raw[: len(raw) - 40]))
    with pytest.raises(BackupIntegrityError, match="cut short"):
        owndb.backup_verify(artefact=truncated)
    with pytest.raises(BackupIntegrityError, match="Not an Assyst database backup"):
        owndb.backup_verify(artefact=storage.save("plain.sqlite3", ContentFile(b"SQLite format 3\x00" + b"0" * 99)))
    # The artefact itself altered in place: caught by the tag (and by the register's checksum).
    with storage.open(record.artefact, "wb") as fh:
        fh.write(bytes(flipped))
    with pytest.raises(CommandError, match="altered or corrupted"):
        call_command("restore_database", record.artefact, "--verify-only")
    with storage.open(record.artefact, "wb") as fh:
        fh.write(raw)
    assert owndb.backup_verify(artefact=record.artefact)["kind"] == "incremental"

    old_key = backup_settings.RETENTION_BACKUP_KEY
    backup_settings.RETENTION_BACKUP_KEY = secrets.token_urlsafe(32)
    with pytest.raises(BackupKeyError, match="No configured backup key matches"):
        owndb.backup_verify(artefact=record.artefact)
    with pytest.raises(CommandError, match="No configured backup key matches"):
        call_command("restore_database", record.artefact, f"--target=sqlite:///{tmp_path / 'x.sqlite3'}")
    assert not (tmp_path / "x.sqlite3").exists()
    backup_settings.RETENTION_BACKUP_KEY_FALLBACKS = [old_key]  # after a key change, old backups still restore
    assert owndb.backup_verify(artefact=record.artefact)["engine"] == connection.vendor


@pytest.mark.django_db
def test_no_key_means_no_backup(backup_settings):
    backup_settings.RETENTION_BACKUP_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="never written unencrypted"):
        owndb.database_backup(kind="full")
    with pytest.raises(CommandError, match="RETENTION_BACKUP_KEY"):
        call_command("backup_database", "--kind=full")


@pytest.mark.django_db(transaction=True)
def test_scheduled_runs_register_and_satisfy_the_policy(backup_settings, capsys):
    backup_portal_database("full")
    call_command("backup_database", "--kind=incremental")
    assert "expires" in capsys.readouterr().out
    kinds = sorted(BackupRecord.objects.values_list("kind", flat=True))
    assert kinds == ["full", "incremental"]
    assert backups.policy_misses() == []
    from governance.core.models import JobRun

    assert JobRun.objects.get(task=OWN_BACKUP_TASK).outcome == JobRun.Outcome.SUCCESS
    # Weekly full, daily incremental on the other days.
    entries = {e["args"][0]: e for e in BEAT_SCHEDULE.values() if e["task"] == OWN_BACKUP_TASK}
    assert entries["full"]["schedule"].day_of_week == {0}
    assert entries["incremental"]["schedule"].day_of_week == {1, 2, 3, 4, 5, 6}
    assert entries["full"]["schedule"].hour == entries["incremental"]["schedule"].hour


@pytest.mark.commitment("C22")
@pytest.mark.django_db(transaction=True)
def test_own_backups_expire_with_the_register(backup_settings):
    import time_machine

    record = owndb.database_backup(kind="full")
    with time_machine.travel(record.finished_at + timedelta(days=90, minutes=1), tick=False):
        assert backups.backups_expire() == 1
    assert not storages["backups"].exists(record.artefact)
    record.refresh_from_db()
    assert record.status == BackupRecord.Status.EXPIRED
    assert Path(record.artefact).suffix == ".assystdb"
