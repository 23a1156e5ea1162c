"""Whether a user may sign in with a password (C28: enforce-SSO mode)."""

from __future__ import annotations

from governance.sso.models import SSOConfiguration


def password_login_allowed(user) -> bool:
    """False for members of an organisation that requires single sign-on (enabled and enforced).

    Staff (no membership) and members of every other organisation keep their passwords.
    A disabled configuration never blocks passwords, so switching single sign-on off in
    the admin is the way back in when a provider breaks.
    """
    membership = getattr(user, "membership", None)
    if membership is None:
        return True
    return (
        not SSOConfiguration.objects.with_scopes_disabled()
        .filter(organisation_id=membership.organisation_id, enabled=True, enforce_sso=True)
        .exists()
    )


# Set by the single sign-on callback on the sessions it starts (governance/sso/views.py).
SESSION_SSO_ORGANISATION = "sso_organisation_id"


def session_allowed(request, user) -> bool:
    """False for a session that did not come through single sign-on of the user's organisation
    while that organisation requires it, e.g. a password session from before enforcement.

    For a per-request check (the organisation security middleware): requiring single
    sign-on then also ends sessions that were opened with a password before.
    """
    membership = getattr(user, "membership", None)
    if membership is None or password_login_allowed(user):
        return True
    return request.session.get(SESSION_SSO_ORGANISATION) == membership.organisation_id
