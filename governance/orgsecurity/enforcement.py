"""The one place the organisation security settings are applied to a request (C28).

`check_request(request, user)` is called by `OrgSecurityMiddleware` on every request of
a customer user, and is meant for the integration API too, so a customer token obeys
the same IP allowlist. It only decides; the caller turns a `Refusal` into a response
(the portal: 403 page, sign-out or redirect to the two-factor pages; an API: 401/403).

Session rules (revocation, lifetime, idle time, two-factor) apply to session sign-ins
only: a request authenticated by an API token carries no session, and the API issues
tokens only to signed-in (and, where required, two-factor verified) users.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.contrib.auth import SESSION_KEY
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_scopes import scopes_disabled

from governance.orgsecurity.models import OrganisationSecurityPolicy, UserSessionRevocation
from governance.orgsecurity.netaddr import client_ip, ip_allowed
from governance.orgsecurity.services import has_confirmed_device

# Session keys (epoch seconds). Set at sign-in by governance/orgsecurity/receivers.py.
SESSION_AUTH_AT = "orgsec_auth_at"  # when the user signed in: absolute lifetime
SESSION_VALID_FROM = "orgsec_valid_from"  # compared with "sign out all sessions" moments
SESSION_SEEN_AT = "orgsec_seen_at"  # last request: idle timeout
SESSION_HAS_DEVICE = "orgsec_has_device"  # had a confirmed authenticator at sign-in
# The last-seen time is written at most this often (a session write per request would
# cost a database write per page view); idle timeouts are therefore exact to a minute.
SEEN_RESOLUTION_SECONDS = 60

IP_NOT_ALLOWED = "ip_not_allowed"
SESSION_REVOKED = "session_revoked"
SESSION_LIFETIME = "session_lifetime"
SESSION_IDLE = "session_idle"
TWO_FACTOR_ENROL = "two_factor_enrol"
TWO_FACTOR_VERIFY = "two_factor_verify"
TWO_FACTOR_CODES = (TWO_FACTOR_ENROL, TWO_FACTOR_VERIFY)


@dataclass(frozen=True)
class Refusal:
    """Why a request of a customer user may not proceed, and what should happen instead."""

    code: str
    message: str
    status: int  # for an API: 403 (address), 401 (session ended or second factor missing)
    sign_out: bool = False  # end the session (it may not continue at all)
    redirect_to: str = ""  # portal page that resolves it (two-factor enrolment or check)


@cache
def _sql() -> tuple[str, str]:
    # Hand-written SQL on purpose: this runs on every customer request, and building the
    # equivalent ORM query cost about five times as much as running it (0.4 ms against
    # 2.1 ms per check on the 2-core CI machine under load; see the README).
    qn = connection.ops.quote_name
    policy = f"SELECT * FROM {qn(OrganisationSecurityPolicy._meta.db_table)} WHERE organisation_id = %s"  # noqa: S608
    revocation = (
        f"SELECT id, user_id, organisation_id, revoked_at FROM {qn(UserSessionRevocation._meta.db_table)} "  # noqa: S608
        "WHERE user_id = %s AND organisation_id = %s"
    )
    return policy, revocation


def _load_policy(request, organisation_id: int) -> OrganisationSecurityPolicy:
    """The organisation's policy (an unsaved default when it has none); memoised per request."""
    cached = getattr(request, "_orgsec_policy", None)
    if cached is not None and cached.organisation_id == organisation_id:
        return cached
    # Filtered explicitly; the API (and the sign-in request) may call this outside a tenant scope.
    with scopes_disabled():
        rows = list(OrganisationSecurityPolicy.objects.raw(_sql()[0], [organisation_id]))
    policy = rows[0] if rows else OrganisationSecurityPolicy(organisation_id=organisation_id)
    request._orgsec_policy = policy
    return policy


def _user_revoked_at(policy: OrganisationSecurityPolicy, user_id: int):
    """When this user's sessions were last signed out one by one (None: never)."""
    if policy.pk is None:
        return None  # signing a member out creates the policy row first
    with scopes_disabled():
        rows = list(UserSessionRevocation.objects.raw(_sql()[1], [user_id, policy.organisation_id]))
    return rows[0].revoked_at if rows else None


