"""Login lockout (C10): django-axes locks a username+IP pair, never a whole proxy.

axes.conf only fills in defaults at import; every AXES_* value is read from
django.conf.settings when a request is handled, so the `settings` fixture and
override_settings reach it. Attempt rows live in the database and roll back with each test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django_otp.oath import totp

from tests.factories import PASSWORD, MembershipFactory, StaffFactory

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C10")]

BASE_DIR = Path(__file__).resolve().parent.parent
PORTAL_LOGIN = "/portal/login/"
ADMIN_LOGIN = "/admin/login/"
CLIENT_IP = "198.51.100.10"
OTHER_IP = "198.51.100.20"
PROXY_IP = "10.0.0.1"
WRONG = "not-the-password"


def _login(client: Client, username: str, password: str, **meta):
    return client.post(PORTAL_LOGIN, {"username": username, "password": password}, **meta)


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _fail(username: str, times: int, **meta) -> None:
    client = Client()
    for _ in range(times):
        _login(client, username, WRONG, **meta)
        assert not _logged_in(client)


def _assert_locked_out(response) -> None:
    assert response.status_code == settings.AXES_HTTP_RESPONSE_CODE == 429
    assert "locked" in response.content.decode().lower()


@pytest.fixture
def customer():
    return MembershipFactory().user


def test_the_limit_is_five_failures_by_default():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_four_failures_do_not_lock(customer):
    _fail(customer.username, 4, REMOTE_ADDR=CLIENT_IP)
    client = Client()
    response = _login(client, customer.username, PASSWORD, REMOTE_ADDR=CLIENT_IP)
    assert response.status_code == 302
    assert _logged_in(client)


def test_five_failures_lock_the_username_from_that_ip(customer):
    _fail(customer.username, 5, REMOTE_ADDR=CLIENT_IP)
    client = Client()
    response = _login(client, customer.username, PASSWORD, REMOTE_ADDR=CLIENT_IP)
    _assert_locked_out(response)
    assert not _logged_in(client)
    attempt = AccessAttempt.objects.get(username=customer.username)
    assert attempt.ip_address == CLIENT_IP
    assert attempt.failures_since_start >= 5


def test_same_username_from_another_ip_still_logs_in(customer):
    _fail(customer.username, 5, REMOTE_ADDR=CLIENT_IP)
    client = Client()
    response = _login(client, customer.username, PASSWORD, REMOTE_ADDR=OTHER_IP)
    assert response.status_code == 302
    assert _logged_in(client)


def test_other_username_from_the_same_ip_still_logs_in(customer):
    """One user's failures never lock everybody who shares an address (e.g. a proxy)."""
    _fail(customer.username, 5, REMOTE_ADDR=PROXY_IP)
    colleague = MembershipFactory().user
    client = Client()
    response = _login(client, colleague.username, PASSWORD, REMOTE_ADDR=PROXY_IP)
    assert response.status_code == 302
    assert _logged_in(client)


def test_unknown_usernames_are_locked_too():
    """Guessing at a username that does not exist is throttled in the same way."""
    _fail("nobody-by-this-name", 5, REMOTE_ADDR=CLIENT_IP)
    response = _login(Client(), "nobody-by-this-name", WRONG, REMOTE_ADDR=CLIENT_IP)
    _assert_locked_out(response)


