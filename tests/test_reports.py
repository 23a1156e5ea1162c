"""RCA (C20) and complete-report requests (C16): sanitised Markdown, a real PDF, delivery
tracked and emailed; England working-day deadlines, reminders and overdue flags."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import zlib
from datetime import date, datetime
from zoneinfo import ZoneInfo

import holidays
import pytest
import time_machine
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from governance.core.models import JobRun
from governance.tenancy.models import Membership
from incidents import reports
from incidents.models import ReportRequest
from incidents.tasks_reports import REMIND_TASK, remind_report_requests
from incidents.workdays import add_working_days, report_due_dates
from tests.factories import MembershipFactory, StaffFactory
from tests.helpers import otp_client
from tests.test_portal_incidents import make_incident, manager

pytestmark = pytest.mark.django_db
UK = ZoneInfo("Europe/London")

RCA_TEXT = """# What happened

A **configuration change** disabled TLS checks on the mail relay.

## Why

- The review missed the flag
- Monitoring did not cover it

1. Revert the change
2. Add a check

[runbook](https://example.com/runbook)
"""


def uk(*args) -> datetime:
    return datetime(*args, tzinfo=UK)


def pdf_text(pdf: bytes) -> str:
    """The text shown by a PDF: pdftotext if installed, else the page streams' strings."""
    if shutil.which("pdftotext"):
        return subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    chunks = []
    for stream in re.findall(rb"stream\r?\n(.*?)\s*endstream", pdf, re.S):
        data = stream.strip()
        if data.endswith(b"~>"):  # reportlab's ASCII85 layer
            data = base64.a85decode(data.removesuffix(b"~>"))
        try:
            data = zlib.decompress(data)
        except zlib.error:
            pass
        for literal in re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", data):
            chunks.append(re.sub(rb"\\(.)", rb"\1", literal).decode("latin-1"))
    return "\n".join(chunks)


@pytest.fixture
def staff():
    return manager()


# --- C20: RCA ------------------------------------------------------------------------------


@pytest.mark.commitment("C20")
def test_markdown_is_rendered_and_sanitised(staff):
    hostile = (
        "# Title\n\n<script>alert('x')</script>\n\n[click](javascript:alert(1))\n\n"
        '<img src="x" onerror="alert(1)">\n\n<a href="https://ok.example" onclick="steal()">ok</a>\n\n'
        '<iframe src="https://evil.example"></iframe>\n\n<p style="background:url(javascript:x)">styled</p>'
    )
    rca = reports.rca_save(incident=make_incident(), acting_user=staff, body_markdown=hostile)
    html = reports.rca_html(rca)
    assert "<h1>Title</h1>" in html
    lowered = html.lower()
    for bad in ("<script", "alert(", "javascript:", "onerror", "onclick", "<iframe", "style=", "<img"):
        assert bad not in lowered, bad
    assert 'href="https://ok.example"' in html
    assert "<strong>" in reports.markdown_to_safe_html("**bold**")


@pytest.mark.commitment("C20")
def test_pdf_is_valid_and_contains_the_text(staff):
    incident = make_incident(title="Mail relay accepted invalid certificates")
    rca = reports.rca_save(incident=incident, acting_user=staff, body_markdown=RCA_TEXT)
    pdf = reports.rca_pdf(rca)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    text = pdf_text(pdf)
    for expected in (
        "Root cause analysis",
        "Mail relay accepted invalid certificates",
        "What happened",
        "Why",
        "configuration change",
        "The review missed the flag",
        "Revert the change",
        "https://example.com/runbook",
        "Severity",
    ):
        assert expected in text, expected


@pytest.mark.commitment("C20")
def test_request_publish_delivers_and_emails(client, customer_a, org_a, staff, django_capture_on_commit_callbacks):
    incident = make_incident(organisations=[org_a])
    url = reverse("portal:incident_detail", args=[incident.pk])
    pdf_url = reverse("portal:incident_rca_pdf", args=[incident.pk])
    client.force_login(customer_a)
    assert client.get(pdf_url).status_code == 404  # nothing published yet
    assert client.post(url, {"kind": "rca"}).status_code == 302
    request = ReportRequest.objects.get(incident=incident, kind="rca")
    assert (request.organisation, request.requested_by, request.delivered_at) == (org_a, customer_a, None)
    again = client.post(url, {"kind": "rca"})
    assert again.status_code == 400 and "already requested" in again.content.decode()

    rca = reports.rca_save(incident=incident, acting_user=staff, body_markdown=RCA_TEXT)
    assert client.get(pdf_url).status_code == 404  # a draft is not shown
    assert "configuration change" not in client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        reports.rca_publish(rca=rca, acting_user=staff)
    request.refresh_from_db()
    assert request.delivered_at is not None and request.delivered_by == staff
    assert [m.to for m in mail.outbox] == [[customer_a.email]]
    assert f"/portal/incidents/{incident.pk}/" in mail.outbox[0].body
    with pytest.raises(ValidationError):
        reports.rca_publish(rca=rca, acting_user=staff)

    body = client.get(url).content.decode()
    assert "<strong>configuration change</strong>" in body and pdf_url in body
    response = client.get(pdf_url)
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")
    assert response["Content-Disposition"].startswith("attachment;")
    with pytest.raises(ValidationError, match="already published"):
        reports.report_request_create(incident=incident, organisation=org_a, acting_user=customer_a, kind="rca")


@pytest.mark.commitment("C20")
def test_rca_needs_permission(staff):
    incident = make_incident()
    with pytest.raises(PermissionDenied):
        reports.rca_save(incident=incident, acting_user=StaffFactory(), body_markdown="x")
    rca = reports.rca_save(incident=incident, acting_user=staff, body_markdown="x")
    with pytest.raises(PermissionDenied):
        reports.rca_publish(rca=rca, acting_user=StaffFactory())
    with pytest.raises(ValidationError):
        reports.rca_save(incident=incident, acting_user=staff, body_markdown="   ")


@pytest.mark.commitment("C20")
def test_admin_rca_preview_pdf_and_publish(staff, django_capture_on_commit_callbacks):
    incident = make_incident()
    client = otp_client(staff)
    response = client.post(
        reverse("admin:incidents_rootcauseanalysis_add"),
        {"incident": incident.pk, "body_markdown": "# Cause\n\n<script>x()</script>Bug."},
    )
    assert response.status_code == 302
    rca = incident.rca
    change = client.get(reverse("admin:incidents_rootcauseanalysis_change", args=[rca.pk])).content.decode()
    preview = change[change.index('class="rca-preview"') :]
    assert "<h1>Cause</h1>" in preview and "x()" not in preview[: preview.index("</div>")]
    pdf = client.get(reverse("admin:incidents_rca_pdf", args=[rca.pk]))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:incidents_rootcauseanalysis_changelist"),
            {"action": "publish_selected", "_selected_action": [rca.pk]},
        )
    rca.refresh_from_db()
    assert rca.published_at is not None


