from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_scopes import scope, scopes_disabled


class TenantScopeMiddleware:
    """Activates the tenant scope for the whole request (C09).

    * A customer (a user with a membership) gets `scope(organisation=<their org>)`:
      every scoped manager then filters to that organisation, whatever a view asks.
    * Active staff get scopes disabled: they work across organisations, and their
      access to customer data is governed by object permissions instead (C02).
    * Anyone else, and every request to a public path (PUBLIC_PATH_PREFIXES), gets no
      scope: any query on a scoped model raises ScopeError, so a public view cannot read
      tenant data by accident.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(settings.PUBLIC_PATH_PREFIXES):
            # Public pages never read tenant data and must not depend on who asks: not
            # even touching request.user keeps the session unread, so responses carry no
            # `Vary: Cookie` and shared caches can serve them to everyone.
            request.organisation = None
            return self.get_response(request)
        user = request.user
        request.organisation = None
        if user.is_authenticated and user.is_active:
            membership = getattr(user, "membership", None)
            if membership is not None:
                request.organisation = membership.organisation
                # The id, not the instance: it must filter both `pk` and `organisation` lookups.
                with scope(organisation=membership.organisation_id):
                    return self.get_response(request)
            if user.is_staff:
                with scopes_disabled():
                    return self.get_response(request)
        return self.get_response(request)
