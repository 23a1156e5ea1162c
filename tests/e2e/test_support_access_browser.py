"""End to end in a real browser (Playwright driving Debian's Chromium): a support engineer
requests access, a security officer approves, the customer consents, the engineer opens the
data, the grant expires, and the customer reads the access log (C02-C04)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from django_otp.oath import totp

from governance.access.models import AccessLogEntry, SupportAccessRequest
from governance.access.roles import SECURITY_OFFICER, SUPPORT_ENGINEER
from governance.access.tasks import expire_support_access
from governance.tenancy.models import Membership
from tests.e2e.conftest import needs_chromium, shot
from tests.factories import PASSWORD, MembershipFactory, OrganisationFactory, StaffFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.commitment("C02"),
    pytest.mark.commitment("C03"),
    pytest.mark.commitment("C04"),
    needs_chromium,
]


def _code(user) -> str:
    device = user.totpdevice_set.get()
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def _staff_page(browser, live_server, user):
    page = browser.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", _code(user))
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    return page


def _customer_page(browser, live_server, user):
    page = browser.new_page()
    page.goto(f"{live_server.url}/portal/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/portal/")
    return page


def test_request_approval_consent_access_expiry_and_log(browser, live_server):
    org = OrganisationFactory(name="Northwind Health", primary_contact_email="nadia@northwind.example")
    engineer = StaffFactory(role=SUPPORT_ENGINEER, first_name="Sam", last_name="Patel")
    officer = StaffFactory(role=SECURITY_OFFICER)
    customer = MembershipFactory(organisation=org, role=Membership.Role.ADMIN).user

    # 1. The support engineer asks for two hours of access to people and profile data.
    sam = _staff_page(browser, live_server, engineer)
    sam.goto(f"{live_server.url}/admin/access/supportaccessrequest/add/")
    sam.select_option("#id_organisation", label=str(org))
    sam.select_option("#id_reason_type", "customer_support")
    sam.fill("#id_ticket_reference", "SUP-4711")
    sam.fill("#id_justification", "Invoices fail to export for two users; need to inspect their accounts.")
    sam.check("input[name=scope][value=people]")
    sam.check("input[name=scope][value=profile]")
    sam.fill("#id_duration_hours", "2")
    sam.check(f"input[name=named_staff][value='{engineer.pk}']")
    sam.click("input[name=_save]")
    sam.wait_for_load_state()
    request = SupportAccessRequest.objects.get(ticket_reference="SUP-4711")
    assert request.status == SupportAccessRequest.Status.PENDING
    shot(sam, "1-request-created")

    # Nothing is open yet.
    data_url = f"{live_server.url}/admin/tenancy/organisation/{org.pk}/customer-data/"
    assert sam.goto(data_url).status == 403

    # 2. A security officer gives the internal approval.
    so = _staff_page(browser, live_server, officer)
    so.goto(f"{live_server.url}/admin/access/supportaccessrequest/{request.pk}/decide/")
    so.check("input[name=decision][value=approve]")
    so.click("input[type=submit][value='Record the internal decision']")
    so.wait_for_load_state()
    request.refresh_from_db()
    assert request.internal_decision == "approved" and request.status == "pending"
    assert sam.goto(data_url).status == 403  # still no consent

    # 3. The customer admin sees both approvals in one place and consents.
    nadia = _customer_page(browser, live_server, customer)
    nadia.goto(f"{live_server.url}/portal/access/")
    nadia.click(f"a[href='/portal/access/requests/{request.pk}/']")
    assert "SUP-4711" in nadia.content() and "Invoices fail to export" in nadia.content()
    shot(nadia, "2-customer-sees-request")
    nadia.click("button[name=decision][value=approve]")
    nadia.wait_for_load_state()
    request.refresh_from_db()
    assert request.status == SupportAccessRequest.Status.APPROVED
    grant = request.grant

    # 4. The engineer opens the data; the read is logged.
    response = sam.goto(data_url)
    assert response.status == 200
    assert "nadia@northwind.example" in sam.content()
    shot(sam, "3-engineer-reads-data")
    assert AccessLogEntry.objects.filter(grant=grant, staff=engineer).count() >= 2

    # 5. At the end of the window access stops, before beat has even run.
    with time_machine.travel(grant.ends_at + timedelta(seconds=1), tick=True):
        assert sam.goto(data_url).status == 403
        expire_support_access.run()
    grant.refresh_from_db()
    assert grant.permissions_removed_at is not None and grant.state(timezone.now() + timedelta(hours=3)) == "ended"

    # 6. The customer reads who touched what, when and why.
    nadia.goto(f"{live_server.url}/portal/access/log/")
    body = nadia.content()
    assert "SUP-4711" in body and engineer.username in body
    shot(nadia, "4-customer-reads-log")
    csv = nadia.request.get(f"{live_server.url}/portal/access/log.csv")
    assert csv.ok and "SUP-4711" in csv.text()
