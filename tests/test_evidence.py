"""Incident evidence (C19): encrypted at rest, checked uploads, shared-only downloads, each audited."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from governance.audit.models import AuditEvent
from governance.core.encryption import current_key
from incidents.evidence import evidence_add, evidence_open, evidence_share, sniff_content_type
from incidents.models import Evidence
from tests.factories import StaffFactory
from tests.helpers import otp_client
from tests.test_portal_incidents import add_evidence, make_incident, manager

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C19")]

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 40
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n"


@pytest.fixture(autouse=True)
def _evidence_root(settings, tmp_path):
    settings.EVIDENCE_ROOT = str(tmp_path / "evidence")


def _files() -> list[Path]:
    root = Path(django_settings.EVIDENCE_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _upload(incident, content, *, name="file.bin", content_type="application/octet-stream", share_with=(), user=None):
    return evidence_add(
        incident=incident,
        acting_user=user or manager(),
        title="Evidence",
        uploaded_file=SimpleUploadedFile(name, content, content_type=content_type),
        share_with=share_with,
    )


def test_bytes_are_encrypted_at_rest_under_a_random_name(org_a):
    marker = f"CONFIDENTIAL-{secrets.token_hex(8)}"
    plaintext = f"timestamp,event\n2026-01-01,{marker}\n".encode()
    evidence = _upload(
        make_incident(organisations=[org_a]), plaintext, name="customer-secrets.csv", content_type="text/csv"
    )
    (stored,) = _files()
    raw = stored.read_bytes()
    assert marker.encode() not in raw and plaintext not in raw
    assert raw[1:9] == current_key().key_id  # same format and key id as encrypted columns
    assert "customer-secrets" not in evidence.stored_name and "customer-secrets" not in str(stored)
    assert stored == Path(django_settings.EVIDENCE_ROOT, evidence.stored_name).resolve()
    assert evidence.sha256 == hashlib.sha256(plaintext).hexdigest()
    assert (evidence.content_type, evidence.size) == ("text/csv", len(plaintext))
    data, filename, content_type = evidence_open(evidence=evidence, user=manager())
    assert (data, filename, content_type) == (plaintext, "customer-secrets.csv", "text/csv")


def test_old_key_still_opens_after_rotation(settings, org_a):
    evidence = add_evidence(make_incident(organisations=[org_a]), content=PDF)
    old = settings.FIELD_ENCRYPTION_KEY
    settings.FIELD_ENCRYPTION_KEY = secrets.token_urlsafe(32)
    settings.FIELD_ENCRYPTION_KEY_FALLBACKS = [old]
    assert evidence_open(evidence=evidence, user=manager())[0] == PDF


@pytest.mark.commitment("C06")
def test_rotate_encryption_key_reencrypts_evidence_files(settings, org_a):
    from io import StringIO

    from django.core.management import call_command

    evidence = add_evidence(make_incident(organisations=[org_a]), content=PDF)
    old = settings.FIELD_ENCRYPTION_KEY
    settings.FIELD_ENCRYPTION_KEY = secrets.token_urlsafe(32)
    settings.FIELD_ENCRYPTION_KEY_FALLBACKS = [old]
    out = StringIO()
    call_command("rotate_encryption_key", "--no-progress", stdout=out)
    assert "evidence files: 1 checked, 1 rewritten" in out.getvalue()
    (stored,) = _files()
    assert stored.read_bytes()[1:9] == current_key().key_id
    settings.FIELD_ENCRYPTION_KEY_FALLBACKS = []  # the old key is gone: the file still opens
    assert evidence_open(evidence=evidence, user=manager())[0] == PDF
    out = StringIO()
    call_command("rotate_encryption_key", "--no-progress", stdout=out)
    assert "evidence files: 1 checked, 0 rewritten" in out.getvalue()


def test_tampered_file_is_refused(org_a):
    from governance.core.encryption import DecryptionError

    evidence = add_evidence(make_incident(organisations=[org_a]), content=PDF)
    (stored,) = _files()
    raw = bytearray(stored.read_bytes())
    raw[-5] ^= 1
    stored.write_bytes(bytes(raw))
    with pytest.raises(DecryptionError):
        evidence_open(evidence=evidence, user=manager())


@pytest.mark.parametrize(
    ("content", "declared", "name", "expected"),
    [
        (PNG, "application/pdf", "shot.pdf", "image/png"),  # the bytes decide, not the browser
        (JPEG, "image/png", "photo.png", "image/jpeg"),
        (PDF, "text/plain", "report.txt", "application/pdf"),
        (b'{"a": 1}', "application/json", "x.json", "application/json"),
        (b"plain words", "image/png", "x.png", "text/plain"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "image/png", "x.png", None),  # a Windows executable
        (b"\x00\x01\x02binary", "application/pdf", "x.pdf", None),
    ],
)
def test_type_is_sniffed_from_the_bytes(content, declared, name, expected):
    assert sniff_content_type(content, declared=declared, filename=name) == expected


def test_disallowed_types_and_sizes_are_refused_and_leave_no_file(settings, org_a):
    incident = make_incident(organisations=[org_a])
    with pytest.raises(ValidationError, match="not accepted"):
        _upload(incident, b"MZ\x90\x00\x03\x00\x00\x00", name="invoice.pdf", content_type="application/pdf")
    settings.EVIDENCE_ALLOWED_TYPES = ["application/pdf", "image/png", "image/jpeg"]
    with pytest.raises(ValidationError, match="not accepted"):
        _upload(incident, b"<script>alert(1)</script>", name="x.png", content_type="image/png")
    settings.EVIDENCE_MAX_BYTES = 100
    with pytest.raises(ValidationError, match="larger than the limit"):
        _upload(incident, PDF + b"x" * 100, name="big.pdf", content_type="application/pdf")
    with pytest.raises(ValidationError, match="empty"):
        _upload(incident, b"", name="empty.pdf", content_type="application/pdf")
    assert _upload(incident, PDF, name="ok.pdf").content_type == "application/pdf"
    assert Evidence.objects.count() == 1 and len(_files()) == 1


def test_shared_only_with_affected_organisations(org_a, org_b):
    incident = make_incident(organisations=[org_a])
    with pytest.raises(ValidationError, match="Org B"):
        _upload(incident, PDF, share_with=[org_b])
    assert _files() == []
    evidence = _upload(incident, PDF, share_with=[org_a])
    with pytest.raises(ValidationError):
        evidence_share(evidence=evidence, acting_user=manager(), organisations=[org_a, org_b])
    assert list(evidence.shared_with.all()) == [org_a]
    # A general incident affects everyone: any organisation may receive its evidence.
    general = _upload(make_incident(), PDF, share_with=[org_b])
    assert list(general.shared_with.all()) == [org_b]


def test_staff_without_permissions_are_refused(org_a):
    incident = make_incident(organisations=[org_a])
    plain_staff = StaffFactory()
    with pytest.raises(PermissionDenied):
        _upload(incident, PDF, user=plain_staff)
    evidence = _upload(incident, PDF, share_with=[org_a])
    with pytest.raises(PermissionDenied):
        evidence_open(evidence=evidence, user=plain_staff)
    with pytest.raises(PermissionDenied):
        evidence_share(evidence=evidence, acting_user=plain_staff, organisations=[])
    assert not AuditEvent.objects.filter(action="incident.evidence_downloaded").exists()


def test_only_shared_organisations_download_and_every_download_is_audited(client, customer_a, customer_b, org_a, org_b):
    incident = make_incident(organisations=[org_a, org_b])
    evidence = add_evidence(incident, share_with=[org_a], content=PDF)
    url = reverse("portal:evidence_download", args=[evidence.pk])

    client.force_login(customer_b)  # affected, but not shared with
    assert client.get(url).status_code == 404
    with pytest.raises(PermissionDenied):
        evidence_open(evidence=evidence, user=customer_b)

    client.force_login(customer_a)
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200
        assert response.content == PDF
        assert response["Content-Type"] == "application/pdf"
        assert response["Content-Disposition"] == 'attachment; filename="log.pdf"'
        assert response["X-Content-Type-Options"] == "nosniff"
    events = AuditEvent.objects.filter(action="incident.evidence_downloaded", object_id=str(evidence.pk))
    assert events.count() == 2
    assert {(e.actor_id, e.organisation_id) for e in events} == {(customer_a.pk, org_a.pk)}

    evidence_share(evidence=evidence, acting_user=manager(), organisations=[org_b])
    assert client.get(url).status_code == 404  # unshared: gone for A at once


def test_download_name_is_safe(client, customer_a, org_a):
    evidence = add_evidence(
        make_incident(organisations=[org_a]), share_with=[org_a], content=PNG, name='../../etc/"pass\r\nwd".exe'
    )
    assert evidence.original_name == "pass_wd_.png"
    client.force_login(customer_a)
    response = client.get(reverse("portal:evidence_download", args=[evidence.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="pass_wd_.png"'
    assert response["Content-Type"] == "image/png"


def test_admin_upload_goes_through_the_service(org_a, org_b):
    staff = manager()
    incident = make_incident(organisations=[org_a])
    client = otp_client(staff)
    url = reverse("admin:incidents_evidence_add")
    assert client.get(url).status_code == 200
    refused = client.post(
        url,
        {
            "incident": incident.pk,
            "title": "Log",
            "share_with": [org_b.pk],
            "uploaded_file": SimpleUploadedFile("a.pdf", PDF),
        },
    )
    assert refused.status_code == 200 and "only be shared with organisations" in refused.content.decode()
    response = client.post(
        url,
        {
            "incident": incident.pk,
            "title": "Log",
            "share_with": [org_a.pk],
            "uploaded_file": SimpleUploadedFile("a.pdf", PDF),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    evidence = Evidence.objects.get()
    assert list(evidence.shared_with.all()) == [org_a]
    assert AuditEvent.objects.filter(action="incident.evidence_added", object_id=str(evidence.pk)).exists()
    download = client.get(reverse("admin:incidents_evidence_download", args=[evidence.pk]))
    assert download.status_code == 200 and download.content == PDF
    assert AuditEvent.objects.filter(action="incident.evidence_downloaded", actor=staff).count() == 1
    change = client.get(reverse("admin:incidents_evidence_change", args=[evidence.pk]))
    assert change.status_code == 200
