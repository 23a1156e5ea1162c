"""End to end in a real browser: an auditor signs in with TOTP, reads the trust report with
a deliberately missed breach-notice deadline shown as failing, picks a period (a bad one is
refused with a message), downloads the JSON evidence (audited); the public trust page shows
what the security officer published (C12, C25)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from governance.access.roles import AUDITOR, SECURITY_OFFICER
from governance.audit.models import AuditEvent
from governance.trust import public
from governance.trust.services import published_commitment_add
from incidents.models import AffectedOrganisation, Incident
from tests.e2e.conftest import needs_chromium, shot
from tests.e2e.docs_shots import doc_shot
from tests.e2e.test_support_access_browser import _staff_page
from tests.factories import OrganisationFactory, StaffFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.commitment("C12"),
    pytest.mark.commitment("C25"),
    needs_chromium,
]


def _notices(org):
    """Three controller notices: two on time, one sent 80 h after awareness (a miss)."""
    now = timezone.now()
    author = StaffFactory()
    for days, hours in ((40, 9), (25, 14), (6, 80)):
        aware = now - timedelta(days=days)
        incident = Incident.objects.create(
            title=f"Breach {days} days ago", description="d", kind="specific", detected_at=aware, aware_at=aware,
            personal_data_breach=True, created_by=author,
        )  # fmt: skip
        AffectedOrganisation.objects.create(
            incident=incident, organisation=org, role="controller", deadline_at=aware + timedelta(hours=72),
            notified_at=aware + timedelta(hours=hours),
        )  # fmt: skip
    return incident


def test_auditor_reads_and_downloads_the_trust_report_and_the_public_page_shows_the_published_part(
    browser, live_server
):
    late = _notices(OrganisationFactory(name="Contoso Legal", data_protection_role="controller"))
    auditor = StaffFactory(role=AUDITOR)
    page = _staff_page(browser, live_server, auditor)
    page.goto(f"{live_server.url}/admin/trust/report/")
    c12 = page.locator("tr#C12").inner_text()
    assert "failing" in c12 and "3 controller notices in the period, 2 within 72 h" in c12
    assert page.locator("tr#C02").count() == 1 and page.locator("tr#C28").count() == 1
    shot(page, "trust-report-missed-deadline")
    page.click(f"tr#C12 a[href='/admin/incidents/incident/{late.pk}/change/']")
    page.wait_for_url(f"{live_server.url}/admin/incidents/incident/{late.pk}/change/")

    # A period that ends before it starts is refused with a message, not an error page.
    page.goto(f"{live_server.url}/admin/trust/report/")
    page.fill("#id_since", "2026-10-01")
    page.fill("#id_until", "2026-09-01")
    page.click("input[type=submit][value=Show]")
    assert "The start must be on or before the end." in page.locator(".trust-errors").inner_text()

    # The last 30 days only: the late notice (6 days ago) is still there.
    today = timezone.now().date()
    page.fill("#id_since", f"{today - timedelta(days=30):%Y-%m-%d}")
    page.fill("#id_until", f"{today:%Y-%m-%d}")
    page.click("input[type=submit][value=Show]")
    assert "2 controller notices in the period, 1 within 72 h" in page.locator("tr#C12").inner_text()
    with page.expect_download() as download_info:
        page.click("a:has-text('Download JSON')")
    data = json.loads(open(download_info.value.path()).read())
    c12 = next(c for c in data["commitments"] if c["commitment"] == "C12")
    assert c12["status"] == "failing" and c12["figures"]["sent"] == 2
    assert AuditEvent.objects.filter(action="trust.report_downloaded", actor=auditor).count() == 1

    # The security officer publishes C12; the public page shows it, without names.
    published_commitment_add(commitment_id="C12", acting_user=StaffFactory(role=SECURITY_OFFICER))
    public.invalidate()
    visitor = browser.new_page()
    visitor.goto(f"{live_server.url}/trust/")
    row = visitor.locator("tr#C12").inner_text()
    assert "3 controller notices" in row and "Contoso" not in visitor.content()
    assert visitor.locator("tr#C05").count() == 0
    shot(visitor, "trust-public-c12")


@pytest.mark.commitment("C13")
def test_demo_data_renders_real_figures_on_the_dashboard_and_the_trust_report(browser, live_server, settings):
    """`seed_demo`'s history in the browser (and the README's screenshots with DOCS_SCREENSHOTS=1)."""
    from io import StringIO

    from django.core.management import call_command

    from governance.access.models import User
    from tests.factories import PASSWORD

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]  # as in production
    settings.DEBUG = True  # seed_demo refuses to run otherwise
    call_command("seed_demo", stdout=StringIO())
    settings.DEBUG = False
    for user in User.objects.filter(username__in=["sofia", "aud", "ines"]):
        user.set_password(PASSWORD)  # the factories' password, for _staff_page
        user.save()
    public.invalidate()

    page = _staff_page(browser, live_server, User.objects.get(username="aud"))
    page.goto(f"{live_server.url}/admin/trust/report/")
    assert "4 controller notices in the period, 3 within 72 h" in page.locator("tr#C12").inner_text()
    c13 = page.locator("tr#C13")
    assert "failing" in c13.inner_text() and "notice to Fabrikam Retail" in c13.inner_text()
    assert "last access review finished" in page.locator("tr#C05").inner_text()
    doc_shot(page, "trust-report")

    page = _staff_page(browser, live_server, User.objects.get(username="sofia"))
    text = page.locator("#dashboard").inner_text()
    assert "SUP-4711" in text and "Grant #" in text
    doc_shot(page, "dashboard", "#dashboard")
    page = _staff_page(browser, live_server, User.objects.get(username="ines"))
    assert "Notify Contoso Legal" in page.locator("#dashboard").inner_text()

    visitor = browser.new_page()
    visitor.goto(f"{live_server.url}/trust/")
    assert [visitor.locator(f"tr#{cid}").count() for cid in ("C08", "C12", "C14", "C16", "C24", "C13")] == [1] * 5 + [0]
    doc_shot(visitor, "trust-public")
