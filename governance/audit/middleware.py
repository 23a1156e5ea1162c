from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from ipware import get_client_ip

from governance.audit.context import current_ip


class AuditContextMiddleware:
    """Remembers the client IP (proxy-aware, as configured for axes) for audit events."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from django.conf import settings

        ip, _ = get_client_ip(
            request,
            proxy_count=settings.AXES_IPWARE_PROXY_COUNT,
            request_header_order=settings.AXES_IPWARE_META_PRECEDENCE_ORDER,
        )
        token = current_ip.set(ip)
        try:
            return self.get_response(request)
        finally:
            current_ip.reset(token)
