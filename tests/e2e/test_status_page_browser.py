"""End to end in a real browser (Playwright driving Debian's Chromium): a visitor opens
the status page, follows its Atom feed, subscribes by email, reads the confirmation mail
from a loopback SMTP server and confirms in the browser (C14, C15)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from incidents import tasks
from incidents.models import StatusSubscriber
from incidents.outbox import outbox_sweep
from incidents.status import cache as status_cache
from tests.test_outbox import Sink, _serve
from tests.test_portal_incidents import make_incident, post_update

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(settings.BASE_DIR) / "var" / "e2e"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.commitment("C14"),
    pytest.mark.commitment("C15"),
    # A machine with only Python has no browser; CI installs Chromium and must run this.
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI_REQUIRE_SERVICES"),
        reason="Chromium is not installed (CI installs it and runs this test)",
    ),
]


@pytest.fixture
def browser(live_server):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's ORM calls are
    # still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
            )
            yield browser
            # While Playwright's loop runs, the test's ORM calls use a connection of their own
            # (Django keeps connections per async context); close it or it outlives the test DB.
            connections.close_all()
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


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
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "status-page.png"), full_page=True)

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
    assert "confirmed" in page.content().lower()
    page.screenshot(path=str(SHOTS / "status-subscription-confirmed.png"), full_page=True)
    assert StatusSubscriber.objects.get().confirmed_at is not None
