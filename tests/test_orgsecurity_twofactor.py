"""Organisation two-factor (C28): required or optional, TOTP with recovery codes, enforced on
every portal path; a user without a device is led through enrolment first."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.audit.models import AuditEvent
from governance.tenancy.models import Membership
from tests.factories import PASSWORD, MembershipFactory
from tests.test_orgsecurity import portal_urls, set_policy
from tests.test_portal_incidents import _evidence_root  # noqa: F401 (autouse: evidence files in tmp_path)

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C28")]

TWO_FACTOR_PAGES = {"portal:two_factor_setup", "portal:two_factor_verify"}


def code_for(device: TOTPDevice, offset: int = 0) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=offset):06d}"


def sign_in(user, client: Client | None = None):
    client = client or Client()
    response = client.post(reverse("portal:login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    return client


def enrol(client: Client) -> tuple[TOTPDevice, list[str]]:
    page = client.get(reverse("portal:two_factor_setup"))
    assert page.status_code == 200
    secret = re.search(r'id="totp-secret">([A-Z2-7=]+)<', page.content.decode()).group(1)
    device = TOTPDevice.objects.get(confirmed=False, user_id=client.session["_auth_user_id"])
    assert base64.b32decode(secret) == device.bin_key  # the displayed secret is the device's key
    response = client.post(reverse("portal:two_factor_setup"), {"token": code_for(device)})
    assert response.status_code == 200
    codes = re.findall(r"<li><code>([0-9a-f]{5}-[0-9a-f]{5})</code></li>", response.content.decode())
    device.refresh_from_db()
    return device, codes


def confirmed_device(user) -> TOTPDevice:
    device = TOTPDevice.objects.create(user=user, name="Portal authenticator", confirmed=True)
    return device


def test_required_two_factor_leads_a_new_user_to_enrolment_on_every_path(org_a, org_b, customer_a, customer_b):
    set_policy(org_a, two_factor="required")
    client = sign_in(customer_a)
    setup = reverse("portal:two_factor_setup")
    for name, url in portal_urls(org_a):
        if name in TWO_FACTOR_PAGES:
            continue
        response = client.get(url)
        assert response.status_code == 302, name
        target = urlsplit(response["Location"])
        assert target.path == setup and parse_qs(target.query)["next"] == [url], name
        # Writes are refused the same way, before the view runs.
        assert client.post(url, {}).status_code == 302, name
    assert client.get(setup).status_code == 200

    # Organisation B leaves it optional: its user works without a device.
    other = sign_in(customer_b)
    for name, url in portal_urls(org_b):
        response = other.get(url)
        assert response.status_code == 200, name


def test_enrolment_confirms_the_device_shows_recovery_codes_once_and_unlocks_the_portal(org_a, customer_a):
    set_policy(org_a, two_factor="required")
    client = sign_in(customer_a)
    assert client.get(reverse("portal:member_list")).status_code == 302
    # A wrong code is refused and recorded.
    client.get(reverse("portal:two_factor_setup"))
    wrong = client.post(reverse("portal:two_factor_setup"), {"token": "000000"})
    assert wrong.status_code == 400 and "That code is not right" in wrong.content.decode()
    assert AuditEvent.objects.filter(action="orgsecurity.two_factor_failed", organisation_id=org_a.pk).exists()

    with time_machine.travel(timezone.now() + timedelta(seconds=5)):  # django-otp throttles after a failure
        device, codes = enrol(client)
    assert device.confirmed and len(codes) == 10 and len(set(codes)) == 10
    assert StaticDevice.objects.get(user=customer_a).token_set.count() == 10
    for name, url in portal_urls(org_a):
        assert client.get(url).status_code in (200, 302), name
    assert client.get(reverse("portal:member_list")).status_code == 200
    # The codes are not shown again: the page now offers to replace them.
    again = client.get(reverse("portal:two_factor_setup")).content.decode()
    assert codes[0] not in again and "Replace my recovery codes" in again
    event = AuditEvent.objects.get(action="orgsecurity.two_factor_enrolled")
    assert event.organisation_id == org_a.pk and event.actor_id == customer_a.pk


def test_next_sign_in_asks_for_the_code_on_every_path(org_a, customer_a):
    set_policy(org_a, two_factor="required")
    device = confirmed_device(customer_a)
    client = sign_in(customer_a)
    verify = reverse("portal:two_factor_verify")
    for name, url in portal_urls(org_a):
        if name in TWO_FACTOR_PAGES:
            continue
        response = client.get(url)
        assert response.status_code == 302 and urlsplit(response["Location"]).path == verify, name
    # Holding only the password, nobody can swap in an authenticator of their own.
    response = client.get(reverse("portal:two_factor_setup"))
    assert response.status_code == 302 and urlsplit(response["Location"]).path == verify
    assert TOTPDevice.objects.filter(user=customer_a).count() == 1

    response = client.post(verify, {"token": code_for(device), "next": reverse("portal:member_list")})
    assert response.status_code == 302 and response["Location"] == reverse("portal:member_list")
    assert client.get(reverse("portal:member_list")).status_code == 200
    assert AuditEvent.objects.filter(action="orgsecurity.two_factor_verified", organisation_id=org_a.pk).exists()


def test_verify_refuses_wrong_codes_and_foreign_next_urls(org_a, customer_a):
    set_policy(org_a, two_factor="required")
    device = confirmed_device(customer_a)
    client = sign_in(customer_a)
    verify = reverse("portal:two_factor_verify")
    response = client.post(verify, {"token": "123456"})
    assert response.status_code == 400
    assert client.get(reverse("portal:home")).status_code == 302
    device.refresh_from_db()
    device.throttling_failure_count = 0
    device.throttling_failure_timestamp = None
    device.save()
    response = client.post(verify, {"token": code_for(device), "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == reverse("portal:home")


def test_a_recovery_code_works_once(org_a, customer_a):
    set_policy(org_a, two_factor="required")
    client = sign_in(customer_a)
    _device, codes = enrol(client)
    client.post(reverse("portal:logout"))

    client = sign_in(customer_a)
    response = client.post(reverse("portal:two_factor_verify"), {"token": codes[3].upper()})
    assert response.status_code == 302
    assert client.get(reverse("portal:home")).status_code == 200
    client.post(reverse("portal:logout"))

    client = sign_in(customer_a)
    assert client.post(reverse("portal:two_factor_verify"), {"token": codes[3]}).status_code == 400
    assert client.get(reverse("portal:home")).status_code == 302


def test_optional_two_factor_still_applies_to_whoever_set_it_up(org_a, customer_a):
    colleague = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    device = confirmed_device(customer_a)
    client = sign_in(customer_a)
    assert client.get(reverse("portal:home")).status_code == 302  # to the code check
    client.post(reverse("portal:two_factor_verify"), {"token": code_for(device)})
    assert client.get(reverse("portal:home")).status_code == 200
    # Colleagues without a device are not asked.
    assert sign_in(colleague).get(reverse("portal:home")).status_code == 200


def test_turning_required_on_applies_to_sessions_already_open(org_a, customer_a):
    colleague = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    client = sign_in(colleague)
    assert client.get(reverse("portal:home")).status_code == 200
    set_policy(org_a, two_factor="required")
    response = client.get(reverse("portal:home"))
    assert response.status_code == 302 and reverse("portal:two_factor_setup") in response["Location"]


def test_admin_resets_a_members_two_factor(org_a, org_b, customer_a):
    member = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER)
    confirmed_device(member.user)
    admin = sign_in(customer_a)
    url = reverse("portal:member_security", kwargs={"pk": member.pk})
    assert admin.post(url, {"action": "reset_two_factor"}).status_code == 302
    assert not TOTPDevice.objects.filter(user=member.user).exists()
    event = AuditEvent.objects.get(action="orgsecurity.two_factor_reset")
    assert event.organisation_id == org_a.pk
    # Not on oneself, and never across organisations.
    own = reverse("portal:member_security", kwargs={"pk": customer_a.membership.pk})
    confirmed_device(customer_a)
    assert admin.post(own, {"action": "reset_two_factor"}).status_code == 400
    assert TOTPDevice.objects.filter(user=customer_a).exists()
    foreign = MembershipFactory(organisation=org_b)
    confirmed_device(foreign.user)
    response = admin.post(reverse("portal:member_security", kwargs={"pk": foreign.pk}), {"action": "reset_two_factor"})
    assert response.status_code == 404
    assert TOTPDevice.objects.filter(user=foreign.user).exists()


def test_setting_up_two_factor_signs_out_the_users_other_sessions(org_a, customer_a):
    other_browser = sign_in(customer_a)
    assert other_browser.get(reverse("portal:home")).status_code == 200
    client = sign_in(customer_a)
    enrol(client)
    assert client.get(reverse("portal:home")).status_code == 200  # the enrolling session stays
    response = other_browser.get(reverse("portal:home"))  # the password-only session ends
    assert response.status_code == 302 and response["Location"].startswith(reverse("portal:login"))
    assert AuditEvent.objects.get(action="orgsecurity.two_factor_enrolled").data["other_sessions_signed_out"]
