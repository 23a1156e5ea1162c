"""Bearer-token authentication and scope checks for /api/v1/."""

from __future__ import annotations

import hmac

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from governance.api import scopes as api_scopes
from governance.api.models import ApiToken
from governance.api.services import hash_secret, split_token
from governance.tenancy.models import Membership, Organisation

INVALID = "The token is not valid."


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer asy_xxxxxxxx_<secret>`. Returns (acting user, ApiToken).

    One query: the token with its user, the user's membership and the organisation.
    The hash is compared in constant time. A token whose user was deactivated, whose
    service account lost its staff flag, or whose customer admin left the organisation
    or stopped being its admin is refused like a revoked one.
    """

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw:
            raise exceptions.AuthenticationFailed("Send the token as 'Authorization: Bearer <token>'.")
        parts = split_token(raw)
        if parts is None:
            raise exceptions.AuthenticationFailed(INVALID)
        prefix, whole = parts
        token = (
            ApiToken.objects.with_scopes_disabled()
            .select_related("user", "user__membership", "organisation", "user__service_account")
            .filter(prefix=prefix)
            .first()
        )
        if token is None or not hmac.compare_digest(token.secret_hash, hash_secret(whole)):
            raise exceptions.AuthenticationFailed(INVALID)
        # The caller holds the secret from here on, so telling them why is safe.
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token was revoked.")
        if token.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed("This token has expired.")
        user = token.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed("The account of this token is deactivated.")
        if token.kind == ApiToken.Kind.STAFF:
            if not user.is_staff or getattr(user, "service_account", None) is None:
                raise exceptions.AuthenticationFailed("This token's account is no longer a service account.")
        else:
            membership = getattr(user, "membership", None)
            if (
                membership is None
                or membership.organisation_id != token.organisation_id
                or membership.role != Membership.Role.ADMIN
            ):
                raise exceptions.AuthenticationFailed("The customer admin who created this token no longer is one.")
            if token.organisation.status != Organisation.Status.ACTIVE:
                raise exceptions.AuthenticationFailed("This organisation's account has ended.")
        return user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class ScopeMissing(exceptions.PermissionDenied):
    default_code = "scope_missing"


class TokenHasScope(BasePermission):
    """The view's `required_scopes[method]` must be on the token, and for a staff token
    the service account must still hold the scope's permission (C25)."""

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return False  # -> 401 (authenticate_header makes it so)
        method = "GET" if request.method == "HEAD" else request.method  # HEAD runs the GET handler
        needed = view.required_scopes.get(method)
        if needed is None:
            return True  # OPTIONS: only describes the view; unknown methods get 405 from the view
        if needed not in token.scopes:
            raise ScopeMissing(f"This token does not have the scope '{needed}'.")
        if token.kind == ApiToken.Kind.STAFF and api_scopes.missing_permissions(request.user, [needed]):
            raise ScopeMissing(f"The service account no longer has the permissions behind '{needed}'.")
        if token.kind == ApiToken.Kind.CUSTOMER and not api_scopes.BY_NAME[needed].customer:
            raise ScopeMissing(f"Organisation tokens cannot use '{needed}'.")
        return True
