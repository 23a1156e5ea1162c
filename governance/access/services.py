"""Support access: requests, the two decisions, grants, revocation, expiry, the access log.

Every state change is one function here, called the same way from the admin, the
customer portal, Celery tasks and tests. Each runs in a transaction, checks its rule,
saves with `update_fields` and writes its audit event in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from governance.access.models import (
    AccessLogEntry,
    DataScope,
    ReasonType,
    SupportAccessPolicy,
    SupportAccessRequest,
    SupportGrant,
    User,
)
from governance.access.roles import SECURITY_OFFICER, SUPPORT_ENGINEER
from governance.audit.services import audit_record
from governance.tenancy.models import Membership, Organisation

Status = SupportAccessRequest.Status
Decision = SupportAccessRequest.Decision
GRANT_PERMISSION = "tenancy.view_customer_data"

# Bounds within which a customer may set its own limits.
MAX_GRANT_HOURS_LIMIT = 72
DECISION_TIMEOUT_LIMITS = (1, 72)
# How far ahead a request may ask to start.
MAX_START_AHEAD = timedelta(days=30)
# Grace for a start time a few minutes in the past (the form took a while to fill in).
START_GRACE = timedelta(minutes=15)


# --- who is who ---------------------------------------------------------------------------


def _in_group(user: User, name: str) -> bool:
    return user.is_active and user.is_staff and any(g.name == name for g in user.groups.all())


def is_support_staff(user: User) -> bool:
    return _in_group(user, SUPPORT_ENGINEER)


def is_internal_approver(user: User) -> bool:
    return _in_group(user, SECURITY_OFFICER) and user.has_perm("access.decide_internal")


def is_customer_admin(user: User, organisation: Organisation) -> bool:
    membership = getattr(user, "membership", None)
    return (
        user.is_active
        and membership is not None
        and membership.organisation_id == organisation.pk
        and membership.role == Membership.Role.ADMIN
    )


def eligible_staff():
    """The roster: staff who may be named on a request today."""
    return User.objects.filter(is_active=True, is_staff=True, groups__name=SUPPORT_ENGINEER).order_by("username")


def max_named_staff() -> int:
    return settings.SUPPORT_ACCESS_MAX_NAMED_STAFF


# --- customer limits ------------------------------------------------------------------------


def support_policy_for(organisation: Organisation) -> SupportAccessPolicy:
    policy, _ = SupportAccessPolicy.objects.with_scopes_disabled().get_or_create(organisation=organisation)
    return policy


def support_policy_update(
    *,
    organisation: Organisation,
    acting_user: User,
    max_grant_hours: int,
    decision_timeout_hours: int,
    accepted_reason_types: Iterable[str],
) -> SupportAccessPolicy:
    """A customer admin sets its organisation's limits on support access."""
    if not is_customer_admin(acting_user, organisation):
        raise PermissionDenied("Only a customer admin of this organisation can change its limits.")
    errors = {}
    if not 1 <= max_grant_hours <= MAX_GRANT_HOURS_LIMIT:
        errors["max_grant_hours"] = f"Choose between 1 and {MAX_GRANT_HOURS_LIMIT} hours."
    low, high = DECISION_TIMEOUT_LIMITS
    if not low <= decision_timeout_hours <= high:
        errors["decision_timeout_hours"] = f"Choose between {low} and {high} hours."
    reasons = sorted(set(accepted_reason_types))
    if unknown := set(reasons) - set(ReasonType.values):
        errors["accepted_reason_types"] = f"Unknown reason types: {', '.join(sorted(unknown))}."
    elif not reasons:
        errors["accepted_reason_types"] = (
            "Accept at least one reason type (refusing all would block incident response)."
        )
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        policy = support_policy_for(organisation)
        before = {
            "max_grant_hours": policy.max_grant_hours,
            "decision_timeout_hours": policy.decision_timeout_hours,
            "accepted_reason_types": policy.accepted_reason_types,
        }
        policy.max_grant_hours = max_grant_hours
        policy.decision_timeout_hours = decision_timeout_hours
        policy.accepted_reason_types = reasons
        policy.save(update_fields=["max_grant_hours", "decision_timeout_hours", "accepted_reason_types", "updated_at"])
        audit_record(
            action="support_access.limits_changed",
            actor=acting_user,
            obj=organisation,
            data={"before": before, "after": {**before, **_policy_dict(policy)}},
        )
    return policy


def _policy_dict(policy: SupportAccessPolicy) -> dict:
    return {
        "max_grant_hours": policy.max_grant_hours,
        "decision_timeout_hours": policy.decision_timeout_hours,
        "accepted_reason_types": policy.accepted_reason_types,
    }


