"""Public pages are the same for everyone, so shared caches and CDNs can serve them."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C14")]

PUBLIC = ["/status/", "/api/v2/summary.json", "/status/feed.atom", "/.well-known/security.txt", "/transparency/"]


@pytest.mark.parametrize("url", PUBLIC)
def test_public_pages_do_not_vary_by_cookie_even_for_signed_in_users(client, customer_a, url):
    client.force_login(customer_a)
    response = client.get(url)
    assert response.status_code == 200
    assert "Cookie" not in response.get("Vary", "")
    assert not response.cookies
    assert customer_a.username.encode() not in response.content


def test_portal_pages_still_know_the_user(client, customer_a):
    client.force_login(customer_a)
    response = client.get("/portal/")
    assert response.status_code == 200 and "Cookie" in response.get("Vary", "")
