"""Writes of the risk register: risks, acceptances and controls (C26; change records are in
`changes.py`). Admin, import, API, tasks and commands call these; each runs in one
transaction and writes its audit event there.

Audit events on a risk carry the changed fields as {"changes": {field: [old, new]}}; the
admin's history page and the overall review's differences are read from them.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from governance.audit.services import audit_record
from governance.risk.matrix import MAX_REVIEW_MONTHS, matrix_active
from governance.risk.models import Control, Risk, RiskAcceptance, RiskMatrix

# Fields a person edits on a risk; levels, matrix and dates are derived.
RISK_FIELDS = (
    "code",
    "title",
    "description",
    "category",
    "owner",
    "owner_team",
    "assets",
    "threat",
    "vulnerability",
    "inherent_likelihood",
    "inherent_impact",
    "residual_likelihood",
    "residual_impact",
    "treatment",
    "status",
)
SCORE_FIELDS = ("inherent_likelihood", "inherent_impact", "residual_likelihood", "residual_impact")
# Review dates may be given (import of an existing register); otherwise they are derived.
REVIEW_DATE_FIELDS = ("last_reviewed_on", "next_review_on")


# --- scoring and review dates -----------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def risk_score(*, matrix: RiskMatrix, likelihood: int, impact: int) -> str:
    """The level key of one cell of `matrix`; out-of-range scores are refused."""
    rows, cols = matrix.size
    if not (isinstance(likelihood, int) and 1 <= likelihood <= rows):
        raise ValidationError(f"Likelihood must be between 1 and {rows} on {matrix}.")
    if not (isinstance(impact, int) and 1 <= impact <= cols):
        raise ValidationError(f"Impact must be between 1 and {cols} on {matrix}.")
    return matrix.level_key(likelihood, impact)


def review_interval_months(*, matrix: RiskMatrix, level_key: str) -> int:
    return min(int(matrix.level(level_key).get("review_months", MAX_REVIEW_MONTHS)), MAX_REVIEW_MONTHS)


def next_review_date(*, matrix: RiskMatrix, level_key: str, after: date) -> date:
    """No later than 12 months after `after`, sooner for higher levels (the matrix says)."""
    return add_months(after, review_interval_months(matrix=matrix, level_key=level_key))


def _apply_scores(risk: Risk, matrix: RiskMatrix) -> None:
    risk.matrix = matrix
    risk.inherent_level = risk_score(matrix=matrix, likelihood=risk.inherent_likelihood, impact=risk.inherent_impact)
    risk.residual_level = risk_score(matrix=matrix, likelihood=risk.residual_likelihood, impact=risk.residual_impact)
    risk.residual_rank = matrix.rank(risk.residual_level)


def risk_snapshot(risk: Risk) -> dict[str, Any]:
    """The risk as plain data: kept in acceptances and compared for history."""
    return {
        "code": risk.code,
        "title": risk.title,
        "category": risk.category,
        "owner": risk.owner.get_username() if risk.owner_id else None,
        "owner_team": risk.owner_team.name if risk.owner_team_id else None,
        "assets": risk.assets,
        "threat": risk.threat,
        "vulnerability": risk.vulnerability,
        "description": risk.description,
        "matrix": str(risk.matrix) if risk.matrix_id else None,
        "inherent_likelihood": risk.inherent_likelihood,
        "inherent_impact": risk.inherent_impact,
        "inherent_level": risk.inherent_level,
        "residual_likelihood": risk.residual_likelihood,
        "residual_impact": risk.residual_impact,
        "residual_level": risk.residual_level,
        "treatment": risk.treatment,
        "status": risk.status,
        "last_reviewed_on": risk.last_reviewed_on.isoformat() if risk.last_reviewed_on else None,
        "next_review_on": risk.next_review_on.isoformat() if risk.next_review_on else None,
    }


def _controls_snapshot(risk: Risk) -> list[dict[str, str]]:
    return [{"code": c.code, "name": c.name, "status": c.status} for c in risk.controls.order_by("code")]


def _diff(before: dict, after: dict) -> dict[str, list]:
    return {k: [before.get(k), after.get(k)] for k in after if before.get(k) != after.get(k)}


def _review_due(risk: Risk, given: date | None, *, today: date, current: date | None = None) -> date:
    """The next review date: the one given (checked), else the current one, but never later
    than the level's interval (at most 12 months) after the last review, or after today."""
    base = risk.last_reviewed_on or today
    if risk.last_reviewed_on and risk.last_reviewed_on > today:
        raise ValidationError({"last_reviewed_on": "The last review cannot be in the future."})
    latest = next_review_date(matrix=risk.matrix, level_key=risk.residual_level, after=base)
    if given is not None:
        if given > latest:
            raise ValidationError(
                {"next_review_on": f"At the {risk.residual_level} level the next review is due by {latest:%Y-%m-%d}."}
            )
        return given
    return min(current, latest) if current else latest


