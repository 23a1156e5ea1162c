"""The trust report pages (staff and auditors), its PDF and JSON downloads (audited), and
the public trust page of published commitments."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from governance.access.roles import AUDITOR, DATA_PROTECTION_OFFICER, SECURITY_OFFICER, SUPPORT_ENGINEER
from governance.audit.models import AuditEvent
from governance.tenancy.models import DataProtectionRole
from governance.trust import public
from governance.trust.models import PublishedCommitment
from governance.trust.services import published_commitment_add
from incidents.models import AffectedOrganisation, Incident
from tests.factories import OrganisationFactory, StaffFactory
from tests.helpers import otp_client

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
URL = "/admin/trust/report/"


@pytest.fixture(autouse=True)
def _frozen():
    public.invalidate()
    with time_machine.travel(NOW, tick=False):
        yield


def _late_controller_notice():
    """A breach notice sent 80 h after awareness: C12 must show failing."""
    org = OrganisationFactory(name="Contoso Legal", data_protection_role=DataProtectionRole.CONTROLLER)
    aware = NOW - timedelta(days=12)
    incident = Incident.objects.create(
        title="Misdirected exports", description="d", kind="specific", detected_at=aware, aware_at=aware,
        personal_data_breach=True, created_by=StaffFactory(),
    )  # fmt: skip
    AffectedOrganisation.objects.create(
        incident=incident, organisation=org, role="controller", deadline_at=aware + timedelta(hours=72),
        notified_at=aware + timedelta(hours=80),
    )  # fmt: skip
    return incident


@pytest.mark.commitment("C12")
@pytest.mark.commitment("C25")
@pytest.mark.parametrize("role", [SECURITY_OFFICER, AUDITOR, DATA_PROTECTION_OFFICER])
def test_staff_and_auditors_see_every_commitment_with_the_missed_deadline_failing(role):
    incident = _late_controller_notice()
    client = otp_client(StaffFactory(role=role))
    response = client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    for n in range(2, 29):
        assert f'id="C{n:02d}"' in body
    assert 'class="trust-row-failing"' in body
    c12 = body[body.index('id="C12"') : body.index('id="C13"')]
    assert "failing" in c12 and "1 late or missed" in c12
    assert f"/admin/incidents/incident/{incident.pk}/change/" in c12


@pytest.mark.commitment("C25")
def test_roles_without_the_permission_get_403_and_anonymous_users_go_to_login():
    assert otp_client(StaffFactory(role=SUPPORT_ENGINEER)).get(URL).status_code == 403
    assert otp_client(StaffFactory(role=SUPPORT_ENGINEER)).get("/admin/trust/report.pdf").status_code == 403
    response = Client().get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize(
    "query",
    [
        "since=2026-13-01",
        "since=yesterday",
        "until=2030-01-01",
        "since=2026-10-01&until=2026-09-01",
        "since=1999-01-01",
        "since=2020-01-01&until=2026-01-01",
        "since=%00",
        "since=" + "9" * 500,
    ],
)
def test_bad_periods_are_400_with_the_form_error_never_500(query):
    client = otp_client(StaffFactory(role=AUDITOR))
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert 'class="trust-errors"' in response.content.decode()
    for download in ("report.pdf", "report.json"):
        assert client.get(f"/admin/trust/{download}?{query}").status_code == 400
    assert not AuditEvent.objects.filter(action="trust.report_downloaded").exists()


@pytest.mark.commitment("C12")
def test_json_download_is_audited_and_carries_the_failing_records():
    _late_controller_notice()
    auditor = StaffFactory(role=AUDITOR)
    response = otp_client(auditor).get("/admin/trust/report.json?since=2026-01-01&until=2026-11-20")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert 'filename="trust-report-20260101-20261120.json"' in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["period"]["since"] == "2026-01-01T00:00:00+00:00"
    by_id = {c["commitment"]: c for c in data["commitments"]}
    assert sorted(by_id) == [f"C{n:02d}" for n in range(2, 29)]
    assert by_id["C12"]["status"] == "failing" and by_id["C12"]["records"][0]["problem"].startswith("sent 8.0 h")
    event = AuditEvent.objects.get(action="trust.report_downloaded")
    assert event.actor == auditor and event.data["format"] == "json" and event.data["counts"]["failing"] >= 1


@pytest.mark.commitment("C12")
def test_pdf_download_is_a_pdf_and_is_audited():
    _late_controller_notice()
    officer = StaffFactory(role=SECURITY_OFFICER)
    response = otp_client(officer).get("/admin/trust/report.pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    event = AuditEvent.objects.get(action="trust.report_downloaded")
    assert event.actor == officer and event.data["format"] == "pdf"


def test_pdf_text_lists_the_commitments_and_the_failing_record():
    from governance.trust.evidence import Period
    from governance.trust.report import trust_report, trust_report_pdf

    _late_controller_notice()
    pdf = trust_report_pdf(trust_report(Period(NOW - timedelta(days=30), NOW)))
    assert pdf.startswith(b"%PDF-") and len(pdf) > 3000


# --- the public trust page -----------------------------------------------------------------------


def test_public_page_shows_only_published_commitments_without_session_or_personal_data():
    _late_controller_notice()
    officer = StaffFactory(role=SECURITY_OFFICER)
    published_commitment_add(commitment_id="C12", acting_user=officer)
    published_commitment_add(commitment_id="C08", acting_user=officer)
    public.invalidate()
    client = Client()
    response = client.get("/trust/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="C12"' in body and 'id="C08"' in body and 'id="C05"' not in body
    assert "1 late or missed" in body
    # Summaries only: no organisation names, no links into the admin, no session.
    assert "Contoso" not in body and "/admin/" not in body
    assert "Cookie" not in response.get("Vary", "") and not response.cookies
    assert "csrfmiddlewaretoken" not in body
    assert "public" in response["Cache-Control"]


def test_public_page_with_nothing_published_says_so():
    body = Client().get("/trust/").content.decode()
    assert "No commitments are published here yet." in body


def test_publishing_through_the_admin_is_audited_and_refreshes_the_page(django_capture_on_commit_callbacks):
    officer = StaffFactory(role=SECURITY_OFFICER)
    client = otp_client(officer)
    assert "No commitments" in Client().get("/trust/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/trust/publishedcommitment/add/", {"commitment_id": "C24"})
    assert response.status_code == 302
    published = PublishedCommitment.objects.get()
    assert published.commitment_id == "C24"
    assert AuditEvent.objects.filter(action="trust.commitment_published", actor=officer).exists()
    assert 'id="C24"' in Client().get("/trust/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/trust/publishedcommitment/",
            {"action": "unpublish", "_selected_action": [published.pk]},
        )
    assert response.status_code == 302 and not PublishedCommitment.objects.exists()
    assert AuditEvent.objects.filter(action="trust.commitment_unpublished", actor=officer).exists()
    assert "No commitments" in Client().get("/trust/").content.decode()


def test_auditors_see_published_commitments_but_cannot_publish():
    client = otp_client(StaffFactory(role=AUDITOR))
    assert client.get("/admin/trust/publishedcommitment/").status_code == 200
    assert client.post("/admin/trust/publishedcommitment/add/", {"commitment_id": "C24"}).status_code == 403
    assert not PublishedCommitment.objects.exists()


def test_publishing_an_already_published_commitment_is_refused_with_a_message():
    from django.core.exceptions import ValidationError

    officer = StaffFactory(role=SECURITY_OFFICER)
    published_commitment_add(commitment_id="C12", acting_user=officer)
    with pytest.raises(ValidationError):
        published_commitment_add(commitment_id="C12", acting_user=officer)
    with pytest.raises(ValidationError):
        published_commitment_add(commitment_id="C99", acting_user=officer)
    # Through the admin: C12 is no longer offered, so the form refuses it (200 with the error).
    response = otp_client(officer).post("/admin/trust/publishedcommitment/add/", {"commitment_id": "C12"})
    assert response.status_code == 200 and PublishedCommitment.objects.count() == 1
