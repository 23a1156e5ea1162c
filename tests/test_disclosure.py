"""Vulnerability disclosure (C11): the public report form, triage, the first-response target."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.access.roles import AUDITOR, INCIDENT_MANAGER, SECURITY_OFFICER, SUPPORT_ENGINEER
from governance.audit.models import AuditEvent
from governance.core.models import JobRun
from governance.disclosure import services
from governance.disclosure.models import ReportEvent, VulnerabilityReport
from governance.disclosure.tasks import REMIND_TASK, acknowledge_report, remind_vulnerability_reports
from tests.factories import StaffFactory
from tests.helpers import otp_client
from tests.test_portal_incidents import make_incident

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C11")]

UK = ZoneInfo("Europe/London")
Status = VulnerabilityReport.Status
URL = "/security/report/"
VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
GOOD = {
    "summary": "Stored XSS in the incident title",
    "affected_product": "Governance portal 1.4, /portal/incidents/",
    "steps_to_reproduce": "1. Create an incident titled <script>alert(1)</script>\n2. Open the status page.",
    "impact": "Script runs in every visitor's browser.",
    "cvss_vector": VECTOR,
    "contact_email": "Researcher@Example.org",
    "website": "",
}


def fresh_ip() -> str:
    """A documentation-range IPv6 address nobody else uses: the rate limit lives in the
    shared cache (a file or Redis) and outlives a test run."""
    h = uuid.uuid4().hex
    return "2001:db8:" + ":".join(h[i : i + 4] for i in range(0, 24, 4))


def post(client, data: dict, ip: str | None = None, **extra):
    return client.post(URL, data, REMOTE_ADDR=ip or fresh_ip(), **extra)


def uk(*args) -> datetime:
    return datetime(*args, tzinfo=UK)


def submit(**overrides) -> VulnerabilityReport:
    fields = {k: v for k, v in GOOD.items() if k != "website"}
    return services.report_submit(**{**fields, **overrides})


@pytest.fixture
def ack_runs_inline(monkeypatch):
    """Run the acknowledgement task in-process when it is queued (after commit)."""
    monkeypatch.setattr(acknowledge_report, "delay", lambda pk: acknowledge_report.run(pk))


@pytest.fixture
def officer():
    return StaffFactory(role=SECURITY_OFFICER, email="officer@assyst.example")


# --- the form: a good report ------------------------------------------------------------------------


def test_good_report_is_stored_encrypted_acknowledged_after_commit_and_shows_a_reference(
    client, ack_runs_inline, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(client, GOOD)
        assert mail.outbox == []  # nothing leaves before the transaction commits
    assert response.status_code == 200
    report = VulnerabilityReport.objects.get()
    assert report.reference.startswith("VR-") and len(report.reference) == 13
    assert report.reference in response.content.decode()
    assert report.summary == GOOD["summary"] and report.steps_to_reproduce == GOOD["steps_to_reproduce"]
    assert (report.cvss_vector, report.cvss_base_score, report.cvss_severity) == (VECTOR, Decimal("9.8"), "Critical")
    assert report.status == Status.NEW and report.first_response_at is None
    assert report.contact_email == "Researcher@Example.org"

    # Encrypted at rest: the raw column holds ciphertext, not the address.
    with connection.cursor() as cursor:
        cursor.execute("SELECT contact_email FROM disclosure_vulnerabilityreport WHERE id = %s", [report.pk])
        raw = bytes(cursor.fetchone()[0])
    assert b"Researcher" not in raw and b"example.org" not in raw.lower()

    for callback in callbacks:
        callback()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["Researcher@Example.org"]
    assert report.reference in message.subject and report.reference in message.body
    # Only our own text goes to the address given: the form is no open mail relay.
    assert "<script>" not in message.body and GOOD["summary"] not in message.body
    assert AuditEvent.objects.filter(action="disclosure.report_received", object_id=str(report.pk)).exists()
    assert list(report.events.values_list("to_status", flat=True)) == [Status.NEW]


def test_anonymous_report_without_email_is_stored_and_nobody_is_mailed(
    client, ack_runs_inline, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, {**GOOD, "contact_email": "", "cvss_vector": ""})
    assert response.status_code == 200
    report = VulnerabilityReport.objects.get()
    assert report.contact_email == "" and report.cvss_base_score is None
    assert mail.outbox == []


def test_form_page_is_public_and_csrf_protected(client):
    page = client.get(URL)
    assert page.status_code == 200 and "csrfmiddlewaretoken" in page.content.decode()
    strict = Client(enforce_csrf_checks=True)
    assert post(strict, GOOD).status_code == 403
    assert not VulnerabilityReport.objects.exists()


# --- the form: bad input gets a 4xx and a clear message, never a 500 ------------------------------


@pytest.mark.parametrize(
    ("field", "size"),
    [("summary", 201), ("affected_product", 201), ("steps_to_reproduce", 10_001), ("impact", 5_001),
     ("cvss_vector", 201)],
)  # fmt: skip
def test_oversize_field_is_refused_with_the_form_shown_again(client, field, size):
    response = post(client, {**GOOD, field: "a" * size})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Please correct the problems below" in body and "Ensure this value has at most" in body
    assert not VulnerabilityReport.objects.exists()


def test_oversize_email_is_refused(client):
    response = post(client, {**GOOD, "contact_email": "a" * 250 + "@example.org"})
    assert response.status_code == 400
    assert not VulnerabilityReport.objects.exists()


@pytest.mark.parametrize("size", [300 * 1024, 3 * 1024 * 1024])
def test_oversize_body_is_refused(client, size):
    response = post(client, {**GOOD, "steps_to_reproduce": "x" * size})
    # Past our limit the view answers 413; past Django's upload limit Django answers 400.
    assert response.status_code in (400, 413)
    if size < 1024 * 1024:
        assert response.status_code == 413
        assert "too large" in response.content.decode()
    assert not VulnerabilityReport.objects.exists()


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ("garbage", "CVSS:3.1/"),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/"),
        ("CVSS:3.1/AV:N", "not a valid CVSS v3.1 vector"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:Q", "not a valid CVSS v3.1 vector"),
        ("CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "not a valid CVSS v3.1 vector"),
    ],
)
def test_malformed_cvss_vector_is_a_form_error(client, vector, message):
    response = post(client, {**GOOD, "cvss_vector": vector})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not VulnerabilityReport.objects.exists()


@pytest.mark.parametrize("missing", ["summary", "affected_product", "steps_to_reproduce", "impact"])
def test_missing_required_field_is_refused(client, missing):
    response = post(client, {k: v for k, v in GOOD.items() if k != missing})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not VulnerabilityReport.objects.exists()


def test_empty_post_and_junk_fields_are_400_not_500(client):
    assert post(client, {}).status_code == 400
    assert post(client, {**GOOD, "contact_email": "not an email"}).status_code == 400
    assert post(client, {**GOOD, "summary": "   "}).status_code == 400


def test_honeypot_discards_silently(client, ack_runs_inline, django_capture_on_commit_callbacks):
    events = AuditEvent.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, {**GOOD, "website": "http://spam.example"})
    assert response.status_code == 200
    assert "Your reference number is" in response.content.decode()  # the bot cannot tell
    assert not VulnerabilityReport.objects.exists()
    assert mail.outbox == []
    assert AuditEvent.objects.count() == events


def test_honeypot_is_hidden_from_people(client):
    body = client.get(URL).content.decode()
    assert 'class="visually-hidden" aria-hidden="true"' in body
    assert 'name="website"' in body and 'tabindex="-1"' in body


# --- rate limit -----------------------------------------------------------------------------------------


def test_rate_limit_answers_429_after_the_limit_per_ip_in_a_fixed_window(client, settings):
    settings.DISCLOSURE_RATE_LIMIT = 3
    settings.DISCLOSURE_RATE_WINDOW_SECONDS = 3600
    ip = fresh_ip()
    with time_machine.travel(uk(2027, 3, 2, 10, 0), tick=False):
        statuses = [post(client, GOOD, ip=ip).status_code for _ in range(3)]
        limited = post(client, GOOD, ip=ip)
        other = post(client, GOOD)  # another address is not affected
    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    assert limited["Retry-After"] == "3600"
    assert "Too many reports" in limited.content.decode()
    assert other.status_code == 200
    assert VulnerabilityReport.objects.count() == 4
    # The next window starts afresh.
    with time_machine.travel(uk(2027, 3, 2, 11, 0, 1), tick=False):
        assert post(client, GOOD, ip=ip).status_code == 200


def test_invalid_posts_count_towards_the_limit(client, settings):
    settings.DISCLOSURE_RATE_LIMIT = 2
    ip = fresh_ip()
    assert post(client, {}, ip=ip).status_code == 400
    assert post(client, {}, ip=ip).status_code == 400
    assert post(client, GOOD, ip=ip).status_code == 429
    assert not VulnerabilityReport.objects.exists()


# --- triage --------------------------------------------------------------------------------------------


def test_full_workflow_allowed_and_first_response_recorded_once(officer):
    report = submit()
    with time_machine.travel(uk(2027, 3, 2, 10, 0), tick=False):
        services.report_transition(report=report, acting_user=officer, to_status=Status.TRIAGED, note="Reproduced.")
    report.refresh_from_db()
    first = report.first_response_at
    assert first == uk(2027, 3, 2, 10, 0)
    for to_status in (Status.ACCEPTED, Status.FIXED, Status.DISCLOSED):
        services.report_transition(report=report, acting_user=officer, to_status=to_status, note="")
    report.refresh_from_db()
    assert report.status == Status.DISCLOSED
    assert report.first_response_at == first
    assert list(report.events.order_by("pk").values_list("to_status", flat=True)) == [
        Status.NEW, Status.TRIAGED, Status.ACCEPTED, Status.FIXED, Status.DISCLOSED,
    ]  # fmt: skip
    audited = AuditEvent.objects.filter(action="disclosure.report_transition", object_id=str(report.pk))
    assert audited.count() == 4
    assert audited.order_by("id").first().data["first_response"] is True


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ([], Status.FIXED),
        ([], Status.DISCLOSED),
        ([], Status.ACCEPTED),
        ([Status.TRIAGED], Status.DISCLOSED),
        ([Status.TRIAGED, Status.ACCEPTED, Status.FIXED, Status.DISCLOSED], Status.TRIAGED),
        ([Status.TRIAGED], Status.NEW),
    ],
)
def test_transitions_outside_the_workflow_are_refused(officer, path, refused):
    report = submit()
    for step in path:
        services.report_transition(report=report, acting_user=officer, to_status=step, note="ok")
    with pytest.raises(ValidationError) as error:
        services.report_transition(report=report, acting_user=officer, to_status=refused, note="")
    assert "to_status" in error.value.error_dict
    report.refresh_from_db()
    assert report.status == (path[-1] if path else Status.NEW)


def test_not_applicable_needs_a_note_and_can_be_reopened(officer):
    report = submit()
    with pytest.raises(ValidationError) as error:
        services.report_transition(report=report, acting_user=officer, to_status=Status.NOT_APPLICABLE, note=" ")
    assert "note" in error.value.error_dict
    services.report_transition(report=report, acting_user=officer, to_status=Status.NOT_APPLICABLE, note="Self-XSS.")
    services.report_transition(report=report, acting_user=officer, to_status=Status.TRIAGED, note="New PoC.")
    report.refresh_from_db()
    assert report.status == Status.TRIAGED


def test_duplicate_links_the_original(officer):
    original, copy = submit(), submit(summary="Same XSS again")
    with pytest.raises(ValidationError) as error:
        services.report_transition(report=copy, acting_user=officer, to_status=Status.DUPLICATE)
    assert "duplicate_of" in error.value.error_dict
    with pytest.raises(ValidationError):
        services.report_transition(report=copy, acting_user=officer, to_status=Status.DUPLICATE, duplicate_of=copy)
    with pytest.raises(ValidationError):
        services.report_transition(report=copy, acting_user=officer, to_status=Status.TRIAGED, duplicate_of=original)
    services.report_transition(report=copy, acting_user=officer, to_status=Status.DUPLICATE, duplicate_of=original)
    copy.refresh_from_db()
    assert copy.duplicate_of == original and copy.status == Status.DUPLICATE
    third = submit()
    with pytest.raises(ValidationError):  # link the original, not another duplicate
        services.report_transition(report=third, acting_user=officer, to_status=Status.DUPLICATE, duplicate_of=copy)


@pytest.mark.parametrize("role", [SUPPORT_ENGINEER, INCIDENT_MANAGER, AUDITOR])
def test_only_security_officers_triage(role):
    report = submit()
    with pytest.raises(PermissionDenied):
        services.report_transition(report=report, acting_user=StaffFactory(role=role), to_status=Status.TRIAGED)
    report.refresh_from_db()
    assert report.status == Status.NEW


def test_report_becomes_an_incident(officer):
    report = submit()
    incident = make_incident(title="XSS on the status page")
    services.report_transition(report=report, acting_user=officer, to_status=Status.TRIAGED)
    services.report_link_incident(report=report, acting_user=officer, incident=incident, note="Exploited.")
    report.refresh_from_db()
    assert report.incident == incident
    assert AuditEvent.objects.filter(action="disclosure.report_incident_linked", object_id=str(report.pk)).exists()
    rejected = submit()
    services.report_transition(report=rejected, acting_user=officer, to_status=Status.NOT_APPLICABLE, note="No.")
    with pytest.raises(ValidationError):
        services.report_link_incident(report=rejected, acting_user=officer, incident=incident)


def test_admin_pages_triage_and_link_through_the_services(officer):
    report = submit()
    incident = make_incident(title="Linked incident")
    client = otp_client(officer)
    transition = reverse("admin:disclosure_vulnerabilityreport_transition", args=[report.pk])
    change = reverse("admin:disclosure_vulnerabilityreport_change", args=[report.pk])
    assert "Change status" in client.get(change).content.decode()
    bad = client.post(transition, {"to_status": Status.NOT_APPLICABLE, "note": ""})
    assert bad.status_code == 200 and "Say why the report does not apply." in bad.content.decode()
    refused = client.post(transition, {"to_status": Status.FIXED})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert client.post(transition, {"to_status": Status.TRIAGED, "note": "On it"}).status_code == 302
    link = reverse("admin:disclosure_vulnerabilityreport_incident", args=[report.pk])
    assert client.post(link, {"incident": incident.pk}).status_code == 302
    report.refresh_from_db()
    assert report.status == Status.TRIAGED and report.incident == incident
    page = client.get(change).content.decode()
    assert "On it" in page and "Linked incident" in page


def test_auditor_reads_reports_but_cannot_triage_in_the_admin():
    report = submit()
    client = otp_client(StaffFactory(role=AUDITOR))
    assert client.get(reverse("admin:disclosure_vulnerabilityreport_change", args=[report.pk])).status_code == 200
    transition = reverse("admin:disclosure_vulnerabilityreport_transition", args=[report.pk])
    assert client.post(transition, {"to_status": Status.TRIAGED}).status_code == 403
    report.refresh_from_db()
    assert report.status == Status.NEW


# --- who sees the reporter's address -------------------------------------------------------------------


def test_only_security_officers_see_the_contact_email(officer):
    report = submit(contact_email="hidden.researcher@example.org")
    change = reverse("admin:disclosure_vulnerabilityreport_change", args=[report.pk])
    changelist = reverse("admin:disclosure_vulnerabilityreport_changelist")

    officer_client = otp_client(officer)
    assert "hidden.researcher@example.org" in officer_client.get(change).content.decode()
    assert "hidden.researcher@example.org" not in officer_client.get(changelist).content.decode()

    auditor_client = otp_client(StaffFactory(role=AUDITOR))
    page = auditor_client.get(change).content.decode()
    assert page.count("hidden.researcher") == 0 and "shown to security officers only" in page

    superuser = StaffFactory(is_superuser=True)
    assert "hidden.researcher" not in otp_client(superuser).get(change).content.decode()

    for role in (SUPPORT_ENGINEER, INCIDENT_MANAGER):
        assert otp_client(StaffFactory(role=role)).get(change).status_code in (302, 403, 404)


def test_admin_changelist_query_count_does_not_grow_with_rows(officer):
    incident = make_incident(title="Shared incident")
    client = otp_client(officer)
    url = reverse("admin:disclosure_vulnerabilityreport_changelist")

    def grow(n: int) -> None:
        for i in range(n):
            report = submit(summary=f"Report {i}")
            if i % 2:
                services.report_transition(report=report, acting_user=officer, to_status=Status.TRIAGED)
                services.report_link_incident(report=report, acting_user=officer, incident=incident)

    def count() -> int:
        client.get(url)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    grow(5)
    original = VulnerabilityReport.objects.order_by("pk").first()
    duplicate = submit(summary="Duplicate")
    services.report_transition(report=duplicate, acting_user=officer, to_status=Status.DUPLICATE, duplicate_of=original)
    small = count()
    grow(45)
    assert VulnerabilityReport.objects.count() == 51
    assert count() == small


# --- first-response target and reminders ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (uk(2027, 3, 1, 10, 0), (2027, 3, 4)),  # Monday morning: Thursday
        (uk(2027, 3, 5, 18, 0), (2027, 3, 11)),  # Friday evening counts from Monday: Thursday
        (uk(2027, 3, 6, 12, 0), (2027, 3, 11)),  # Saturday: as Monday
        (uk(2027, 3, 25, 10, 0), (2027, 4, 1)),  # Thursday before Easter: Good Friday, Easter Monday skipped
        (uk(2025, 8, 22, 10, 0), (2025, 8, 28)),  # Friday before the late summer bank holiday (England)
    ],
)
def test_first_response_due_is_three_england_working_days(received, due):
    assert services.first_response_due(received).timetuple()[:3] == due
    with time_machine.travel(received, tick=False):
        assert submit().first_response_due.timetuple()[:3] == due


def _remind_at(moment: datetime, capture=None) -> dict[str, int]:
    """One daily run at `moment`; with `capture`, its emails go out as the run commits."""
    mail.outbox.clear()
    with time_machine.travel(moment, tick=False):
        if capture is None:
            return services.reports_remind(now=moment)
        with capture(execute=True):
            return services.reports_remind(now=moment)


def test_reminders_across_a_weekend_and_bank_holiday(officer, django_capture_on_commit_callbacks):
    StaffFactory(role=SECURITY_OFFICER, email="second.officer@assyst.example")
    StaffFactory(role=SUPPORT_ENGINEER, email="engineer@assyst.example")
    with time_machine.travel(uk(2025, 8, 22, 10, 0), tick=False):  # Friday; Monday 25 is a bank holiday
        late = submit(summary="Nobody answers this one")
        answered = submit(summary="Answered quickly")
    assert late.first_response_due.isoformat() == "2025-08-28"
    with time_machine.travel(uk(2025, 8, 22, 15, 0), tick=False):
        services.report_transition(report=answered, acting_user=officer, to_status=Status.TRIAGED)

    run = django_capture_on_commit_callbacks
    # Saturday, Sunday, the bank holiday and Tuesday: nothing due yet.
    for day in (23, 24, 25, 26):
        assert _remind_at(uk(2025, 8, day, 6, 45), run) == {"reminded": 0, "overdue": 0}
        assert mail.outbox == []
    # Wednesday, the working day before the target: one reminder to the security officers only.
    assert _remind_at(uk(2025, 8, 27, 6, 45), run) == {"reminded": 1, "overdue": 0}
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["officer@assyst.example", "second.officer@assyst.example"]
    assert late.reference in message.body and answered.reference not in message.body
    assert "hidden" not in message.body and "Researcher@Example.org" not in message.body
    # Again the same day, and on the due day itself: already reminded.
    assert _remind_at(uk(2025, 8, 27, 12, 0), run) == {"reminded": 0, "overdue": 0}
    assert _remind_at(uk(2025, 8, 28, 6, 45), run) == {"reminded": 0, "overdue": 0}
    # Friday: past the target, flagged once.
    assert _remind_at(uk(2025, 8, 29, 6, 45), run) == {"reminded": 0, "overdue": 1}
    assert "Past the target" in mail.outbox[0].body and late.reference in mail.outbox[0].body
    assert _remind_at(uk(2025, 9, 1, 6, 45), run) == {"reminded": 0, "overdue": 0}
    assert mail.outbox == []
    late.refresh_from_db()
    assert late.reminded_at == uk(2025, 8, 27, 6, 45) and late.overdue_notified_at == uk(2025, 8, 29, 6, 45)
    assert AuditEvent.objects.filter(action="disclosure.report_overdue", object_id=str(late.pk)).count() == 1


def test_reminder_mail_waits_for_commit(officer, django_capture_on_commit_callbacks):
    with time_machine.travel(uk(2027, 3, 1, 10, 0), tick=False):
        submit()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert _remind_at(uk(2027, 3, 3, 7, 0))["reminded"] == 1
    assert mail.outbox == [] and len(callbacks) == 1


def test_reminder_task_leaves_a_job_run(officer, django_capture_on_commit_callbacks):
    with time_machine.travel(uk(2027, 3, 1, 10, 0), tick=False):
        submit()
    with time_machine.travel(uk(2027, 3, 5, 6, 45), tick=False), django_capture_on_commit_callbacks(execute=True):
        remind_vulnerability_reports()
    run = JobRun.objects.filter(task=REMIND_TASK).get()
    assert run.outcome == JobRun.Outcome.SUCCESS and run.counts == {"reminded": 0, "overdue": 1}
    assert len(mail.outbox) == 1


def test_acknowledgement_task_tolerates_a_vanished_report():
    acknowledge_report.run(987654)
    assert mail.outbox == []


def test_beat_schedules_the_reminder_daily():
    from assyst.celery import BEAT_SCHEDULE

    entry = BEAT_SCHEDULE["remind-vulnerability-reports"]
    assert entry["task"] == REMIND_TASK


def test_report_event_str():
    report = submit()
    assert str(ReportEvent.objects.get(report=report)).startswith(report.reference)
