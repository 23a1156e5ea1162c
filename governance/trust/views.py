"""The public trust page (/trust/): the commitments the security officer chose to publish,
with live one-line summaries. No login, nothing per user: rendered without the request so
no user, session or CSRF token can reach it; the same copy for everyone."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from governance.trust.public import CACHE_SECONDS, public_summaries


@require_safe
@cache_control(public=True, max_age=CACHE_SECONDS)
def trust_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(render_to_string("trust/public.html", public_summaries()))
