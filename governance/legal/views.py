"""The public transparency report (C27): no login, nothing per user, cacheable."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from governance.legal.transparency import COLUMNS, transparency_report


@require_safe
@cache_control(public=True, max_age=3600)
def transparency(request: HttpRequest) -> HttpResponse:
    # Rendered without the request: no user, session or CSRF token can reach the page.
    body = render_to_string(
        "legal/transparency.html",
        {
            "periods": transparency_report(),
            "columns": [label for _, label in COLUMNS],
            "band": settings.LEGAL_TRANSPARENCY_BAND,
        },
    )
    return HttpResponse(body)
