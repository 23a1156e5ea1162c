from __future__ import annotations

from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from governance.orgsecurity import enforcement, services
from governance.orgsecurity.netaddr import client_ip


@cache
def _paths() -> dict[str, str]:
    return {
        "logout": reverse("portal:logout"),
        "setup": reverse("portal:two_factor_setup"),
        "verify": reverse("portal:two_factor_verify"),
    }


class OrgSecurityMiddleware:
    """Applies each organisation's own security settings to every request of its users (C28).

    Runs after authentication, the tenant middleware (it needs `request.organisation`)
    and messages. Staff, anonymous and public-path requests pass untouched. Sign-out
    is always allowed; the two-factor pages are reachable while two-factor is pending,
    and nothing else is.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(settings.PUBLIC_PATH_PREFIXES):
            return self.get_response(request)
        was_signed_in = request.user.is_authenticated
        if getattr(request, "organisation", None) is not None:
            refused = self._enforce(request)
            if refused is not None:
                return refused
        response = self.get_response(request)
        if not was_signed_in and request.user.is_authenticated:
            # This request signed someone in: an address outside their organisation's
            # allowlist must not leave a session behind.
            refusal = enforcement.check_request(request, request.user)
            if refusal is not None and refusal.code == enforcement.IP_NOT_ALLOWED:
                return self._refuse_address(request, refusal, sign_out=True)
        return response

    def _enforce(self, request: HttpRequest) -> HttpResponse | None:
        paths = _paths()
        if request.path_info == paths["logout"]:
            return None
        refusal = enforcement.check_request(request, request.user)
        if refusal is None:
            enforcement.touch_session(request)
            return None
        if refusal.code == enforcement.IP_NOT_ALLOWED:
            return self._refuse_address(request, refusal, sign_out=False)
        if refusal.sign_out:
            request._orgsec_logout_reason = refusal.code
            logout(request)
            messages.info(request, refusal.message)
            return redirect_to_login(request.get_full_path())
        if refusal.code in enforcement.TWO_FACTOR_CODES:
            if request.path_info in (paths["setup"], paths["verify"]):
                request.orgsec_two_factor_pending = True  # the base template hides the navigation
                return None
            enforcement.touch_session(request)
            target = refusal.redirect_to
            if request.method == "GET":
                target += "?" + urlencode({"next": request.get_full_path()})
            return redirect(target)
        raise PermissionDenied(refusal.message)  # a kind this middleware does not know: fail closed

    def _refuse_address(self, request: HttpRequest, refusal, *, sign_out: bool) -> HttpResponse:
        user = request.user
        session = getattr(request, "session", None)
        signed_in = session is not None and session.session_key
        services.ip_refused_record(
            user=user,
            organisation_id=user.membership.organisation_id,
            ip=client_ip(request),
            path=request.path,
            # A refused write is worth its own event beside the refused reads of the same page.
            repeat_key=f"session:{session.session_key}:{request.method}" if signed_in else "",
        )
        if sign_out:
            request._orgsec_logout_reason = refusal.code
            logout(request)
        return render(
            request,
            "portal/security/refused.html",
            {"message": refusal.message, "ip": client_ip(request)},
            status=403,
        )
