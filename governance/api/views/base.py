"""The base of every /api/v1/ view: token authentication, scopes, the organisation's IP
allowlist for organisation tokens, the tenant scope, rate limit and one audit event per call."""

from __future__ import annotations

from contextlib import ExitStack

from django.utils import timezone
from django_scopes import scope, scopes_disabled
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView

from governance.api import services
from governance.api.auth import ApiTokenAuthentication, TokenHasScope
from governance.api.idempotency import idempotent
from governance.api.models import ApiToken
from governance.api.pagination import MAX_ID
from governance.api.throttling import TokenRateThrottle, first_refusal_in_window
from governance.audit.services import audit_record
from governance.orgsecurity import enforcement
from governance.orgsecurity.netaddr import client_ip
from governance.orgsecurity.services import ip_refused_record


class JsonOnly(BaseContentNegotiation):
    """The API speaks JSON only, whatever Accept says (no 406 to surprise clients)."""

    def select_parser(self, request, parsers):
        for parser in parsers:
            if parser.media_type == request.content_type.split(";")[0].strip():
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class IpNotAllowed(exceptions.PermissionDenied):
    default_code = "ip_not_allowed"


class ApiView(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [TokenHasScope]
    throttle_classes = [TokenRateThrottle]
    content_negotiation_class = JsonOnly
    required_scopes: dict[str, str] = {}

    def dispatch(self, request, *args, **kwargs):
        # DRF puts the token's user on the Django request too; the middleware after the
        # view must still see the session's (anonymous) user, or it would treat the call
        # as a fresh portal sign-in.
        session_user = request.user
        try:
            with ExitStack() as stack:
                self._stack = stack
                return super().dispatch(request, *args, **kwargs)
        finally:
            request.user = session_user

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, scope, rate limit
        for name, value in kwargs.items():
            # Path ids beyond the database's integer range cannot exist (and must not reach it).
            if name.endswith("pk") and int(value) > MAX_ID:
                raise exceptions.NotFound()
        token: ApiToken = request.auth
        services.token_touch(token, timezone.now())
        if token.kind == ApiToken.Kind.CUSTOMER:
            # The organisation's own network rule binds its tokens as it binds its people (C28).
            refusal = enforcement.check_request(request._request, request.user)
            if refusal is not None and refusal.code == enforcement.IP_NOT_ALLOWED:
                ip_refused_record(
                    user=request.user,
                    organisation_id=token.organisation_id,
                    ip=client_ip(request),
                    path=request.path,
                    repeat_key=f"token:{token.prefix}",
                )
                raise IpNotAllowed(refusal.message)
            # Customer tokens see their organisation only, exactly like the portal (C09).
            self._stack.enter_context(scope(organisation=token.organisation_id))
        else:
            # Service accounts follow the staff policy: across organisations, no customer data.
            self._stack.enter_context(scopes_disabled())

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        token = request.auth if isinstance(getattr(request, "auth", None), ApiToken) else None
        if token is not None:
            self._audit(request, response, token)
        return response

    def _audit(self, request, response, token: ApiToken) -> None:
        """One audit event per call, naming the token (C25). A refused (429) call is
        recorded once per window, so a runaway client cannot flood the trail."""
        action = "api.call"
        if response.status_code == 429:
            window = getattr(request, "rate_limit", (0, 0, 0))[2]
            if not first_refusal_in_window(token, window):
                return
            action = "api.rate_limited"
        # audit_record runs in its own transaction (one savepoint, or one short transaction).
        audit_record(
            action=action,
            actor=token.user,
            obj=token,
            organisation_id=token.organisation_id,
            actor_repr=f"{token.user.get_username()} (token {token.prefix})",
            data={
                "token": token.pk,
                "method": request.method,
                "path": request.path[:200],
                "status": response.status_code,
                **({"replayed": True} if response.get("Idempotent-Replayed") else {}),
            },
        )

    # helpers for subclasses

    def idempotent(self, request, create):
        return idempotent(request, request.auth, create)

    @property
    def token(self) -> ApiToken:
        return self.request.auth

    @property
    def is_customer(self) -> bool:
        return self.request.auth.kind == ApiToken.Kind.CUSTOMER
