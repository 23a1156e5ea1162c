"""Sign-in facts of customer users, attributed to their organisation's own audit log (C28).

The audit app's receivers record every sign-in without an organisation; these add the
organisation-attributed events its customer admin sees, and stamp the session with the
moments the session policy counts from.
"""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from governance.access.models import User
from governance.audit.services import audit_record
from governance.orgsecurity import enforcement, services


def _membership(user):
    return getattr(user, "membership", None) if user is not None and not user.is_staff else None


@receiver(user_logged_in, dispatch_uid="orgsecurity-login")
def _customer_logged_in(sender, request, user, **kwargs) -> None:
    membership = _membership(user)
    if membership is None:
        return
    if request is not None and hasattr(request, "session"):
        enforcement.stamp_new_session(request, has_device=services.has_confirmed_device(user))
    audit_record(action="orgsecurity.login", actor=user, obj=user, organisation_id=membership.organisation_id)


@receiver(user_logged_out, dispatch_uid="orgsecurity-logout")
def _customer_logged_out(sender, request, user, **kwargs) -> None:
    membership = _membership(user)
    if membership is None:
        return
    reason = getattr(request, "_orgsec_logout_reason", "") if request is not None else ""
    audit_record(
        action="orgsecurity.logout",
        actor=user,
        obj=user,
        organisation_id=membership.organisation_id,
        data={"reason": reason or "signed out"},
    )


@receiver(user_login_failed, dispatch_uid="orgsecurity-login-failed")
def _customer_login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))[:150]
    if not username:
        return
    # Through the user table: a join, not the tenant-scoped membership manager (no scope
    # is active while someone signs in).
    organisation_id = (
        User.objects.filter(username=username, is_staff=False)
        .values_list("membership__organisation_id", flat=True)
        .first()
    )
    if organisation_id is None:
        return
    audit_record(
        action="orgsecurity.login_failed",
        actor_repr=username,
        organisation_id=organisation_id,
        data={"username": username},
    )