# --- C16: working days ---------------------------------------------------------------------


@pytest.mark.commitment("C16")
def test_christmas_request_skips_the_bank_holidays(client, customer_a, org_a):
    eng = holidays.country_holidays("GB", subdiv="ENG", years=[2026, 2027])
    assert date(2026, 12, 25) in eng and date(2026, 12, 26) in eng
    assert date(2026, 12, 28) in eng  # Boxing Day falls on a Saturday: substitute Monday
    assert date(2026, 12, 27).weekday() == 6 and date(2027, 1, 1) in eng
    incident = make_incident(organisations=[org_a])
    with time_machine.travel(uk(2026, 12, 24, 10, 0), tick=False):  # Thursday morning
        client.force_login(customer_a)
        assert client.post(reverse("portal:incident_detail", args=[incident.pk]), {"kind": "report"}).status_code == 302
        body = client.get(reverse("portal:incident_detail", args=[incident.pk])).content.decode()
    request = ReportRequest.objects.get(kind="report")
    # 29, 30, 31 Dec, (1 Jan holiday), 4, 5 Jan = 5; 6, 7 Jan = 7.
    assert (request.due_target, request.due_limit) == (date(2027, 1, 5), date(2027, 1, 7))
    assert "5 Jan 2027" in body and "7 Jan 2027" in body


