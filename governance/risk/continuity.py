"""Business continuity (C23): plans per major operation, versioned documents, exercises.

A plan is flagged when its review date has passed or its last exercise is older than
CONTINUITY_EXERCISE_MAX_AGE_DAYS (a year); the daily task emails the owner once per day
the plan is flagged for a new reason.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from governance.audit.services import audit_record
from governance.risk.models import ContinuityExercise, ContinuityPlan, ContinuityPlanVersion
from governance.risk.services import add_months

PLAN_FIELDS = ("operation", "title", "owner", "rto_hours", "rpo_hours", "escalation_contacts", "next_review_on")
# Plans are reviewed at least yearly.
PLAN_REVIEW_MONTHS = 12


def _plan_snapshot(plan: ContinuityPlan) -> dict[str, Any]:
    return {
        "operation": plan.operation,
        "title": plan.title,
        "owner": plan.owner.get_username() if plan.owner_id else None,
        "rto_hours": plan.rto_hours,
        "rpo_hours": plan.rpo_hours,
        # Never the contacts themselves in the audit trail: only whether they changed.
        "escalation_contacts": "(encrypted, changed)" if plan.escalation_contacts else "",
        "next_review_on": plan.next_review_on.isoformat() if plan.next_review_on else None,
        "current_version": plan.current_version,
    }


def _check(plan: ContinuityPlan) -> None:
    if plan.rto_hours == 0:
        raise ValidationError({"rto_hours": "A recovery time objective of zero hours is not a plan."})
    limit = add_months(timezone.localdate(), PLAN_REVIEW_MONTHS)
    if plan.next_review_on and plan.next_review_on > limit:
        raise ValidationError({"next_review_on": f"Plans are reviewed at least yearly: no later than {limit}."})


@transaction.atomic
def continuity_plan_save(
    *,
    acting_user,
    plan: ContinuityPlan | None = None,
    document: str = "",
    change_note: str = "",
    reviewed: bool = False,
    **fields: Any,
) -> ContinuityPlan:
    """Create or change a plan. A new or changed `document` becomes a new version; with
    `reviewed` the plan counts as reviewed today (next review within a year)."""
    unknown = set(fields) - set(PLAN_FIELDS)
    if unknown:
        raise TypeError(f"unknown plan fields: {sorted(unknown)}")
    now = timezone.now()
    created = plan is None or plan.pk is None
    if created:
        plan = plan or ContinuityPlan()
        plan.created_at = now
        before: dict = {}
        old_contacts = None
    else:
        plan = ContinuityPlan.objects.select_for_update().get(pk=plan.pk)
        before = _plan_snapshot(plan)
        old_contacts = plan.escalation_contacts
    for name, value in fields.items():
        setattr(plan, name, value)
    if reviewed:
        plan.last_reviewed_on = timezone.localdate()
        plan.next_review_on = add_months(plan.last_reviewed_on, PLAN_REVIEW_MONTHS)
    if not plan.next_review_on:
        plan.next_review_on = add_months(timezone.localdate(), PLAN_REVIEW_MONTHS)
    _check(plan)
    plan.updated_at = now
    document = (document or "").replace("\r\n", "\n").strip()
    latest = plan.versions.order_by("-number").values_list("document", flat=True).first() if not created else None
    if created and not document:
        raise ValidationError({"document": "A new plan needs its document."})
    new_version = bool(document) and document != latest
    if new_version:
        plan.current_version += 1
    plan.full_clean()
    plan.save()
    if new_version:
        ContinuityPlanVersion.objects.create(
            plan=plan,
            number=plan.current_version,
            document=document,
            change_note=change_note.strip(),
            created_by=acting_user,
            created_at=now,
        )
    after = _plan_snapshot(plan)
    changes = {k: v for k, v in ((k, [before.get(k), after[k]]) for k in after) if v[0] != v[1]}
    if not created and old_contacts != plan.escalation_contacts:
        changes["escalation_contacts"] = ["(encrypted)", "(encrypted, changed)"]
    elif not created:
        changes.pop("escalation_contacts", None)
    if reviewed:
        changes["last_reviewed_on"] = [before.get("last_reviewed_on"), plan.last_reviewed_on]
    if changes or created:
        audit_record(
            action="continuity.plan_create" if created else "continuity.plan_update",
            actor=acting_user,
            obj=plan,
            data={"changes": changes, "version": plan.current_version if new_version else None},
        )
    return plan


@transaction.atomic
def continuity_exercise_record(
    *, plan: ContinuityPlan, acting_user, held_on: date, kind: str, scenario: str, result: str, improvements: str = ""
) -> ContinuityExercise:
    """Record an exercise of `plan`; the plan's last-exercised date follows the latest."""
    if held_on > timezone.localdate():
        raise ValidationError({"held_on": "An exercise is recorded after it was held."})
    if not (scenario or "").strip():
        raise ValidationError({"scenario": "Describe the scenario exercised."})
    plan = ContinuityPlan.objects.select_for_update().get(pk=plan.pk)
    exercise = ContinuityExercise(
        plan=plan,
        held_on=held_on,
        kind=kind,
        scenario=scenario.strip(),
        result=result,
        improvements=(improvements or "").strip(),
        recorded_by=acting_user,
        created_at=timezone.now(),
    )
    exercise.full_clean()
    exercise.save()
    if plan.last_exercised_on is None or held_on > plan.last_exercised_on:
        plan.last_exercised_on, plan.updated_at = held_on, timezone.now()
        plan.save(update_fields=["last_exercised_on", "updated_at"])
    audit_record(
        action="continuity.exercise",
        actor=acting_user,
        obj=plan,
        data={"exercise": exercise.pk, "held_on": held_on, "kind": kind, "result": result},
    )
    return exercise


def plan_flags(plan: ContinuityPlan, *, today: date) -> list[str]:
    """Why a plan needs attention today (empty: it does not)."""
    flags = []
    if plan.next_review_on < today:
        flags.append(f"review overdue since {plan.next_review_on:%Y-%m-%d}")
    oldest_ok = today - timedelta(days=settings.CONTINUITY_EXERCISE_MAX_AGE_DAYS)
    if plan.last_exercised_on is None:
        flags.append("never exercised")
    elif plan.last_exercised_on < oldest_ok:
        flags.append(f"last exercised {plan.last_exercised_on:%Y-%m-%d}, more than a year ago")
    return flags


def continuity_plans_flag(*, today: date) -> int:
    """Email the owner of every flagged plan, at most once a week per plan."""
    from governance.risk.selectors import continuity_plans_overdue
    from governance.risk.tasks import notify_continuity_plan

    count = 0
    for plan in continuity_plans_overdue(now=timezone.now(), today=today):
        if plan.overdue_notified_on and plan.overdue_notified_on > today - timedelta(days=7):
            continue
        with transaction.atomic():
            updated = ContinuityPlan.objects.filter(pk=plan.pk).update(overdue_notified_on=today)
            if updated:
                audit_record(
                    action="continuity.plan_flagged",
                    obj=plan,
                    actor_repr="system",
                    data={"flags": plan_flags(plan, today=today)},
                )
                transaction.on_commit(lambda pk=plan.pk: notify_continuity_plan.delay(pk))
                count += 1
    return count
