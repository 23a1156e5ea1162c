"""Caching of the public status outputs.

One version token in the cache stands for "the public state": every change that can
alter a public output bumps it on commit. Responses are cached under the version and
the day (the 90-day bars move at midnight), and the version is the ETag, so a
conditional GET is answered 304 by `condition` before the view runs. Nothing cached
here may depend on the visitor: these views never read the user, session or CSRF token.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import wraps

from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import condition, require_safe

VERSION_KEY = "status:version"
# Safety net only: entries are keyed by version, so a stale one is never served.
TTL_SECONDS = 24 * 3600


def _new_version(previous_at: datetime | None) -> tuple[str, datetime]:
    # Last-Modified has one-second resolution: move it forward by at least a second on
    # every change, so If-Modified-Since alone can never hide a change.
    at = timezone.now().replace(microsecond=0) + timedelta(seconds=1)
    if previous_at is not None and at <= previous_at:
        at = previous_at + timedelta(seconds=1)
    return secrets.token_hex(6), at


def current_version() -> tuple[str, datetime]:
    value = cache.get(VERSION_KEY)
    if value is None:
        cache.add(VERSION_KEY, _new_version(None), None)
        value = cache.get(VERSION_KEY) or _new_version(None)
    return value


def bump() -> None:
    """A public change happened: every cached status output is now stale."""
    previous = cache.get(VERSION_KEY)
    cache.set(VERSION_KEY, _new_version(previous[1] if previous else None), None)


def bump_on_commit() -> None:
    transaction.on_commit(bump)


def _state(request: HttpRequest) -> tuple[str, datetime, date]:
    if not hasattr(request, "_status_state"):
        token, at = current_version()
        today = timezone.now().astimezone(UTC).date()
        request._status_state = (token, at, today)
    return request._status_state


def _etag(request: HttpRequest, *args, **kwargs) -> str:
    token, _, today = _state(request)
    return f"{token}-{today:%Y%m%d}"


def _last_modified(request: HttpRequest, *args, **kwargs) -> datetime:
    _, at, today = _state(request)
    return max(at, datetime.combine(today, time.min, tzinfo=UTC))


def public_cached(name: str) -> Callable:
    """Cache a public view's body under the current version; answer 304 without running
    it when the client's copy is current. The view returns an HttpResponse."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @require_safe
        @condition(etag_func=_etag, last_modified_func=_last_modified)
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            parts = [name, request.get_host(), _etag(request), *map(str, args), *map(str, kwargs.values())]
            key = "status:out:" + ":".join(parts)
            cached = cache.get(key)
            if cached is None:
                response = view(request, *args, **kwargs)
                if response.status_code != 200:
                    return response
                cached = (response.content, response["Content-Type"])
                cache.set(key, cached, TTL_SECONDS)
            response = HttpResponse(cached[0], content_type=cached[1])
            # Browsers and proxies revalidate every time: the answer is a cheap 304.
            response["Cache-Control"] = "public, max-age=0, must-revalidate"
            if name.startswith("api:"):
                response["Access-Control-Allow-Origin"] = "*"  # as Statuspage: dashboards read it cross-origin
            return response

        return wrapper

    return decorator