@pytest.mark.commitment("C16")
@pytest.mark.parametrize(
    ("requested", "target", "limit"),
    [
        (uk(2026, 12, 23, 16, 59), date(2027, 1, 4), date(2027, 1, 6)),  # Wednesday before 17:00: counts that day
        (uk(2026, 12, 23, 17, 0), date(2027, 1, 5), date(2027, 1, 7)),  # after 17:00: from Thursday
        (uk(2026, 12, 25, 9, 0), date(2027, 1, 6), date(2027, 1, 8)),  # a bank holiday: from Tuesday 29th
        (uk(2026, 12, 27, 9, 0), date(2027, 1, 6), date(2027, 1, 8)),  # a Sunday
        (datetime(2027, 6, 1, 16, 30, tzinfo=ZoneInfo("UTC")), date(2027, 6, 9), date(2027, 6, 11)),  # 17:30 BST
    ],
)
def test_cut_off_and_non_working_days(requested, target, limit):
    assert report_due_dates(requested) == (target, limit)


@pytest.mark.commitment("C16")
def test_easter_and_late_summer_need_the_england_subdivision():
    uk_wide = holidays.country_holidays("GB", years=[2027])
    eng = holidays.country_holidays("GB", subdiv="ENG", years=[2027])
    for day in (date(2027, 3, 29), date(2027, 8, 30)):  # Easter Monday, late summer bank holiday
        assert day in eng and day not in uk_wide
    assert date(2027, 3, 26) in eng  # Good Friday

    def naive(start: date, n: int) -> date:  # what forgetting subdiv="ENG" would give
        current = start
        while n:
            current = date.fromordinal(current.toordinal() + 1)
            n -= current.weekday() < 5 and current not in uk_wide
        return current

    # Thursday before Easter: Fri 26 (Good Friday), weekend, Mon 29 (Easter Monday) skipped.
    assert report_due_dates(uk(2027, 3, 25, 10)) == (date(2027, 4, 5), date(2027, 4, 7))
    assert naive(date(2027, 3, 25), 5) == date(2027, 4, 2)  # a day early without subdiv
    # Thursday before the late summer bank holiday: Mon 30 Aug skipped.
    assert report_due_dates(uk(2027, 8, 26, 10)) == (date(2027, 9, 3), date(2027, 9, 7))
    assert naive(date(2027, 8, 26), 5) == date(2027, 9, 2)
    assert add_working_days(date(2027, 3, 25), 1) == date(2027, 3, 30)


# --- C16: requests, reminders, overdue -----------------------------------------------------


@pytest.mark.commitment("C16")
def test_who_may_request(org_a, org_b, customer_a, customer_b):
    viewer = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    specific_b = make_incident(organisations=[org_b])
    with pytest.raises(PermissionDenied):
        reports.report_request_create(incident=specific_b, organisation=org_a, acting_user=customer_a, kind="report")
    with pytest.raises(PermissionDenied):  # acting for an organisation one does not belong to
        reports.report_request_create(incident=specific_b, organisation=org_b, acting_user=customer_a, kind="report")
    with pytest.raises(PermissionDenied):
        reports.report_request_create(incident=specific_b, organisation=org_b, acting_user=manager(), kind="report")
    general = make_incident()
    assert reports.report_request_create(incident=general, organisation=org_a, acting_user=viewer, kind="report")
    assert reports.report_request_create(incident=general, organisation=org_b, acting_user=customer_b, kind="report")
    with pytest.raises(ValidationError):
        reports.report_request_create(incident=general, organisation=org_a, acting_user=customer_a, kind="report")
    with pytest.raises(ValidationError):
        reports.report_request_create(incident=general, organisation=org_a, acting_user=customer_a, kind="bogus")


@pytest.mark.commitment("C16")
def test_bad_portal_input_is_a_clear_400(client, customer_a, org_a):
    incident = make_incident(organisations=[org_a])
    client.force_login(customer_a)
    response = client.post(reverse("portal:incident_detail", args=[incident.pk]), {"kind": "everything"})
    assert response.status_code == 400
    assert "Choose the complete report or the root cause analysis." in response.content.decode()
    assert not ReportRequest.objects.exists()


def _remind_at(moment: datetime) -> dict[str, int]:
    with time_machine.travel(moment, tick=False):
        return reports.report_requests_remind(now=moment)