def _session_signed_in(request) -> bool:
    session = getattr(request, "session", None)
    return session is not None and session.get(SESSION_KEY) is not None


def check_request(request, user) -> Refusal | None:
    """Apply the user's organisation's security settings to this request; None = go ahead."""
    membership = getattr(user, "membership", None) if getattr(user, "is_authenticated", False) else None
    if membership is None:
        return None  # staff and anonymous requests: not governed by a customer's settings
    policy = _load_policy(request, membership.organisation_id)

    if policy.ip_allowlist and not ip_allowed(client_ip(request), policy.ip_allowlist):
        return Refusal(
            IP_NOT_ALLOWED,
            "Your organisation allows access to the portal only from its own network addresses, "
            "and this request came from elsewhere.",
            403,
        )
    if not _session_signed_in(request):
        return None

    session = request.session
    now = timezone.now().timestamp()
    auth_at = session.get(SESSION_AUTH_AT)
    if auth_at is None:  # a session from before these settings existed: starts counting now
        auth_at = now
        session[SESSION_AUTH_AT] = session[SESSION_VALID_FROM] = session[SESSION_SEEN_AT] = now
    valid_from = session.get(SESSION_VALID_FROM, auth_at)
    for cutoff in (policy.sessions_revoked_at, _user_revoked_at(policy, user.pk)):
        if cutoff is not None and valid_from < cutoff.timestamp():
            return Refusal(SESSION_REVOKED, "Your organisation signed out this session. Sign in again.", 401, True)
    if policy.session_lifetime_hours and now - auth_at > policy.session_lifetime_hours * 3600:
        return Refusal(
            SESSION_LIFETIME,
            f"Your organisation limits a session to {policy.session_lifetime_hours} hour(s). Sign in again.",
            401,
            True,
        )
    seen_at = session.get(SESSION_SEEN_AT, auth_at)
    if policy.idle_timeout_minutes and now - seen_at > policy.idle_timeout_minutes * 60:
        return Refusal(
            SESSION_IDLE,
            f"You were signed out after {policy.idle_timeout_minutes} minutes without activity.",
            401,
            True,
        )

    is_verified = getattr(user, "is_verified", None)
    if not (callable(is_verified) and is_verified()):
        if policy.two_factor == OrganisationSecurityPolicy.TwoFactor.REQUIRED:
            if has_confirmed_device(user):
                return Refusal(
                    TWO_FACTOR_VERIFY,
                    "Enter the code from your authenticator app.",
                    401,
                    redirect_to=reverse("portal:two_factor_verify"),
                )
            return Refusal(
                TWO_FACTOR_ENROL,
                "Your organisation requires two-factor sign-in. Set up an authenticator app to continue.",
                401,
                redirect_to=reverse("portal:two_factor_setup"),
            )
        if session.get(SESSION_HAS_DEVICE):
            # Whoever set up a second factor uses it, even where the organisation leaves it optional.
            return Refusal(
                TWO_FACTOR_VERIFY,
                "Enter the code from your authenticator app.",
                401,
                redirect_to=reverse("portal:two_factor_verify"),
            )
    return None


def touch_session(request) -> None:
    """Remember this request for the idle timeout (at most once a minute)."""
    if not _session_signed_in(request):
        return
    now = timezone.now().timestamp()
    if now - request.session.get(SESSION_SEEN_AT, 0) >= SEEN_RESOLUTION_SECONDS:
        request.session[SESSION_SEEN_AT] = now


def stamp_new_session(request, *, has_device: bool) -> None:
    """Called at sign-in: the moments the session policy counts from."""
    now = timezone.now().timestamp()
    request.session[SESSION_AUTH_AT] = now
    request.session[SESSION_VALID_FROM] = now
    request.session[SESSION_SEEN_AT] = now
    request.session[SESSION_HAS_DEVICE] = has_device


def keep_current_session(request) -> None:
    """After "sign out everyone", the admin who asked stays signed in (their session is re-validated)."""
    # Strictly later than the revocation moment stored a moment ago.
    request.session[SESSION_VALID_FROM] = timezone.now().timestamp() + 0.001
