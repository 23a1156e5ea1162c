"""Writes of change records (C26): a major change is approved only after a completed risk
assessment linking the risks it creates or changes, and never by its requester. Each step
runs in one transaction, under a row lock, with its audit event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from governance.audit.services import audit_record
from governance.risk.models import Change, Risk, RiskAssessment
from governance.risk.services import _diff

CHANGE_FIELDS = (
    "title",
    "description",
    "affects_customer_data",
    "affects_security_controls",
    "expects_downtime",
    "pre_approved_routine",
    "planned_start",
    "planned_end",
    "rollback_plan",
)


def change_type_for(
    *, affects_customer_data: bool, affects_security_controls: bool, expects_downtime: bool, pre_approved_routine: bool
) -> str:
    """The stated criteria: anything touching customer data, security controls or
    availability is major; otherwise a documented routine change is standard; else normal."""
    if affects_customer_data or affects_security_controls or expects_downtime:
        return Change.Type.MAJOR
    return Change.Type.STANDARD if pre_approved_routine else Change.Type.NORMAL


def _classify(change: Change) -> None:
    change.change_type = change_type_for(
        affects_customer_data=change.affects_customer_data,
        affects_security_controls=change.affects_security_controls,
        expects_downtime=change.expects_downtime,
        pre_approved_routine=change.pre_approved_routine,
    )
    if change.planned_end and change.planned_start and change.planned_end <= change.planned_start:
        raise ValidationError({"planned_end": "The window must end after it starts."})
    if not (change.rollback_plan or "").strip():
        raise ValidationError({"rollback_plan": "Every change needs a rollback plan."})


def _change_snapshot(change: Change) -> dict[str, Any]:
    return {
        **{f: getattr(change, f) for f in CHANGE_FIELDS},
        "change_type": change.change_type,
        "status": change.status,
    }


@transaction.atomic
def change_create(*, acting_user, **fields: Any) -> Change:
    """Record a change in draft; its type follows from the criteria."""
    unknown = set(fields) - set(CHANGE_FIELDS)
    if unknown:
        raise TypeError(f"unknown change fields: {sorted(unknown)}")
    now = timezone.now()
    year_count = Change.objects.filter(code__startswith=f"CHG-{now:%Y}-").count()
    change = Change(
        code=f"CHG-{now:%Y}-{year_count + 1:04d}", requester=acting_user, created_at=now, updated_at=now, **fields
    )
    _classify(change)
    change.full_clean()
    change.save()
    audit_record(
        action="change.create",
        actor=acting_user,
        obj=change,
        data={"changes": _diff({}, _change_snapshot(change))},
    )
    return change


@transaction.atomic
def change_update(*, change: Change, acting_user, **fields: Any) -> Change:
    """Edit a change while it is a draft or in assessment (the type is re-derived)."""
    unknown = set(fields) - set(CHANGE_FIELDS)
    if unknown:
        raise TypeError(f"unknown change fields: {sorted(unknown)}")
    change = Change.objects.select_for_update().get(pk=change.pk)
    if change.status not in (Change.Status.DRAFT, Change.Status.ASSESSMENT):
        raise ValidationError(f"A change that is {change.get_status_display().lower()} can no longer be edited.")
    before = _change_snapshot(change)
    for name, value in fields.items():
        setattr(change, name, value)
    _classify(change)
    change.updated_at = timezone.now()
    change.full_clean()
    change.save(update_fields=[*fields, "change_type", "updated_at"])
    changes = _diff(before, _change_snapshot(change))
    if changes:
        audit_record(action="change.update", actor=acting_user, obj=change, data={"changes": changes})
    return change


def _transition(change: Change, *, acting_user, to: str, allowed_from: tuple[str, ...], **extra: Any) -> Change:
    if change.status not in allowed_from:
        names = ", ".join(Change.Status(s).label.lower() for s in allowed_from)
        raise ValidationError(
            f"{change.code} is {change.get_status_display().lower()}; this step needs it to be {names}."
        )
    before = change.status
    change.status, change.updated_at = to, timezone.now()
    for name, value in extra.items():
        setattr(change, name, value)
    change.save(update_fields=["status", "updated_at", *extra])
    audit_record(
        action=f"change.{to}",
        actor=acting_user,
        obj=change,
        data={"changes": {"status": [before, to], **{k: [None, v] for k, v in extra.items() if k != "approver"}}},
    )
    return change


def _locked(change: Change) -> Change:
    return Change.objects.select_for_update().get(pk=change.pk)


@transaction.atomic
def change_submit(*, change: Change, acting_user) -> Change:
    """Draft -> in assessment (awaiting the risk assessment and the approver)."""
    change = _locked(change)
    if acting_user.pk != change.requester_id and not acting_user.has_perm("risk.approve_change"):
        raise PermissionDenied("Only the requester submits a change.")
    return _transition(
        change, acting_user=acting_user, to=Change.Status.ASSESSMENT, allowed_from=(Change.Status.DRAFT,)
    )


@transaction.atomic
def change_assess(
    *, change: Change, acting_user, summary: str, risks: Iterable[Risk], complete: bool = True
) -> RiskAssessment:
    """Record (or update) the change's risk assessment, linking the risks it creates or
    changes; `complete` marks it done, which a major change needs before approval."""
    change = _locked(change)
    if change.status not in (Change.Status.DRAFT, Change.Status.ASSESSMENT):
        raise ValidationError(f"{change.code} is {change.get_status_display().lower()}: its assessment is closed.")
    risks = list(risks)
    if not (summary or "").strip():
        raise ValidationError({"summary": "Summarise the assessment."})
    if complete and not risks:
        raise ValidationError(
            {"risks": "A completed assessment links the risks the change creates or changes (register new ones first)."}
        )
    now = timezone.now()
    assessment = RiskAssessment.objects.filter(change=change).first()
    created = assessment is None
    if created:
        assessment = RiskAssessment(change=change, assessor=acting_user, created_at=now)
    assessment.assessor, assessment.summary = acting_user, summary.strip()
    assessment.completed_at = now if complete else None
    assessment.save()
    assessment.risks.set(risks)
    audit_record(
        action="change.assess",
        actor=acting_user,
        obj=change,
        data={"complete": complete, "risks": sorted(r.code for r in risks), "summary": assessment.summary},
    )
    return assessment


def change_approval_problems(change: Change, approver) -> list[str]:
    """Why `approver` may not approve `change` now (empty: they may)."""
    problems = []
    if change.status != Change.Status.ASSESSMENT:
        problems.append(
            f"{change.code} is {change.get_status_display().lower()}; only a change in assessment is approved."
        )
    if approver.pk == change.requester_id:
        problems.append("You requested this change: another approver must decide it (no self-approval).")
    if change.change_type == Change.Type.MAJOR:
        assessment = RiskAssessment.objects.filter(change=change).first()
        if assessment is None or not assessment.is_complete:
            problems.append("A major change needs a completed risk assessment before it can be approved.")
        elif not assessment.risks.exists():
            problems.append("The risk assessment of a major change must link the risks it creates or changes.")
    return problems


@transaction.atomic
def change_approve(*, change: Change, acting_user, note: str = "") -> Change:
    """In assessment -> approved, by someone other than the requester; a major change only
    with a completed assessment linking risks."""
    change = _locked(change)
    if not acting_user.has_perm("risk.approve_change"):
        raise PermissionDenied("Approving changes needs the approver permission (security officer).")
    problems = change_approval_problems(change, acting_user)
    if problems:
        raise ValidationError(problems)
    return _transition(
        change,
        acting_user=acting_user,
        to=Change.Status.APPROVED,
        allowed_from=(Change.Status.ASSESSMENT,),
        approver=acting_user,
        decided_at=timezone.now(),
        decision_note=note,
    )


@transaction.atomic
def change_reject(*, change: Change, acting_user, note: str) -> Change:
    change = _locked(change)
    if not acting_user.has_perm("risk.approve_change"):
        raise PermissionDenied("Rejecting changes needs the approver permission (security officer).")
    if not (note or "").strip():
        raise ValidationError({"note": "Say why the change is rejected."})
    return _transition(
        change,
        acting_user=acting_user,
        to=Change.Status.REJECTED,
        allowed_from=(Change.Status.DRAFT, Change.Status.ASSESSMENT),
        approver=acting_user,
        decided_at=timezone.now(),
        decision_note=note,
    )


@transaction.atomic
def change_implement(*, change: Change, acting_user) -> Change:
    change = _locked(change)
    return _transition(
        change,
        acting_user=acting_user,
        to=Change.Status.IMPLEMENTED,
        allowed_from=(Change.Status.APPROVED,),
        implemented_at=timezone.now(),
    )


@transaction.atomic
def change_review(*, change: Change, acting_user, note: str) -> Change:
    """Implemented -> reviewed, with the post-implementation review."""
    change = _locked(change)
    if not (note or "").strip():
        raise ValidationError({"note": "Write the post-implementation review."})
    return _transition(
        change,
        acting_user=acting_user,
        to=Change.Status.REVIEWED,
        allowed_from=(Change.Status.IMPLEMENTED,),
        reviewed_at=timezone.now(),
        review_note=note,
    )