# --- requests -----------------------------------------------------------------------------------


def support_request_create(
    *,
    organisation: Organisation,
    requester: User,
    reason_type: str,
    ticket_reference: str,
    justification: str,
    scope: Iterable[str],
    requested_start: datetime,
    requested_duration: timedelta,
    named_staff: Iterable[User],
) -> SupportAccessRequest:
    """A support engineer asks for time-boxed access to one organisation's data (C03, C04)."""
    if not is_support_staff(requester):
        raise PermissionDenied("Only support engineers can request access to customer data.")
    now = timezone.now()
    named = list({u.pk: u for u in named_staff}.values())
    scope = sorted(set(scope))
    policy = support_policy_for(organisation)
    errors: dict[str, str] = {}
    if organisation.status != Organisation.Status.ACTIVE:
        errors["organisation"] = "This organisation is not active."
    if reason_type not in ReasonType.values:
        errors["reason_type"] = "Choose a reason type."
    elif not policy.accepts(reason_type):
        errors["reason_type"] = f"{organisation} does not accept requests for {ReasonType(reason_type).label.lower()}."
    if not ticket_reference.strip():
        errors["ticket_reference"] = "Give the support ticket this request is for."
    if len(justification.strip()) < 20:
        errors["justification"] = "Explain why access is needed (at least 20 characters)."
    if not scope or set(scope) - set(DataScope.values):
        errors["scope"] = "Choose which kinds of customer data are needed."
    if requested_duration <= timedelta(0):
        errors["requested_duration"] = "The duration must be positive."
    elif requested_duration > timedelta(hours=policy.max_grant_hours):
        errors["requested_duration"] = f"{organisation} accepts grants of at most {policy.max_grant_hours} hours."
    if requested_start < now - START_GRACE:
        errors["requested_start"] = "The start cannot be in the past."
    elif requested_start > now + MAX_START_AHEAD:
        errors["requested_start"] = "The start can be at most 30 days ahead."
    if not named:
        errors["named_staff"] = "Name the staff who will act."
    elif len(named) > max_named_staff():
        errors["named_staff"] = f"Name at most {max_named_staff()} people (need-to-know)."
    elif not all(is_support_staff(u) for u in named):
        errors["named_staff"] = "Only active support engineers can be named."
    if errors:
        raise ValidationError(errors)

    with transaction.atomic():
        request = SupportAccessRequest.objects.with_scopes_disabled().create(
            organisation=organisation,
            requester=requester,
            reason_type=reason_type,
            ticket_reference=ticket_reference.strip(),
            justification=justification.strip(),
            scope=scope,
            requested_start=max(requested_start, now),
            requested_duration=requested_duration,
            decision_deadline=now + timedelta(hours=policy.decision_timeout_hours),
        )
        request.named_staff.set(named)
        audit_record(
            action="support_access.requested",
            actor=requester,
            obj=request,
            data={
                "reason_type": reason_type,
                "ticket": request.ticket_reference,
                "scope": scope,
                "named_staff": [u.username for u in named],
                "start": request.requested_start,
                "duration_seconds": int(requested_duration.total_seconds()),
            },
        )
        _notify_on_commit("requested", request.pk)
    return request


def _lock(request: SupportAccessRequest) -> SupportAccessRequest:
    return SupportAccessRequest.objects.with_scopes_disabled().select_for_update().get(pk=request.pk)


def support_request_decide_internal(
    *, request: SupportAccessRequest, acting_user: User, approve: bool, reason: str = ""
) -> SupportAccessRequest:
    """The internal approval (a security officer who is neither requester nor named actor)."""
    if not is_internal_approver(acting_user):
        raise PermissionDenied("Only a security officer can give the internal approval.")
    return _decide(request=request, side="internal", acting_user=acting_user, approve=approve, reason=reason)


def support_request_decide_customer(
    *, request: SupportAccessRequest, acting_user: User, approve: bool, reason: str = ""
) -> SupportAccessRequest:
    """The customer's consent (C03): a customer admin of the organisation decides."""
    if not is_customer_admin(acting_user, request.organisation):
        raise PermissionDenied("Only a customer admin of this organisation can consent.")
    return _decide(request=request, side="customer", acting_user=acting_user, approve=approve, reason=reason)


