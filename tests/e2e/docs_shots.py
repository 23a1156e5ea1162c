"""Screenshots for the README: saved with the other browser-test screenshots (var/e2e),
and also into docs/ when DOCS_SCREENSHOTS=1 (so an ordinary test run leaves the tracked
images alone)."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from tests.e2e.conftest import shot

DOCS = Path(settings.BASE_DIR) / "docs"


def doc_shot(page, name: str, selector: str | None = None) -> None:
    """Full page into var/e2e; into docs/ (only `selector`'s element, if given) on request."""
    shot(page, name)
    if os.environ.get("DOCS_SCREENSHOTS"):
        path = str(DOCS / f"{name}.png")
        if selector:
            page.locator(selector).screenshot(path=path)
        else:
            page.screenshot(path=path, full_page=True)