@pytest.mark.commitment("C16")
def test_reminder_once_before_target_and_overdue_once_after_limit(
    org_a, customer_a, django_capture_on_commit_callbacks
):
    im = manager()
    other_manager = manager()  # in the group, but the incident has its own manager
    incident = make_incident(organisations=[org_a], incident_manager=im)
    with time_machine.travel(uk(2026, 12, 24, 10), tick=False):
        request = reports.report_request_create(
            incident=incident, organisation=org_a, acting_user=customer_a, kind="report"
        )
    with django_capture_on_commit_callbacks(execute=True):
        assert _remind_at(uk(2027, 1, 1, 6, 30)) == {"reminded": 0, "overdue": 0}  # bank holiday, too early
        assert _remind_at(uk(2027, 1, 4, 6, 30)) == {"reminded": 1, "overdue": 0}  # working day before 5 Jan
        assert _remind_at(uk(2027, 1, 4, 18, 0)) == {"reminded": 0, "overdue": 0}
        assert _remind_at(uk(2027, 1, 7, 6, 30)) == {"reminded": 0, "overdue": 0}  # limit day: not yet overdue
        assert _remind_at(uk(2027, 1, 8, 6, 30)) == {"reminded": 0, "overdue": 1}
        assert _remind_at(uk(2027, 1, 11, 6, 30)) == {"reminded": 0, "overdue": 0}
    assert [m.to for m in mail.outbox] == [[im.email], [im.email]]
    assert "Due 2027-01-05" in mail.outbox[0].subject
    assert "Overdue" in mail.outbox[1].subject and other_manager.email not in str(mail.outbox[1].to)
    request.refresh_from_db()
    assert reports.report_request_is_overdue(request, uk(2027, 1, 8, 9))
    assert not reports.report_request_is_overdue(request, uk(2027, 1, 7, 23))


@pytest.mark.commitment("C16")
def test_without_a_manager_the_group_is_told_and_delivered_requests_are_quiet(
    org_a, customer_a, django_capture_on_commit_callbacks
):
    group = [manager(), manager()]
    incident = make_incident(organisations=[org_a])
    with time_machine.travel(uk(2027, 3, 25, 10), tick=False):
        request = reports.report_request_create(
            incident=incident, organisation=org_a, acting_user=customer_a, kind="report"
        )
    with django_capture_on_commit_callbacks(execute=True), time_machine.travel(uk(2027, 4, 2, 6, 30), tick=False):
        remind_report_requests()  # the beat task, on Friday 2 April: the working day before Monday 5th
    run = JobRun.objects.get(task=REMIND_TASK)
    assert run.outcome == JobRun.Outcome.SUCCESS and run.counts == {"reminded": 1, "overdue": 0}
    assert {u.email for u in group} <= set(mail.outbox[0].to)

    mail.outbox.clear()
    with pytest.raises(PermissionDenied):
        reports.report_request_deliver(request=request, acting_user=StaffFactory())
    with django_capture_on_commit_callbacks(execute=True):
        reports.report_request_deliver(request=request, acting_user=manager())
    assert [m.to for m in mail.outbox] == [[customer_a.email]]
    with pytest.raises(ValidationError):
        reports.report_request_deliver(request=request, acting_user=manager())
    assert _remind_at(uk(2027, 4, 20, 6, 30)) == {"reminded": 0, "overdue": 0}


@pytest.mark.commitment("C16")
def test_admin_changelist_and_deliver_action(org_a, customer_a):
    staff = manager()
    incident = make_incident(organisations=[org_a])
    with time_machine.travel(uk(2026, 12, 24, 10), tick=False):
        request = reports.report_request_create(
            incident=incident, organisation=org_a, acting_user=customer_a, kind="report"
        )
    client = otp_client(staff)
    changelist = reverse("admin:incidents_reportrequest_changelist")
    body = client.get(changelist).content.decode()
    assert 'field-due_target nowrap">5 Jan 2027' in body and 'field-due_limit nowrap">7 Jan 2027' in body
    assert f"/{request.pk}/change/" not in client.get(changelist + "?overdue=yes").content.decode()
    with time_machine.travel(uk(2027, 1, 8, 9), tick=False):
        late_client = otp_client(staff)
        assert f"/{request.pk}/change/" in late_client.get(changelist + "?overdue=yes").content.decode()
    client.post(changelist, {"action": "deliver_selected", "_selected_action": [request.pk]})
    request.refresh_from_db()
    assert request.delivered_by == staff