def _decide(
    *, request: SupportAccessRequest, side: str, acting_user: User, approve: bool, reason: str
) -> SupportAccessRequest:
    now = timezone.now()
    with transaction.atomic():
        request = _lock(request)
        if request.status != Status.PENDING:
            raise ValidationError(f"This request is already {request.get_status_display().lower()}.")
        if now >= request.decision_deadline:
            raise ValidationError("The decision deadline has passed; the request has expired.")
        if getattr(request, f"{side}_decision") != Decision.PENDING:
            raise ValidationError("This decision has already been given.")
        if side == "internal" and (
            acting_user.pk == request.requester_id or request.named_staff.filter(pk=acting_user.pk).exists()
        ):
            raise PermissionDenied("The requester and the named staff cannot approve their own access.")
        if not approve and not reason.strip():
            raise ValidationError({"reason": "Say why the request is denied."})
        fields = {
            f"{side}_decision": Decision.APPROVED if approve else Decision.DENIED,
            f"{side}_decided_by": acting_user,
            f"{side}_decided_at": now,
            f"{side}_reason": reason.strip(),
        }
        for name, value in fields.items():
            setattr(request, name, value)
        request.save(update_fields=list(fields))
        audit_record(
            action=f"support_access.{side}_{'approved' if approve else 'denied'}",
            actor=acting_user,
            obj=request,
            data={"reason": reason.strip()},
        )
        _settle(request, now)
    return request


def support_request_cancel(*, request: SupportAccessRequest, acting_user: User) -> SupportAccessRequest:
    if acting_user.pk != request.requester_id and not is_internal_approver(acting_user):
        raise PermissionDenied("Only the requester or a security officer can cancel a request.")
    now = timezone.now()
    with transaction.atomic():
        request = _lock(request)
        if request.status != Status.PENDING:
            raise ValidationError(f"This request is already {request.get_status_display().lower()}.")
        _close(request, Status.CANCELLED, now)
        audit_record(action="support_access.cancelled", actor=acting_user, obj=request)
    return request


def _close(request: SupportAccessRequest, status: str, now: datetime) -> None:
    request.status = status
    request.closed_at = now
    request.save(update_fields=["status", "closed_at"])


def _settle(request: SupportAccessRequest, now: datetime) -> None:
    """After a decision: one denial closes the request; two approvals issue the grant."""
    if Decision.DENIED in (request.internal_decision, request.customer_decision):
        _close(request, Status.DENIED, now)
        audit_record(action="support_access.denied", obj=request)
        _notify_on_commit("denied", request.pk)
    elif request.internal_decision == request.customer_decision == Decision.APPROVED:
        _close(request, Status.APPROVED, now)
        _grant_issue(request, now)
        _notify_on_commit("granted", request.pk)


def _grant_issue(request: SupportAccessRequest, now: datetime) -> SupportGrant:
    starts_at = max(request.requested_start, now)
    staff = list(request.named_staff.all())
    # Eligibility is checked again: someone may have left the support role since the request.
    if lapsed := [u.get_username() for u in staff if not is_support_staff(u)]:
        raise ValidationError(
            f"{', '.join(lapsed)} can no longer act as support staff; this request cannot be approved. "
            "Cancel it and open a new one."
        )
    grant = SupportGrant.objects.with_scopes_disabled().create(
        request=request,
        organisation=request.organisation,
        scope=request.scope,
        starts_at=starts_at,
        ends_at=starts_at + request.requested_duration,
    )
    grant.staff.set(staff)
    for user in staff:
        assign_perm(GRANT_PERMISSION, user, request.organisation)
    audit_record(
        action="support_access.granted",
        obj=grant,
        organisation_id=request.organisation_id,
        data={"staff": [u.username for u in staff], "starts_at": grant.starts_at, "ends_at": grant.ends_at},
    )
    return grant


def _expire(request: SupportAccessRequest, now: datetime) -> None:
    _close(request, Status.EXPIRED, now)
    audit_record(action="support_access.expired", obj=request, data={"deadline": request.decision_deadline})
    _notify_on_commit("expired", request.pk)


def requests_expire(*, now: datetime | None = None) -> int:
    """Beat: close every request still undecided at its deadline."""
    now = now or timezone.now()
    expired = 0
    due = SupportAccessRequest.objects.with_scopes_disabled().filter(status=Status.PENDING, decision_deadline__lte=now)
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            request = (
                SupportAccessRequest.objects.with_scopes_disabled()
                .select_for_update(skip_locked=True)
                .filter(pk=pk, status=Status.PENDING)
                .first()
            )
            if request is not None:
                _expire(request, now)
                expired += 1
    return expired


# --- grants -------------------------------------------------------------------------------------


def can_revoke(user: User, grant: SupportGrant) -> bool:
    return (
        is_internal_approver(user)
        or is_customer_admin(user, grant.organisation)
        or (user.is_staff and grant.staff.filter(pk=user.pk).exists())
    )