def _check_owner(risk: Risk) -> None:
    if bool(risk.owner_id) == bool(risk.owner_team_id):
        raise ValidationError({"owner": "A risk is owned by exactly one person or one team."})


def _next_code(model, prefix: str) -> str:
    last = model.objects.aggregate(m=Max("id"))["m"] or 0
    return f"{prefix}-{last + 1:03d}"


# --- risks --------------------------------------------------------------------------------


@transaction.atomic
def risk_create(*, acting_user, controls: Iterable[Control] = (), code: str = "", **fields: Any) -> Risk:
    """Register a risk, scored on the active matrix, first review due per its level."""
    unknown = set(fields) - set(RISK_FIELDS) - set(REVIEW_DATE_FIELDS)
    if unknown:
        raise TypeError(f"unknown risk fields: {sorted(unknown)}")
    now = timezone.now()
    given_next = fields.pop("next_review_on", None)
    fields.setdefault("status", Risk.Status.OPEN)
    if fields["status"] == Risk.Status.ACCEPTED:
        raise ValidationError({"status": "A risk is accepted only through a signed risk acceptance."})
    risk = Risk(code=code or _next_code(Risk, "RSK"), created_at=now, updated_at=now, **fields)
    _check_owner(risk)
    _apply_scores(risk, matrix_active())
    risk.next_review_on = _review_due(risk, given_next, today=timezone.localdate())
    if risk.status == Risk.Status.CLOSED:
        risk.closed_at = now
    risk.full_clean(exclude=["matrix", "next_review_on"])
    risk.save()
    risk.controls.set(controls)
    audit_record(
        action="risk.create",
        actor=acting_user,
        obj=risk,
        data={"changes": _diff({}, risk_snapshot(risk)), "controls": [c.code for c in controls]},
    )
    return risk


@transaction.atomic
def risk_update(*, risk: Risk, acting_user, controls: Iterable[Control] | None = None, **fields: Any) -> Risk:
    """Change a risk; a change of score re-scores it on the active matrix (event
    `risk.rescore`), closing and reopening are their own events."""
    unknown = set(fields) - set(RISK_FIELDS) - set(REVIEW_DATE_FIELDS)
    if unknown:
        raise TypeError(f"unknown risk fields: {sorted(unknown)}")
    given_next = fields.pop("next_review_on", None)
    risk = Risk.objects.select_for_update(of=("self",)).select_related("matrix", "owner", "owner_team").get(pk=risk.pk)
    if not risk_may_change(acting_user, risk):
        raise PermissionDenied(f"Only {risk.code}'s owner or a security officer can change it.")
    before = risk_snapshot(risk)
    before_controls = [c.code for c in risk.controls.order_by("code")]
    new_status = fields.get("status", risk.status)
    if new_status == Risk.Status.ACCEPTED and risk.status != Risk.Status.ACCEPTED:
        raise ValidationError({"status": "A risk is accepted only through a signed risk acceptance."})
    if risk.status == Risk.Status.ACCEPTED and new_status == Risk.Status.OPEN:
        raise ValidationError({"status": "Revoke the acceptance to reopen an accepted risk."})
    for name, value in fields.items():
        setattr(risk, name, value)
    _check_owner(risk)
    # A new score is always taken on the active matrix; other edits keep the version the
    # risk was scored with, so its level keeps its meaning.
    rescored = any(before[f] != getattr(risk, f) for f in SCORE_FIELDS)
    if rescored:
        _apply_scores(risk, matrix_active())
    now = timezone.now()
    risk.next_review_on = _review_due(risk, given_next, today=timezone.localdate(), current=risk.next_review_on)
    if new_status == Risk.Status.CLOSED and before["status"] != Risk.Status.CLOSED:
        risk.closed_at = now
        _end_active_acceptance(risk, acting_user=acting_user, status=RiskAcceptance.Status.REVOKED, now=now)
    elif new_status != Risk.Status.CLOSED:
        risk.closed_at = None
    risk.updated_at = now
    risk.full_clean(exclude=["matrix", "next_review_on"])
    derived = [
        "matrix",
        "inherent_level",
        "residual_level",
        "residual_rank",
        "next_review_on",
        "closed_at",
        "updated_at",
    ]
    risk.save(update_fields=[*fields, *derived])
    after = risk_snapshot(risk)
    data: dict[str, Any] = {"changes": _diff(before, after)}
    if controls is not None:
        risk.controls.set(controls)
        after_controls = sorted(c.code for c in controls)
        if after_controls != before_controls:
            data["changes"]["controls"] = [before_controls, after_controls]
    if not data["changes"]:
        return risk
    audit_record(action="risk.update", actor=acting_user, obj=risk, data=data)
    if before["inherent_level"] != after["inherent_level"] or before["residual_level"] != after["residual_level"]:
        audit_record(
            action="risk.rescore",
            actor=acting_user,
            obj=risk,
            data={
                "code": risk.code,
                "inherent": [before["inherent_level"], after["inherent_level"]],
                "residual": [before["residual_level"], after["residual_level"]],
                "matrix": after["matrix"],
            },
        )
    if before["status"] != after["status"] and Risk.Status.CLOSED in (before["status"], after["status"]):
        action = "risk.close" if after["status"] == Risk.Status.CLOSED else "risk.reopen"
        audit_record(action=action, actor=acting_user, obj=risk, data={"code": risk.code, "title": risk.title})
    return risk


