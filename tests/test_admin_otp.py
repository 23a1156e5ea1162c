"""The staff admin needs a password and a TOTP token; customers never get in (C25).

OTPAdminSite uses django-otp's OTPAdminAuthenticationForm (fields username, password,
otp_device, otp_token) and lets a user in only when `request.user.is_verified()`.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import PASSWORD, MembershipFactory, StaffFactory

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C25")]

ADMIN = "/admin/"
ADMIN_LOGIN = "/admin/login/"


def _token(device: TOTPDevice, drift: int = 0) -> str:
    value = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift + drift)
    return f"{value:0{device.digits}d}"


def _wrong_token(device: TOTPDevice) -> str:
    accepted = {_token(device, d) for d in range(-device.tolerance, device.tolerance + 1)}
    return next(t for t in (f"{n:06d}" for n in range(0, 1_000_000, 7919)) if t not in accepted)


def _admin_login(client: Client, user, *, device: TOTPDevice | None = None, token: str = ""):
    data = {"username": user.username, "password": PASSWORD, "otp_token": token, "next": ADMIN}
    if device is not None:
        data["otp_device"] = device.persistent_id
    return client.post(ADMIN_LOGIN, data)


def _assert_kept_out(client: Client) -> None:
    response = client.get(ADMIN)
    assert response.status_code == 302
    assert response["Location"].startswith(ADMIN_LOGIN)


@pytest.fixture
def staff():
    return StaffFactory(role="Security officer")


@pytest.fixture
def device(staff):
    return staff.totpdevice_set.get(confirmed=True)


def test_staff_with_a_valid_token_reaches_the_admin(staff, device):
    client = Client()
    response = _admin_login(client, staff, device=device, token=_token(device))
    assert response.status_code == 302
    assert response["Location"] == ADMIN
    index = client.get(ADMIN)
    assert index.status_code == 200
    assert "Staff administration" in index.content.decode()


def test_login_form_asks_for_the_otp_token(staff, device):
    response = Client().get(ADMIN_LOGIN)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="otp_token"' in html


def test_password_without_token_is_refused(staff, device):
    client = Client()
    response = _admin_login(client, staff)
    assert response.status_code == 200
    assert response.context["form"].errors
    # The form comes back offering the user's own device to pick for the token.
    assert device.persistent_id in response.content.decode()
    assert "_auth_user_id" not in client.session
    _assert_kept_out(client)


def test_wrong_token_is_refused(staff, device):
    client = Client()
    response = _admin_login(client, staff, device=device, token=_wrong_token(device))
    assert response.status_code == 200
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session
    _assert_kept_out(client)


def test_the_only_device_is_used_when_none_is_chosen(staff, device):
    """StaffLoginForm: one confirmed device means username, password and code on one form."""
    client = Client()
    response = _admin_login(client, staff, token=_token(device))
    assert response.status_code == 302
    assert client.get(ADMIN).status_code == 200


def test_wrong_token_without_choosing_a_device_is_refused(staff, device):
    client = Client()
    response = _admin_login(client, staff, token=_wrong_token(device))
    assert response.status_code == 200
    _assert_kept_out(client)


def test_with_several_devices_the_choice_is_required(staff, device):
    TOTPDevice.objects.create(user=staff, name="spare", confirmed=True)
    client = Client()
    response = _admin_login(client, staff, token=_token(device))
    assert response.status_code == 200
    _assert_kept_out(client)


def test_a_token_is_accepted_only_once(staff, device):
    token = _token(device)
    first = Client()
    assert _admin_login(first, staff, device=device, token=token).status_code == 302
    second = Client()
    response = _admin_login(second, staff, device=device, token=token)
    assert response.status_code == 200
    _assert_kept_out(second)


def test_another_users_device_and_token_do_not_count(staff):
    other = StaffFactory()
    other_device = other.totpdevice_set.get()
    client = Client()
    response = _admin_login(client, staff, device=other_device, token=_token(other_device))
    assert response.status_code == 200
    _assert_kept_out(client)


def test_password_only_session_cannot_use_the_admin(staff, device):
    """A staff session that never passed the second factor (e.g. via the portal login)."""
    client = Client()
    client.force_login(staff)
    _assert_kept_out(client)


def test_staff_without_a_totp_device_cannot_log_in():
    staff = StaffFactory(role="Support engineer")
    TOTPDevice.objects.filter(user=staff).delete()
    client = Client()
    response = _admin_login(client, staff, token="123456")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    _assert_kept_out(client)


def test_customer_with_password_and_valid_token_is_refused():
    customer = MembershipFactory().user
    device = TOTPDevice.objects.create(user=customer, name="phone", confirmed=True)
    client = Client()
    response = _admin_login(client, customer, device=device, token=_token(device))
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    _assert_kept_out(client)


def test_verified_customer_session_cannot_use_the_admin():
    """Even a customer session that passed a second factor is not staff."""
    customer = MembershipFactory().user
    device = TOTPDevice.objects.create(user=customer, name="phone", confirmed=True)
    client = Client()
    client.force_login(customer)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    assert client.get("/portal/").status_code == 200  # the session itself is valid
    _assert_kept_out(client)


def test_verified_staff_session_reaches_the_admin(staff, device):
    """Counterpart of the customer test above: the same session setup works for staff."""
    client = Client()
    client.force_login(staff)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    assert client.get(ADMIN).status_code == 200


def test_an_unconfirmed_device_is_never_accepted(staff, device):
    pending = TOTPDevice.objects.create(user=staff, name="pending", confirmed=False)
    client = Client()
    _admin_login(client, staff, device=pending, token=_token(pending))
    _assert_kept_out(client)


def test_a_customer_marked_staff_by_mistake_still_cannot_use_the_admin():
    member = MembershipFactory()
    member.user.is_staff = True
    member.user.save(update_fields=["is_staff"])
    device = TOTPDevice.objects.create(user=member.user, name="phone", confirmed=True)
    client = Client()
    _admin_login(client, member.user, device=device, token=_token(device))
    _assert_kept_out(client)


def test_staff_cannot_be_made_members_of_an_organisation(org_a):
    from django.core.exceptions import ValidationError

    from governance.tenancy.models import Membership

    with pytest.raises(ValidationError, match="Staff accounts"):
        Membership(user=StaffFactory(), organisation=org_a, role=Membership.Role.VIEWER).full_clean()
