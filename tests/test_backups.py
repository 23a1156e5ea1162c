"""Backup register, policy check (C24) and 90-day expiry (C22)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from governance.access.roles import SECURITY_OFFICER
from governance.retention import backups
from governance.retention.models import BackupPolicyCheck, BackupRecord
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db
URL = "/hooks/backups/"
OLD_URL = "/admin/retention/backuprecord/report/"
NOW = "2026-06-10 08:00Z"


def _register(kind="full", days_ago=0, **overrides):
    finished = timezone.now() - timedelta(days=days_ago)
    fields = {
        "kind": kind,
        "source": "pgbackrest:main",
        "started_at": finished - timedelta(minutes=20),
        "finished_at": finished,
        "size_bytes": 1024,
        "checksum": "sha256:abc",
        "encrypted": True,
        "location": "uk-south",
        "reported_by": "test",
        **overrides,
    }
    return backups.backup_register(**fields)


@pytest.mark.commitment("C24")
def test_policy_passes_with_recent_encrypted_backups_in_the_primary_location(settings):
    settings.RETENTION_PRIMARY_LOCATION = "uk-south"
    with time_machine.travel(NOW, tick=False):
        _register("full", days_ago=6)
        _register("incremental", days_ago=0)
        check = backups.backup_policy_check()
    assert check.passed and not check.alerted


@pytest.mark.commitment("C24")
def test_policy_misses_alert_security_officers(settings, django_capture_on_commit_callbacks):
    settings.RETENTION_PRIMARY_LOCATION = "uk-south"
    officer = StaffFactory(role=SECURITY_OFFICER)
    with time_machine.travel(NOW, tick=False):
        _register("full", days_ago=8)
        _register("incremental", days_ago=2, encrypted=False, location="us-east")
        with django_capture_on_commit_callbacks(execute=True):
            check = backups.backup_policy_check()
    text = " ".join(check.misses)
    assert "full backup" in text and "incremental backup" in text
    assert "not encrypted" in text and "outside the primary location" in text
    [message] = mail.outbox
    assert message.to == [officer.email] and "not encrypted" in message.body
    assert BackupPolicyCheck.objects.get().alerted


@pytest.mark.commitment("C24")
def test_no_backups_at_all_is_a_miss():
    assert len(backups.policy_misses()) == 2


@pytest.mark.commitment("C22")
def test_expiry_deletes_artefacts_after_90_days_and_keeps_the_record(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": tmp_path}},
    }
    storage = storages["backups"]
    old_name = storage.save("full-old.tar.zst", ContentFile(b"old"))
    new_name = storage.save("full-new.tar.zst", ContentFile(b"new"))
    with time_machine.travel(NOW, tick=False):
        old = _register(days_ago=91, artefact=old_name)
        new = _register(days_ago=89, artefact=new_name)
        assert old.expires_at == old.finished_at + timedelta(days=90)
        assert backups.backups_expire() == 1
        assert backups.backups_expire() == 0  # idempotent
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.status == BackupRecord.Status.EXPIRED and old.expired_at is not None
    assert new.status == BackupRecord.Status.SUCCEEDED
    assert not storage.exists(old_name) and storage.exists(new_name)


@pytest.mark.commitment("C24")
def test_endpoint_requires_the_token_and_valid_json(settings):
    settings.RETENTION_BACKUP_API_TOKEN = "t" * 40
    client = Client(enforce_csrf_checks=True)
    body = {
        "kind": "full",
        "source": "wal-g:main",
        "started_at": "2026-06-10T01:00:00Z",
        "finished_at": "2026-06-10T01:30:00Z",
        "size_bytes": 10,
        "checksum": "sha256:ff",
        "encrypted": True,
        "location": "uk-south",
    }
    post = lambda data, token: client.post(  # noqa: E731
        URL, data=data, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}" if token else ""
    )
    with time_machine.travel(NOW, tick=False):
        assert post(json.dumps(body), None).status_code == 401
        assert post(json.dumps(body), "wrong").status_code == 401
        assert post("not json", "t" * 40).status_code == 400
        assert post(json.dumps({**body, "kind": "weekly"}), "t" * 40).status_code == 400
        assert post(json.dumps({k: v for k, v in body.items() if k != "location"}), "t" * 40).status_code == 400
        assert client.get(URL, HTTP_AUTHORIZATION="Bearer " + "t" * 40).status_code == 405
        bad = [
            {**body, "size_bytes": True},
            {**body, "size_bytes": -1},
            {**body, "encrypted": "yes"},
            {**body, "status": "maybe"},
            {**body, "source": ["x"]},
            {**body, "started_at": "yesterday"},
            {**body, "finished_at": "2026-06-10T01:30:00"},  # no time zone
            {**body, "started_at": "2026-06-10T02:00:00Z"},  # after the end
            [body],
        ]
        for data in bad:
            response = post(json.dumps(data), "t" * 40)
            assert response.status_code == 400 and response.json()["error"], data
        assert post("x" * (17 * 1024), "t" * 40).status_code == 413
        ok = post(json.dumps(body), "t" * 40)
        # The earlier address under /admin/ still works (same view, same token).
        old = client.post(
            OLD_URL, data=json.dumps({**body, "kind": "incremental"}), content_type="application/json",
            HTTP_AUTHORIZATION="Bearer " + "t" * 40,
        )  # fmt: skip
    assert ok.status_code == 201 and old.status_code == 201
    record = BackupRecord.objects.get(kind="full")
    assert record.encrypted and record.reported_by == "api"
    assert not BackupRecord.objects.filter(source__startswith="[").exists()


@pytest.mark.commitment("C24")
def test_endpoint_refuses_everything_without_a_configured_token(settings):
    settings.RETENTION_BACKUP_API_TOKEN = ""
    response = Client().post(URL, data="{}", content_type="application/json", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 401


@pytest.mark.commitment("C24")
def test_management_command_registers_a_run(capsys):
    call_command(
        "backup_register",
        "--kind=incremental",
        "--source=pgbackrest:main",
        "--started=2026-01-01T00:00:00Z",
        "--finished=2026-01-01T00:05:00Z",
        "--location=uk-south",
        "--encrypted",
    )
    record = BackupRecord.objects.get()
    assert record.kind == "incremental" and record.reported_by == "command"
    assert "Registered backup" in capsys.readouterr().out
