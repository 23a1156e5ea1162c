"""Browser tests: Playwright driving Debian's Chromium (no browser download)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(settings.BASE_DIR) / "var" / "e2e"

# A machine with only Python has no browser; CI installs Chromium and must run these.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI_REQUIRE_SERVICES"),
    reason="Chromium is not installed (CI installs it and runs the browser tests)",
)


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


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
