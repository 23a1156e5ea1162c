"""Subscription pages of the status page (C14): sign-up, confirmation, unsubscribe.

Unlike the cached status pages these are never cached. The sign-up form carries a CSRF
token; confirm and unsubscribe are authorised by the random token in their URL alone.
Links in mail are opened by scanners without a person, so GET only asks and a button
POSTs: confirming needs a person's click (the double opt-in means something), and
unsubscribe accepts the RFC 8058 one-click POST from mail providers, which send no
CSRF cookie, so it is exempt.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from governance.audit.context import current_ip
from incidents.status import subscriptions
from incidents.status.forms import SubscribeForm
from incidents.status.meta import page_meta


def _client_ip(request: HttpRequest) -> str | None:
    # Set by AuditContextMiddleware with the proxy-aware rules configured for axes.
    return current_ip.get() or request.META.get("REMOTE_ADDR")


def _render(request: HttpRequest, template: str, context: dict | None = None, status: int = 200) -> HttpResponse:
    return render(request, template, {"page": page_meta(), **(context or {})}, status=status)


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def subscribe(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _render(request, "status/subscribe.html", {"form": SubscribeForm()})
    # 1. Validate: every POST counts towards the rate, valid or not.
    if subscriptions.subscribe_rate_exceeded(client_ip=_client_ip(request)):
        window = settings.STATUS_SUBSCRIBE_RATE_WINDOW_SECONDS
        response = _render(request, "status/subscribe_limited.html", {"minutes": max(1, window // 60)}, status=429)
        response["Retry-After"] = str(window)
        return response
    form = SubscribeForm(request.POST)
    if not form.is_valid():
        return _render(request, "status/subscribe.html", {"form": form}, status=400)
    # 2-3. Nothing to load: call the service.
    try:
        subscriptions.subscriber_signup(email=form.cleaned_data["email"], components=form.cleaned_data["components"])
    except ValidationError as exc:
        form.add_error(None, exc)
        return _render(request, "status/subscribe.html", {"form": form}, status=400)
    # 4. The same answer whether the address was new, pending or already confirmed.
    return _render(request, "status/subscribe_sent.html", {"hours": settings.STATUS_CONFIRM_HOURS})


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def subscribe_confirm(request: HttpRequest, token: str) -> HttpResponse:
    if request.method == "GET":
        pending = subscriptions.subscriber_pending(token)
        if pending is None:
            return _render(request, "status/subscribe_invalid.html", status=404)
        return _render(request, "status/subscribe_confirm.html", {"components": list(pending.components.all())})
    subscriber = subscriptions.subscriber_confirm(token=token)
    if subscriber is None:
        return _render(request, "status/subscribe_invalid.html", status=404)
    return _render(
        request,
        "status/subscribe_confirmed.html",
        {"components": list(subscriber.components.all()), "unsubscribe_url": subscriptions.unsubscribe_url(subscriber)},
    )


@never_cache
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    if request.method == "GET":
        # GET only asks: link scanners in mail systems follow links without a person.
        known = subscriptions.subscriber_for_unsubscribe(token) is not None
        return _render(request, "status/unsubscribe.html", {"known": known}, status=200 if known else 404)
    subscriptions.subscriber_unsubscribe(token=token)
    # Unknown tokens are answered the same: the address is not (or no longer) subscribed.
    return _render(request, "status/unsubscribed.html")