def grant_revoke(*, grant: SupportGrant, acting_user: User, reason: str) -> SupportGrant:
    """End a grant at once: a security officer, a named staff member or a customer admin."""
    if not can_revoke(acting_user, grant):
        raise PermissionDenied("You cannot revoke this grant.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the grant is revoked."})
    now = timezone.now()
    with transaction.atomic():
        grant = SupportGrant.objects.with_scopes_disabled().select_for_update().get(pk=grant.pk)
        if grant.revoked_at is not None or grant.ends_at <= now:
            raise ValidationError("This grant has already ended.")
        grant.revoked_at = now
        grant.revoked_by = acting_user
        grant.revoke_reason = reason.strip()
        grant.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
        _remove_permissions(grant, now)
        audit_record(
            action="support_access.revoked", actor=acting_user, obj=grant, data={"reason": grant.revoke_reason}
        )
        _notify_on_commit("revoked", grant.request_id)
    return grant


def _remove_permissions(grant: SupportGrant, now: datetime) -> None:
    """Remove the guardian permissions a grant gave, unless another active grant still needs them."""
    still_needed = set(
        SupportGrant.objects.with_scopes_disabled()
        .filter(organisation=grant.organisation_id, revoked_at__isnull=True, ends_at__gt=now)
        .exclude(pk=grant.pk)
        .values_list("staff", flat=True)
    )
    for user in grant.staff.all():
        if user.pk not in still_needed:
            remove_perm(GRANT_PERMISSION, user, grant.organisation)
    grant.permissions_removed_at = now
    grant.save(update_fields=["permissions_removed_at"])


def grants_expire(*, now: datetime | None = None) -> int:
    """Beat (every minute): remove the permissions of grants that have ended.

    The second line of defence: every check already honours `ends_at`.
    """
    now = now or timezone.now()
    done = 0
    due = SupportGrant.objects.with_scopes_disabled().filter(permissions_removed_at__isnull=True, ends_at__lte=now)
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            grant = (
                SupportGrant.objects.with_scopes_disabled()
                .select_for_update(skip_locked=True)
                .filter(pk=pk, permissions_removed_at__isnull=True)
                .first()
            )
            if grant is not None:
                _remove_permissions(grant, now)
                audit_record(action="support_access.grant_ended", obj=grant, data={"ends_at": grant.ends_at})
                done += 1
    return done


def active_grants(user: User, *, now: datetime | None = None):
    """Grants naming `user` that are in their window and not revoked."""
    now = now or timezone.now()
    return SupportGrant.objects.with_scopes_disabled().filter(
        staff=user, revoked_at__isnull=True, starts_at__lte=now, ends_at__gt=now
    )


def active_grant_for(user: User, organisation: Organisation, scope: str) -> SupportGrant | None:
    """The grant under which `user` may read `scope` data of `organisation` now, if any."""
    for grant in active_grants(user).filter(organisation=organisation).order_by("ends_at"):
        if scope in grant.scope:
            return grant
    return None


# --- transparency log ----------------------------------------------------------------------------


def access_log_record(
    *,
    user: User,
    organisation: Organisation,
    scope: str,
    objects: Iterable,
    action: str = AccessLogEntry.Action.VIEW,
    path: str = "",
) -> list[AccessLogEntry]:
    """Record staff reading or changing customer data under a grant; refuse without one."""
    grant = active_grant_for(user, organisation, scope)
    if grant is None:
        raise PermissionDenied("No active support grant covers this data.")
    now = timezone.now()
    request = grant.request
    entries = [
        AccessLogEntry(
            organisation=organisation,
            grant=grant,
            staff=user,
            at=now,
            action=action,
            scope=scope,
            object_type=obj._meta.verbose_name,
            object_id=str(obj.pk),
            object_repr=_safe_repr(obj),
            reason_type=request.reason_type,
            ticket_reference=request.ticket_reference,
            path=path[:300],
        )
        for obj in objects
    ]
    with transaction.atomic():
        AccessLogEntry.objects.with_scopes_disabled().bulk_create(entries)
        audit_record(
            action=f"support_access.data_{action}",
            actor=user,
            obj=organisation,
            data={"grant": grant.pk, "scope": scope, "objects": [e.object_repr for e in entries]},
        )
    return entries


def _safe_repr(obj) -> str:
    """Names the object without personal data: type, id and, for people, the username."""
    username = getattr(getattr(obj, "user", None), "username", None) or getattr(obj, "username", None)
    label = f"{obj._meta.verbose_name} #{obj.pk}"
    return f"{label} ({username})" if username else label


def _notify_on_commit(kind: str, request_id: int) -> None:
    from governance.access.tasks import notify_support_access

    transaction.on_commit(lambda: notify_support_access.delay(kind, request_id))


def internal_approvers():
    return Group.objects.get(name=SECURITY_OFFICER).user_set.filter(is_active=True, is_staff=True)
