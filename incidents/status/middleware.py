"""Serving the public status outputs from this process's memory.

Placed right after WhiteNoise: a request for a status page or JSON document whose
finished response this process already holds for the current version is answered
here, before sessions, CSRF, authentication, URL resolution or the view, which is what
brings the page close to the cost of a static file (README "Performance"). Only
responses the `public_cached` views marked are kept, and only those without cookies
or `Vary: Cookie`: nothing about a visitor can be replayed to another.

A key holds the version (the ETag), so an entry can never be stale: a change makes a
new key, and the old entries age out of the bounded LRU.

Each held response is also kept gzipped (once per version and process), for clients
that accept it: the 81 KB page travels as about 10 KB. These pages carry no secret, so
compression cannot leak one (BREACH needs a secret and attacker input in one body). The
gzipped variant has its own ETag (`...-gzip"`), and every variant says
`Vary: Accept-Encoding`, so shared caches keep them apart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.middleware.gzip import re_accepts_gzip
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import parse_http_date_safe
from django.utils.text import compress_string

from incidents.status.cache import request_etag

PREFIXES = ("/status/", "/api/v2/")
MAX_BYTES = 8 * 1024 * 1024
# Headers of the stored response that are replayed (Date is the server's; cookies are never stored).
SKIP_HEADERS = frozenset({"date", "set-cookie"})
MIN_GZIP_BYTES = 512  # smaller bodies gain nothing worth a second copy


@dataclass(frozen=True)
class _Held:
    status: int
    headers: dict[str, str]
    body: bytes
    gzipped: bytes | None  # None: not worth compressing

    @property
    def size(self) -> int:
        return len(self.body) + len(self.gzipped or b"")

    @classmethod
    def of(cls, response: HttpResponse) -> _Held:
        headers = {k: v for k, v in response.items() if k.lower() not in SKIP_HEADERS}
        body = response.content
        gzipped = compress_string(body) if len(body) >= MIN_GZIP_BYTES else None
        if gzipped is not None and len(gzipped) >= len(body):
            gzipped = None
        return cls(response.status_code, headers, body, gzipped)

    def response_for(self, request: HttpRequest) -> HttpResponse:
        if self.gzipped is not None and re_accepts_gzip.search(request.META.get("HTTP_ACCEPT_ENCODING", "")):
            etag = self.headers.get("ETag", "")
            headers = {
                **self.headers,
                "Content-Encoding": "gzip",
                "Content-Length": str(len(self.gzipped)),
                **({"ETag": etag[:-1] + '-gzip"'} if etag.endswith('"') else {}),
            }
            return HttpResponse(self.gzipped, status=self.status, headers=headers)
        return HttpResponse(self.body, status=self.status, headers=self.headers)


class _Store:
    """A byte-bounded LRU of finished responses, shared by the threads of one process."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, _Held] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple):
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple, item: _Held) -> None:
        with self._lock:
            if key in self._items or item.size > self.max_bytes // 4:
                return
            self._items[key] = item
            self._bytes += item.size
            while self._bytes > self.max_bytes:
                _, oldest = self._items.popitem(last=False)
                self._bytes -= oldest.size

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
                patch_vary_headers(response, ("Accept-Encoding",))
                store.put(key, _Held.of(response))
            return response
        response = item.response_for(request)
        if "HTTP_IF_NONE_MATCH" not in request.META and "HTTP_IF_MODIFIED_SINCE" not in request.META:
            return response
        return get_conditional_response(
            request,
            etag=response.get("ETag"),
            last_modified=parse_http_date_safe(response.get("Last-Modified", "")),
            response=response,
        )
