"""Caching of the public status outputs.

One version token in the cache stands for "the public state": every change that can
alter a public output bumps it on commit. Responses are cached under the version and
the day (the 90-day bars move at midnight), and the version is the ETag, so a
conditional GET is answered 304 by `condition` before the view runs. Nothing cached
here may depend on the visitor: these views never read the user, session or CSRF token.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
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
# Each process also keeps the outputs it served last, by the same versioned key: a key's
# body never changes, so this copy cannot be stale, and a request then costs one cache
# read (the version) instead of two plus the transfer of the body (80 KB for the page).
LOCAL_MAX_BYTES = 8 * 1024 * 1024
_local: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
_local_bytes = 0
_local_lock = threading.Lock()


def _local_get(key: str) -> tuple[bytes, str] | None:
    with _local_lock:
        value = _local.get(key)
        if value is not None:
            _local.move_to_end(key)
        return value


def _local_put(key: str, value: tuple[bytes, str]) -> None:
    global _local_bytes
    with _local_lock:
        if key in _local or len(value[0]) > LOCAL_MAX_BYTES // 4:
            return
        _local[key] = value
        _local_bytes += len(value[0])
        while _local_bytes > LOCAL_MAX_BYTES:
            _, (body, _) = _local.popitem(last=False)
            _local_bytes -= len(body)


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
            cached = _local_get(key) or cache.get(key)
            if cached is None:
                response = view(request, *args, **kwargs)
                if response.status_code != 200:
                    return response
                cached = (response.content, response["Content-Type"])
                cache.set(key, cached, TTL_SECONDS)
            _local_put(key, cached)
            response = HttpResponse(cached[0], content_type=cached[1])
            # Browsers and proxies revalidate every time: the answer is a cheap 304.
            response["Cache-Control"] = "public, max-age=0, must-revalidate"
            if name.startswith("api:"):
                response["Access-Control-Allow-Origin"] = "*"  # as Statuspage: dashboards read it cross-origin
            return response

        return wrapper

    return decorator