# --- acceptances --------------------------------------------------------------------------


def _user_owns(user, risk: Risk) -> bool:
    if risk.owner_id:
        return risk.owner_id == user.pk
    return user.groups.filter(pk=risk.owner_team_id).exists()


def risk_may_change(user, risk: Risk) -> bool:
    """Risk owners change their own risks (or their team's); security officers any."""
    return user.has_perm("risk.manage_all_risks") or _user_owns(user, risk)


def risk_owner_recipients(risk: Risk) -> list[str]:
    """Where a risk's reminders go: the owner, or every active member of the owning team."""
    if risk.owner_id:
        return [risk.owner.email] if risk.owner.is_active and risk.owner.email else []
    if risk.owner_team_id:
        return sorted(e for e in risk.owner_team.user_set.filter(is_active=True).values_list("email", flat=True) if e)
    return []


@transaction.atomic
def risk_accept(*, risk: Risk, acting_user, reason: str, expires_on: date) -> RiskAcceptance:
    """The owner signs off the residual risk until `expires_on`; the risk as it stands now
    (scores, levels, controls) is kept with the sign-off."""
    risk = Risk.objects.select_for_update(of=("self",)).select_related("matrix", "owner", "owner_team").get(pk=risk.pk)
    today = timezone.localdate()
    if not _user_owns(acting_user, risk):
        raise ValidationError("Only the risk's owner (or a member of the owning team) can accept it.")
    if risk.status == Risk.Status.CLOSED:
        raise ValidationError("A closed risk cannot be accepted.")
    if risk.status == Risk.Status.ACCEPTED:
        raise ValidationError("This risk already has an active acceptance; revoke it first.")
    if not (reason or "").strip():
        raise ValidationError({"reason": "Give the reason the residual risk is acceptable."})
    limit = today + timedelta(days=settings.RISK_ACCEPTANCE_MAX_DAYS)
    if not today < expires_on <= limit:
        raise ValidationError({"expires_on": f"The expiry must be after today and no later than {limit:%Y-%m-%d}."})
    before_status = risk.status
    risk.status, risk.treatment, risk.updated_at = Risk.Status.ACCEPTED, Risk.Treatment.ACCEPT, timezone.now()
    risk.save(update_fields=["status", "treatment", "updated_at"])
    snapshot = {**risk_snapshot(risk), "controls": _controls_snapshot(risk)}
    acceptance = RiskAcceptance.objects.create(
        risk=risk,
        accepted_by=acting_user,
        accepted_at=risk.updated_at,
        reason=reason.strip(),
        expires_on=expires_on,
        snapshot=snapshot,
    )
    audit_record(
        action="risk.accept",
        actor=acting_user,
        obj=risk,
        data={
            "acceptance": acceptance.pk,
            "expires_on": expires_on,
            "residual_level": risk.residual_level,
            "changes": {"status": [before_status, risk.status]},
        },
    )
    return acceptance


