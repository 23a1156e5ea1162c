"""Public vulnerability-disclosure pages (C11): security.txt, the policy and the report form.

None of these pages reads the user or the session. security.txt and the policy carry no
CSRF token and may be cached by anyone; the form carries one and is never cached.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from governance.audit.context import current_ip
from governance.core.forms import add_service_errors
from governance.disclosure import services
from governance.disclosure.forms import ReportForm


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def security_txt_body(now=None) -> str:
    """RFC 9116 fields, generated from settings; Expires is always ahead of `now`."""
    now = now or timezone.now()
    expires = (now + timedelta(days=settings.SECURITY_TXT_EXPIRES_DAYS)).replace(microsecond=0)
    lines = [
        "# Found a vulnerability? Please tell us; our policy explains scope and safe harbour.",
        *(f"Contact: mailto:{address}" for address in settings.SECURITY_TXT_CONTACT_EMAILS),
        f"Contact: {_absolute(reverse('disclosure:report'))}",
        f"Expires: {expires.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}",
        f"Policy: {_absolute(reverse('disclosure:policy'))}",
        "Preferred-Languages: en",
        f"Canonical: {_absolute(reverse('disclosure:security_txt'))}",
    ]
    return "\n".join(lines) + "\n"


@require_GET
@cache_control(public=True, max_age=3600)
def security_txt(request: HttpRequest) -> HttpResponse:
    return HttpResponse(security_txt_body(), content_type="text/plain; charset=utf-8")


@require_GET
@cache_control(public=True, max_age=3600)
def policy(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "disclosure/policy.html",
        {
            "contact_emails": settings.SECURITY_TXT_CONTACT_EMAILS,
            "working_days": settings.DISCLOSURE_FIRST_RESPONSE_WORKING_DAYS,
        },
    )


def _client_ip(request: HttpRequest) -> str | None:
    # Set by AuditContextMiddleware with the proxy-aware rules configured for axes.
    return current_ip.get() or request.META.get("REMOTE_ADDR")


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def report(request: HttpRequest) -> HttpResponse:
    context = {
        "working_days": settings.DISCLOSURE_FIRST_RESPONSE_WORKING_DAYS,
        "contact_emails": settings.SECURITY_TXT_CONTACT_EMAILS,
    }
    if request.method == "GET":
        return render(request, "disclosure/report_form.html", {**context, "form": ReportForm()})

    # 1. Validate: rate, size, then the fields (every POST counts towards the rate).
    if services.submission_rate_exceeded(client_ip=_client_ip(request)):
        minutes = max(1, settings.DISCLOSURE_RATE_WINDOW_SECONDS // 60)
        response = render(request, "disclosure/rate_limited.html", {**context, "minutes": minutes}, status=429)
        response["Retry-After"] = str(settings.DISCLOSURE_RATE_WINDOW_SECONDS)
        return response
    if _content_length(request) > settings.DISCLOSURE_MAX_BODY_BYTES:
        return render(
            request,
            "disclosure/too_large.html",
            {**context, "limit_kb": settings.DISCLOSURE_MAX_BODY_BYTES // 1024},
            status=413,
        )
    form = ReportForm(request.POST)
    if not form.is_valid():
        return render(request, "disclosure/report_form.html", {**context, "form": form}, status=400)
    if form.is_spam:
        # Looks like success to the bot; nothing is stored or sent.
        return render(request, "disclosure/report_thanks.html", {**context, "reference": services.new_reference()})

    # 2-3. Nothing to load: call the service.
    data = form.cleaned_data
    try:
        saved = services.report_submit(
            summary=data["summary"],
            affected_product=data["affected_product"],
            steps_to_reproduce=data["steps_to_reproduce"],
            impact=data["impact"],
            cvss_vector=data["cvss_vector"],
            contact_email=data["contact_email"],
        )
    except ValidationError as e:
        add_service_errors(form, e)
        return render(request, "disclosure/report_form.html", {**context, "form": form}, status=400)
    # 4. Respond with the reference.
    return render(request, "disclosure/report_thanks.html", {**context, "reference": saved.reference, "report": saved})
