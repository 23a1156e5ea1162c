"""security.txt (RFC 9116) and the public policy page (C11), checked with the `sectxt` validator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from sectxt import Parser

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C11")]

SITE = "https://portal.example.com"
URL = "/.well-known/security.txt"


@pytest.fixture(autouse=True)
def _https_site(settings):
    settings.SITE_URL = SITE
    settings.SECURITY_TXT_CONTACT_EMAILS = ["security@example.com"]


def _fields(body: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split(": ", 1)
            fields.setdefault(name, []).append(value)
    return fields


def test_security_txt_is_valid_according_to_the_sectxt_validator(client):
    response = client.get(URL)
    assert response.status_code == 200
    parser = Parser(response.content, urls=SITE + URL)
    assert parser.errors == []
    assert parser.is_valid()
    # Only the advice we chose not to follow: signing is out of scope, so is an Encryption key.
    assert {r["code"] for r in parser.recommendations} <= {"not_signed", "no_encryption"}
    assert parser.notifications == []


def test_security_txt_has_every_field_the_policy_needs(client):
    fields = _fields(client.get(URL).content.decode())
    assert fields["Contact"] == ["mailto:security@example.com", f"{SITE}/security/report/"]
    assert fields["Policy"] == [f"{SITE}/security/policy/"]
    assert fields["Preferred-Languages"] == ["en"]
    assert fields["Canonical"] == [SITE + URL]
    assert len(fields["Expires"]) == 1


def test_security_txt_is_plain_text_utf8_and_cacheable(client):
    response = client.get(URL)
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert "public" in response["Cache-Control"]
    assert b"csrf" not in response.content.lower()
    assert "csrftoken" not in response.cookies


@pytest.mark.parametrize("days", [1, 180, 365])
def test_expires_is_computed_from_now_and_always_in_the_future(client, settings, days):
    settings.SECURITY_TXT_EXPIRES_DAYS = days
    frozen = datetime(2027, 2, 26, 9, 30, 15, tzinfo=UTC)
    with time_machine.travel(frozen, tick=False):
        body = client.get(URL).content.decode()
        assert Parser(body.encode(), urls=SITE + URL).is_valid()
    expires = datetime.strptime(_fields(body)["Expires"][0], "%Y-%m-%dT%H:%M:%S%z")
    assert expires == frozen + timedelta(days=days)
    assert expires > frozen
    # Years later the file is still valid: Expires moves with the clock, never goes stale.
    with time_machine.travel(frozen + timedelta(days=3 * 365), tick=False):
        later = client.get(URL).content
    assert Parser(later, urls=SITE + URL).is_valid()


def test_legacy_location_redirects_to_the_well_known_one(client):
    response = client.get("/security.txt")
    assert response.status_code == 301
    assert response["Location"] == URL


def test_security_txt_refuses_post(client):
    assert client.post(URL).status_code == 405


def test_policy_page_is_public_linked_and_free_of_user_and_csrf(client, staff_factory):
    response = client.get(reverse("disclosure:policy"))
    assert response.status_code == 200
    body = response.content.decode()
    for heading in ("Scope", "Safe harbour", "Please do not", "How and when we respond"):
        assert heading in body
    assert reverse("disclosure:report") in body
    assert "csrfmiddlewaretoken" not in body
    # A signed-in staff member gets exactly the same page: nothing personal may be cached.
    staff = staff_factory()
    client.force_login(staff)
    again = client.get(reverse("disclosure:policy")).content.decode()
    assert again == body
    assert staff.username not in again


def test_report_form_links_the_policy_and_is_never_cached(client):
    response = client.get(reverse("disclosure:report"))
    assert response.status_code == 200
    assert reverse("disclosure:policy") in response.content.decode()
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
