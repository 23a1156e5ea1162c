"""End to end in a real browser: a security officer and an incident manager sign in with
password and TOTP and see what needs them now, most urgent first, each item linking to
where it is acted on (C03, C12)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.access.models import AccessReviewCampaign
from governance.access.roles import INCIDENT_MANAGER, SECURITY_OFFICER
from governance.disclosure.models import VulnerabilityReport
from governance.retention.models import BackupPolicyCheck
from governance.risk.models import Risk
from tests.e2e.conftest import needs_chromium, shot
from tests.e2e.test_support_access_browser import _staff_page
from tests.factories import OrganisationFactory, StaffFactory, approved_grant, support_request
from tests.factories_risk import make_risk
from tests.test_dashboard import _breach

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.commitment("C03"),
    pytest.mark.commitment("C12"),
    needs_chromium,
]


def test_staff_sign_in_with_totp_and_act_from_the_dashboard(browser, live_server):
    now = timezone.now()
    northwind = OrganisationFactory(name="Northwind Health", slug="northwind")
    contoso = OrganisationFactory(name="Contoso Legal", slug="contoso", data_protection_role="controller")
    request = support_request(northwind, ticket_reference="SUP-4711")
    approved_grant(contoso, hours=2, ticket_reference="SUP-4702")
    breach = _breach(contoso, aware_hours_ago=50, now=now)
    AccessReviewCampaign.objects.create(
        period_start=now - timedelta(days=100), period_end=now - timedelta(days=8), due_at=now + timedelta(days=2)
    )
    BackupPolicyCheck.objects.create(
        checked_at=now - timedelta(hours=3), misses=["The last incremental backup finished more than 1 day(s) ago."],
        alerted=True,
    )  # fmt: skip

    VulnerabilityReport.objects.create(
        reference="VR-7Q2K", summary="Open redirect after sign-in", affected_product="Customer portal",
        steps_to_reproduce="s", impact="i", received_at=now - timedelta(days=4), first_response_due=now.date(),
    )  # fmt: skip
    for likelihood, impact in ((4, 4), (3, 4), (2, 3), (2, 2), (1, 3)):
        make_risk(inherent_likelihood=likelihood, inherent_impact=impact, residual_likelihood=max(1, likelihood - 2),
                  residual_impact=impact)  # fmt: skip
    Risk.objects.filter(pk=Risk.objects.order_by("pk").first().pk).update(next_review_on=now.date() - timedelta(days=3))

    officer = StaffFactory(role=SECURITY_OFFICER, username="sofia")
    page = _staff_page(browser, live_server, officer)  # password + TOTP code on the login form
    dashboard = page.locator("#dashboard")
    text = dashboard.inner_text()
    assert "Needs a person now" in text
    assert "SUP-4711" in text and "The last incremental backup" in text and "Next clean-up" in text
    assert "VR-7Q2K" in text and "Review risk" in text
    assert page.locator("#dashboard .risk-heatmap").count() == 2
    assert "Breach notice" not in text  # incident managers act on breach notices
    shot(page, "dashboard-security-officer")

    # Each item links to the page where it is acted on.
    page.click(f"#dashboard a[href='/admin/access/supportaccessrequest/{request.pk}/decide/']")
    page.wait_for_url(f"{live_server.url}/admin/access/supportaccessrequest/{request.pk}/decide/")
    assert "SUP-4711" in page.content()

    manager = StaffFactory(role=INCIDENT_MANAGER)
    page = _staff_page(browser, live_server, manager)
    text = page.locator("#dashboard").inner_text()
    assert "Breach notice" in text and "Contoso Legal" in text and "left" in text
    assert "SUP-4711" not in text
    page.click(f"#dashboard a[href='/admin/incidents/incident/{breach.pk}/change/']")
    page.wait_for_url(f"{live_server.url}/admin/incidents/incident/{breach.pk}/change/")
