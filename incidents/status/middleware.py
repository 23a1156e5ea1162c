"""Serving the public status outputs from this process's memory.

Placed right after WhiteNoise: a request for a status page or JSON document whose
finished response this process already holds for the current version is answered
here, before sessions, CSRF, authentication, URL resolution or the view, which is what
brings the page close to the cost of a static file (README "Performance"). Only
responses the `public_cached` views marked are kept, and only those without cookies
or `Vary: Cookie`: nothing about a visitor can be replayed to another.

A key holds the version (the ETag), so an entry can never be stale: a change makes a
new key, and the old entries age out of the bounded LRU.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import get_conditional_response
from django.utils.http import parse_http_date_safe

from incidents.status.cache import request_etag

PREFIXES = ("/status/", "/api/v2/")
MAX_BYTES = 8 * 1024 * 1024
# Headers of the stored response that are replayed (Date is the server's; cookies are never stored).
SKIP_HEADERS = frozenset({"date", "set-cookie"})


class _Store:
    """A byte-bounded LRU of finished responses, shared by the threads of one process."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[int, dict[str, str], bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple):
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple, item: tuple[int, dict[str, str], bytes]) -> None:
        size = len(item[2])
        with self._lock:
            if key in self._items or size > self.max_bytes // 4:
                return
            self._items[key] = item
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, _, body) = self._items.popitem(last=False)
                self._bytes -= len(body)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


store = _Store(MAX_BYTES)


def _storable(response: HttpResponse) -> bool:
    return (
        getattr(response, "public_cacheable", False)
        and response.status_code == 200
        and not response.cookies
        and "cookie" not in response.get("Vary", "").lower()
        and not response.streaming
    )


class PublicResponseCacheMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD") or not request.path_info.startswith(PREFIXES):
            return self.get_response(request)
        # The query string is not part of the key: the views ignore it (their shared-cache key
        # has none either), and random query strings must not crowd real entries out.
        key = (request.get_host(), request.path, request_etag(request))
        item = store.get(key)
        if item is None:
            response = self.get_response(request)
            if request.method == "GET" and _storable(response):
                headers = {k: v for k, v in response.items() if k.lower() not in SKIP_HEADERS}
                store.put(key, (response.status_code, headers, response.content))
            return response
        status, headers, body = item
        response = HttpResponse(body, status=status, headers=headers)
        if "HTTP_IF_NONE_MATCH" not in request.META and "HTTP_IF_MODIFIED_SINCE" not in request.META:
            return response
        return get_conditional_response(
            request,
            etag=response.get("ETag"),
            last_modified=parse_http_date_safe(response.get("Last-Modified", "")),
            response=response,
        )
