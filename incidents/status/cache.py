"""Caching of the public status outputs.

One version token in the cache stands for "the public state": every change that can
alter a public output bumps it on commit. Responses are cached under the version and
the day (the 90-day bars move at midnight), and the version is the ETag, so a
conditional GET is answered 304 by `condition` before the view runs. Nothing cached
here may depend on the visitor: these views never read the user, session or CSRF token.

With Redis, every web process also holds the current version in memory, kept current
by a thread subscribed to a Redis channel that `bump` publishes on (`VersionWatcher`);
a request then needs no round trip to Redis at all, and `PublicResponseCacheMiddleware`
answers it from the process's copy of the finished response. The shared cache stays
the source of truth: the watcher re-reads the version from it after every message, on
every (re)connect and at least every REFRESH_SECONDS, and while it is not subscribed,
requests read the cache as before.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time as monotonic_time
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import condition, require_safe

log = logging.getLogger(__name__)

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


CHANNEL_KEY = "status:changed"
# The longest a watcher trusts its copy without re-reading the shared version.
REFRESH_SECONDS = 5.0


def current_version() -> tuple[str, datetime]:
    """The version as the shared cache holds it (one cache read)."""
    value = cache.get(VERSION_KEY)
    if value is None:
        cache.add(VERSION_KEY, _new_version(None), None)
        value = cache.get(VERSION_KEY) or _new_version(None)
    return value


def bump() -> None:
    """A public change happened: every cached status output is now stale."""
    previous = cache.get(VERSION_KEY)
    cache.set(VERSION_KEY, _new_version(previous[1] if previous else None), None)
    watcher.changed()


def channel_name() -> str:
    """Pub/sub channels are shared by every database of a Redis server: the database
    number is part of the name, so deployments (or CI runs) on other databases of the
    same server never wake this one's watchers."""
    from redis.connection import parse_url

    return f"{cache.make_key(CHANNEL_KEY)}:db{parse_url(settings.REDIS_URL).get('db', 0)}"


class VersionWatcher:
    """This process's copy of the version, kept current through Redis pub/sub.

    `get()` returns None (callers then read the cache) until the thread has subscribed
    and read the version, and again as soon as the subscription fails, so a process that
    cannot hear about changes never trusts its copy. The thread is started lazily, in
    the process that serves requests (after gunicorn's fork), and restarted in a child.
    """

    def __init__(self) -> None:
        self._version: tuple[str, datetime] | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._client = None
        self._pid_client: int | None = None

    @staticmethod
    def enabled() -> bool:
        return bool(getattr(settings, "REDIS_URL", "")) and settings.STATUS_VERSION_WATCH

    def get(self) -> tuple[str, datetime] | None:
        if self._pid != os.getpid():
            if not self.enabled():
                return None
            self._start()
        return self._version

    def changed(self) -> None:
        """Called by `bump` after it wrote the new version: tell every process."""
        if not self.enabled():
            return
        if self._pid == os.getpid() and self._version is not None:
            self._version = current_version()  # this process sees its own change at once
        for attempt in (1, 2):
            try:
                self._publisher().publish(channel_name(), b"1")
                return
            except Exception:  # a broken connection: retry once on a new one
                self._client = None
                if attempt == 2:  # watchers still re-read within REFRESH_SECONDS
                    log.warning("Could not publish a status change", exc_info=True)

    def _redis(self):
        import redis

        kwargs = {}
        if settings.REDIS_URL.startswith("rediss://"):
            kwargs["ssl_cert_reqs"] = settings.REDIS_SSL_CERT_REQS
        return redis.Redis.from_url(settings.REDIS_URL, health_check_interval=10, **kwargs)

    def _publisher(self):
        if self._client is None or self._pid_client != os.getpid():
            self._client, self._pid_client = self._redis(), os.getpid()
        return self._client

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid, self._version = os.getpid(), None
            threading.Thread(target=self._run, name="status-version-watcher", daemon=True).start()

    def _run(self) -> None:
        delay = 0.5
        while True:
            pubsub = None
            try:
                pubsub = self._redis().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(channel_name())
                # Subscribed first, then read: a change between the two is not missed.
                while pubsub.get_message(timeout=1.0) is None and not pubsub.subscribed:
                    pass
                self._version = current_version()
                delay = 0.5
                while True:
                    # Re-read after every message and at least every REFRESH_SECONDS: a
                    # publish that failed, or a message lost in a half-open connection,
                    # delays a change by seconds at most (get_message also pings when idle).
                    pubsub.get_message(timeout=REFRESH_SECONDS)
                    self._version = current_version()
            except Exception:
                self._version = None
                log.warning("Status version watcher lost Redis; retrying in %.1f s", delay, exc_info=True)
                monotonic_time.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # noqa: S110 - already failing; the loop reconnects
                        pass


watcher = VersionWatcher()


def bump_on_commit() -> None:
    transaction.on_commit(bump)


def _state(request: HttpRequest) -> tuple[str, datetime, date]:
    if not hasattr(request, "_status_state"):
        token, at = watcher.get() or current_version()
        today = timezone.now().astimezone(UTC).date()
        request._status_state = (token, at, today)
    return request._status_state


def request_etag(request: HttpRequest, *args, **kwargs) -> str:
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
        @condition(etag_func=request_etag, last_modified_func=_last_modified)
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            parts = [name, request.get_host(), request_etag(request), *map(str, args), *map(str, kwargs.values())]
            key = "status:out:" + ":".join(parts)
            cached = cache.get(key)
            if cached is None:
                response = view(request, *args, **kwargs)
                if response.status_code != 200:
                    return response
                cached = (response.content, response["Content-Type"])
                cache.set(key, cached, TTL_SECONDS)
            response = HttpResponse(cached[0], content_type=cached[1])
            response.public_cacheable = True  # PublicResponseCacheMiddleware may keep it
            # Browsers and proxies revalidate every time: the answer is a cheap 304.
            response["Cache-Control"] = "public, max-age=0, must-revalidate"
            if name.startswith("api:"):
                response["Access-Control-Allow-Origin"] = "*"  # as Statuspage: dashboards read it cross-origin
            return response

        return wrapper

    return decorator
