"""End to end in a real browser (Playwright driving Debian's Chromium): a visitor opens
the status page, follows its Atom feed, subscribes by email, reads the confirmation mail
from a loopback SMTP server and confirms in the browser (C14, C15)."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from incidents import tasks
from incidents.models import StatusSubscriber
from incidents.outbox import outbox_sweep
from incidents.status import cache as status_cache
from tests.e2e.conftest import needs_chromium, shot
from tests.test_outbox import Sink, _serve
from tests.test_portal_incidents import make_incident, post_update

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.commitment("C14"),
    pytest.mark.commitment("C15"),
    needs_chromium,
]


@pytest.fixture
def smtp_server(settings):
    server = _serve(settings, Sink())
    yield server
    server.stop()


def test_page_feed_and_email_subscription(browser, live_server, smtp_server, settings, monkeypatch):
    settings.SITE_URL = live_server.url  # links in mails point at the test server
    settings.STATUS_SUBSCRIBE_RATE_LIMIT = 1000  # the counter lives in the shared cache
    monkeypatch.setattr(tasks.deliver_notification, "delay", lambda pk: None)  # the test sweeps
    status_cache.bump()
    incident = make_incident(title="Dashboards are slow")
    post_update(incident, message="A fix is rolling out.")

    page = browser.new_page()
    page.goto(f"{live_server.url}/status/")
    assert "Dashboards are slow" in page.content()
    shot(page, "status-page")

    # The Atom feed is linked from the page and lists the incident.
    href = page.get_attribute("header nav a:has-text('Atom feed')", "href")
    feed = page.goto(f"{live_server.url}{href}" if href.startswith("/") else href)
    assert feed.ok and "atom" in feed.headers["content-type"]
    text = feed.text()
    assert "<feed" in text and "Dashboards are slow" in text

    # Subscribe through the form the page links to.
    page.goto(f"{live_server.url}/status/")
    page.click("header nav a:has-text('Get email updates')")
    page.wait_for_url(f"{live_server.url}/status/subscribe/")
    page.fill("input[name=email]", "visitor@example.com")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "Check your inbox" in page.content()

    # The confirmation mail arrives over SMTP; follow its link in the browser.
    assert outbox_sweep(now=timezone.now(), limit=10)["sent"] == 1
    (mail,) = smtp_server.sink.accepted
    assert mail["to"] == ["visitor@example.com"]
    link = re.search(r"http://\S+/status/subscribe/confirm/[\w-]+/", mail["message"].get_content()).group(0)
    page.goto(link)
    assert StatusSubscriber.objects.get().confirmed_at is None  # opening the link only asks
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "subscription confirmed" in page.content().lower()
    shot(page, "status-subscription-confirmed")
    assert StatusSubscriber.objects.get().confirmed_at is not None