def _end_active_acceptance(risk: Risk, *, acting_user, status: str, now) -> RiskAcceptance | None:
    acceptance = RiskAcceptance.objects.filter(risk=risk, status=RiskAcceptance.Status.ACTIVE).first()
    if acceptance is None:
        return None
    acceptance.status, acceptance.ended_at = status, now
    acceptance.ended_by = acting_user if getattr(acting_user, "is_authenticated", False) else None
    acceptance.save(update_fields=["status", "ended_at", "ended_by"])
    return acceptance


@transaction.atomic
def acceptance_revoke(*, acceptance: RiskAcceptance, acting_user, reason: str) -> RiskAcceptance:
    """End an acceptance early (the owner or a security officer); the risk reopens."""
    acceptance = RiskAcceptance.objects.select_for_update(of=("self",)).select_related("risk").get(pk=acceptance.pk)
    risk = acceptance.risk
    if acceptance.status != RiskAcceptance.Status.ACTIVE:
        raise ValidationError("Only an active acceptance can be revoked.")
    if not (_user_owns(acting_user, risk) or acting_user.has_perm("risk.change_riskacceptance")):
        raise PermissionDenied("Only the risk's owner or a security officer can revoke an acceptance.")
    now = timezone.now()
    _end_active_acceptance(risk, acting_user=acting_user, status=RiskAcceptance.Status.REVOKED, now=now)
    if risk.status == Risk.Status.ACCEPTED:
        risk.status, risk.updated_at = Risk.Status.OPEN, now
        risk.save(update_fields=["status", "updated_at"])
    audit_record(
        action="risk.acceptance_revoke",
        actor=acting_user,
        obj=risk,
        data={"acceptance": acceptance.pk, "reason": reason, "changes": {"status": ["accepted", risk.status]}},
    )
    return acceptance


def acceptances_expire(*, today: date) -> list[int]:
    """Expire every acceptance whose expiry date has come: the risk reopens and its owner is
    told. One transaction per acceptance; returns the expired acceptances' ids."""
    from governance.risk.tasks import notify_acceptance_expired

    expired = []
    due = RiskAcceptance.objects.filter(status=RiskAcceptance.Status.ACTIVE, expires_on__lte=today)
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            acceptance = (
                RiskAcceptance.objects.select_for_update(of=("self",))
                .filter(pk=pk, status=RiskAcceptance.Status.ACTIVE)
                .select_related("risk")
                .first()
            )
            if acceptance is None:
                continue
            now = timezone.now()
            acceptance.status, acceptance.ended_at = RiskAcceptance.Status.EXPIRED, now
            acceptance.save(update_fields=["status", "ended_at"])
            risk = acceptance.risk
            before = risk.status
            if risk.status == Risk.Status.ACCEPTED:
                risk.status, risk.updated_at = Risk.Status.OPEN, now
                risk.save(update_fields=["status", "updated_at"])
            audit_record(
                action="risk.acceptance_expire",
                obj=risk,
                actor_repr="system",
                data={
                    "code": risk.code,
                    "acceptance": acceptance.pk,
                    "expires_on": acceptance.expires_on,
                    "changes": {"status": [before, risk.status]},
                },
            )
            transaction.on_commit(lambda pk=acceptance.pk: notify_acceptance_expired.delay(pk))
            expired.append(acceptance.pk)
    return expired


# --- controls -----------------------------------------------------------------------------

CONTROL_FIELDS = ("code", "name", "description", "owner", "status", "evidence", "last_tested_on")


def _control_snapshot(control: Control) -> dict[str, Any]:
    data = {f: getattr(control, f) for f in CONTROL_FIELDS if f != "owner"}
    data["owner"] = control.owner.get_username() if control.owner_id else None
    data["last_tested_on"] = control.last_tested_on.isoformat() if control.last_tested_on else None
    return data


@transaction.atomic
def control_save(*, acting_user, control: Control | None = None, **fields: Any) -> Control:
    """Create or change a control."""
    unknown = set(fields) - set(CONTROL_FIELDS)
    if unknown:
        raise TypeError(f"unknown control fields: {sorted(unknown)}")
    created = control is None or control.pk is None
    if created:
        control = control or Control()
        before: dict = {}
    else:
        control = Control.objects.select_for_update().get(pk=control.pk)
        before = _control_snapshot(control)
    for name, value in fields.items():
        setattr(control, name, value)
    if not control.code:
        control.code = _next_code(Control, "CTL")
    control.full_clean()
    control.save()
    changes = _diff(before, _control_snapshot(control))
    if changes:
        audit_record(
            action="control.create" if created else "control.update",
            actor=acting_user,
            obj=control,
            data={"changes": changes},
        )
    return control
