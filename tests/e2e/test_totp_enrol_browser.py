"""End to end in a real browser: an organisation requires two-factor; a new user signs in, is
led through enrolment before anything else, scans (reads) the secret, confirms a code,
keeps the recovery codes, and signs in next time with one of them (C28)."""

from __future__ import annotations

import base64

import pytest
from django_otp.oath import totp

from governance.audit.models import AuditEvent
from governance.orgsecurity.models import OrganisationSecurityPolicy
from governance.tenancy.models import Membership
from tests.e2e.conftest import needs_chromium, shot
from tests.factories import PASSWORD, MembershipFactory, OrganisationFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.commitment("C28"), needs_chromium]


def _sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/portal/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_new_user_enrols_totp_then_signs_in_with_a_recovery_code(browser, live_server):
    org = OrganisationFactory(name="Contoso Pharma")
    OrganisationSecurityPolicy.objects.create(organisation=org, two_factor="required")
    user = MembershipFactory(organisation=org, role=Membership.Role.VIEWER, user__username="new.hire").user
    base = live_server.url

    page = browser.new_page()
    _sign_in(page, base, user.username)
    # Led to enrolment at once; nothing else opens first.
    assert page.url.startswith(f"{base}/portal/security/two-factor/")
    assert "requires two-factor sign-in" in page.content()
    page.goto(f"{base}/portal/incidents/")
    assert page.url.startswith(f"{base}/portal/security/two-factor/?next=")
    assert page.locator("#totp-qr").is_visible()
    shot(page, "totp-1-enrolment")

    # What an authenticator app does with the displayed secret.
    secret = page.inner_text("#totp-secret").strip()
    code = f"{totp(base64.b32decode(secret)):06d}"
    page.fill("#id_token", code)
    page.click("main button[type=submit]")  # the header's sign-out button is a submit button too
    page.wait_for_load_state()
    codes = [c.strip() for c in page.locator("#recovery-codes code").all_inner_texts()]
    assert len(codes) == 10
    shot(page, "totp-2-recovery-codes")
    page.click("#continue")
    page.wait_for_load_state()
    assert page.url == f"{base}/portal/incidents/"  # back where the user wanted to go
    page.goto(f"{base}/portal/")
    assert "Contoso Pharma" in page.content()

    # Next time: password, then the second factor (here a recovery code; it works once).
    page.click("text=Sign out")
    page.wait_for_load_state()
    _sign_in(page, base, user.username)
    assert page.url.startswith(f"{base}/portal/security/two-factor/check/")
    page.fill("#id_token", codes[0])
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    assert page.url == f"{base}/portal/"
    shot(page, "totp-3-signed-in")

    actions = set(AuditEvent.objects.filter(organisation_id=org.pk).values_list("action", flat=True))
    assert {"orgsecurity.login", "orgsecurity.two_factor_enrolled", "orgsecurity.two_factor_verified"} <= actions
