"""End to end in a real browser: a customer admin signs in to the portal, sees the
organisation's incidents (a general one and its own specific one, never another
organisation's), reads the notice with what to do, and requests the complete report,
which appears with its due date (C09, C15, C16, C17)."""

from __future__ import annotations

import pytest

from governance.tenancy.models import Membership
from incidents.models import ReportRequest
from tests.e2e.conftest import needs_chromium
from tests.e2e.docs_shots import doc_shot
from tests.e2e.test_support_access_browser import _customer_page
from tests.factories import MembershipFactory, OrganisationFactory
from tests.test_portal_incidents import make_incident, post_update

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.commitment("C09"),
    pytest.mark.commitment("C16"),
    pytest.mark.commitment("C17"),
    needs_chromium,
]


def test_customer_reads_incidents_and_requests_the_complete_report(browser, live_server):
    northwind = OrganisationFactory(
        name="Northwind Health", primary_contact_name="Nadia Okafor", primary_contact_email="nadia@northwind.example"
    )
    other = OrganisationFactory(name="Fabrikam Retail", primary_contact_email="fatima@fabrikam.example")
    general = make_incident(title="Slow dashboard loading")
    post_update(general, message="A database index was missing; a fix is rolling out.", actions="Nothing.")
    ours = make_incident(organisations=[northwind], title="Misdirected export files")
    post_update(ours, message="Two export files went to a wrong folder.", actions="Rotate your SFTP password.")
    theirs = make_incident(organisations=[other], title="Fabrikam-only incident")
    admin = MembershipFactory(organisation=northwind, role=Membership.Role.ADMIN).user

    page = _customer_page(browser, live_server, admin)
    doc_shot(page, "customer-portal-home")
    page.goto(f"{live_server.url}/portal/incidents/")
    body = page.content()
    assert "Slow dashboard loading" in body and "Misdirected export files" in body
    assert "Fabrikam-only incident" not in body
    assert page.goto(f"{live_server.url}/portal/incidents/{theirs.pk}/").status == 404

    page.goto(f"{live_server.url}/portal/incidents/{ours.pk}/")
    assert "Rotate your SFTP password." in page.content()
    page.click("button:has-text('Request the complete report')")
    page.wait_for_load_state()
    request = ReportRequest.objects.get(incident=ours, organisation=northwind, kind="report")
    assert request.due_target is not None
    assert f"Due by {request.due_target.day} {request.due_target:%b %Y}" in page.inner_text("body")
    doc_shot(page, "customer-portal")