def test_without_a_proxy_x_forwarded_for_is_ignored(customer):
    """With AXES_PROXY_COUNT=0 a client cannot dodge the lock by inventing addresses."""
    for n in range(5):
        _login(Client(), customer.username, WRONG, REMOTE_ADDR=CLIENT_IP, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    client = Client()
    response = _login(client, customer.username, PASSWORD, REMOTE_ADDR=CLIENT_IP, HTTP_X_FORWARDED_FOR="203.0.113.99")
    _assert_locked_out(response)
    assert not _logged_in(client)


# --- Behind a reverse proxy ------------------------------------------------------


def _axes_settings_for(proxy_count: int) -> dict:
    """The AXES_*/IPWARE_* settings that assyst/settings.py derives from AXES_PROXY_COUNT."""
    env = {**os.environ, "AXES_PROXY_COUNT": str(proxy_count), "DJANGO_ENV_FILE": "/nonexistent"}
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({k: getattr(s, k) for k in "
        "('AXES_IPWARE_PROXY_COUNT', 'AXES_IPWARE_META_PRECEDENCE_ORDER', 'IPWARE_STRICT') if hasattr(s, k)}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DJANGO_SETTINGS_MODULE": "assyst.settings"},
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    if values["AXES_IPWARE_META_PRECEDENCE_ORDER"] is not None:
        values["AXES_IPWARE_META_PRECEDENCE_ORDER"] = tuple(values["AXES_IPWARE_META_PRECEDENCE_ORDER"])
    return values


@pytest.fixture(scope="module")
def one_proxy_settings() -> dict:
    return _axes_settings_for(1)


@pytest.fixture
def behind_one_proxy(settings, one_proxy_settings):
    """Settings as loaded with AXES_PROXY_COUNT=1: one TLS proxy (REMOTE_ADDR) that
    appends the client's address to X-Forwarded-For."""
    assert one_proxy_settings["AXES_IPWARE_META_PRECEDENCE_ORDER"][0] == "HTTP_X_FORWARDED_FOR"
    for name, value in one_proxy_settings.items():
        setattr(settings, name, value)
    return settings


def test_behind_a_proxy_clients_are_tracked_separately(behind_one_proxy, customer):
    client_a, client_b = "198.51.100.7", "203.0.113.5"
    _fail(customer.username, 5, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=client_a)

    locked = Client()
    response = _login(locked, customer.username, PASSWORD, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=client_a)
    _assert_locked_out(response)
    assert AccessAttempt.objects.get(username=customer.username).ip_address == client_a

    other = Client()
    response = _login(other, customer.username, PASSWORD, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=client_b)
    assert response.status_code == 302
    assert _logged_in(other)


def test_behind_a_proxy_a_forged_x_forwarded_for_does_not_dodge_the_lock(behind_one_proxy, customer):
    """The proxy appends the real address; whatever the client wrote to the left of it is ignored."""
    real = "198.51.100.7"
    for n in range(5):
        _login(Client(), customer.username, WRONG, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, {real}")
    client = Client()
    response = _login(
        client, customer.username, PASSWORD, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=f"192.0.2.99, {real}"
    )
    _assert_locked_out(response)
    assert not _logged_in(client)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {real}


def test_behind_two_proxies_the_address_the_outer_proxy_saw_is_used(settings, customer):
    for name, value in _axes_settings_for(2).items():
        setattr(settings, name, value)
    real, inner_proxy = "198.51.100.7", "10.0.0.2"
    for n in range(5):
        xff = f"192.0.2.{n}, {real}, {inner_proxy}"
        _login(Client(), customer.username, WRONG, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=xff)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {real}
    _assert_locked_out(
        _login(
            Client(), customer.username, PASSWORD, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=f"{real}, {inner_proxy}"
        )
    )


# --- Cool-off --------------------------------------------------------------------


def test_lock_lifts_after_the_cool_off(customer):
    cool_off = get_cool_off()
    assert cool_off == timedelta(hours=1)
    start = datetime(2030, 1, 15, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        _fail(customer.username, 5, REMOTE_ADDR=CLIENT_IP)
        traveller.move_to(start + cool_off + timedelta(minutes=1))
        client = Client()
        response = _login(client, customer.username, PASSWORD, REMOTE_ADDR=CLIENT_IP)
        assert response.status_code == 302
        assert _logged_in(client)


def test_lock_does_not_lift_by_itself_before_the_cool_off(customer):
    start = datetime(2030, 1, 15, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        _fail(customer.username, 5, REMOTE_ADDR=CLIENT_IP)
        traveller.move_to(start + timedelta(minutes=59))
        _assert_locked_out(_login(Client(), customer.username, PASSWORD, REMOTE_ADDR=CLIENT_IP))


# --- Staff admin -----------------------------------------------------------------


def test_admin_login_is_axes_protected():
    staff = StaffFactory(role="Security officer")
    device = staff.totpdevice_set.get()
    for _ in range(5):
        Client().post(ADMIN_LOGIN, {"username": staff.username, "password": WRONG}, REMOTE_ADDR=CLIENT_IP)

    client = Client()
    token = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"
    response = client.post(
        ADMIN_LOGIN,
        {
            "username": staff.username,
            "password": PASSWORD,
            "otp_device": device.persistent_id,
            "otp_token": token,
            "next": "/admin/",
        },
        REMOTE_ADDR=CLIENT_IP,
    )
    _assert_locked_out(response)
    assert not _logged_in(client)
    assert client.get("/admin/", REMOTE_ADDR=CLIENT_IP).status_code == 302
