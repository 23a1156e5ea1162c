"""Reviews (C26): per-risk reviews, review reminders, the yearly overall risk review.

Every risk's next review is at most 12 months after its last one (sooner for higher
levels, from the matrix). A daily task sends the owner reminders 30 and 7 days before and
on the day (RISK_REVIEW_REMINDER_DAYS) and flags overdue risks; each reminder is a row,
unique per risk, due date and kind, so it fires once even if the task runs twice.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.audit.services import audit_record
from governance.risk import services
from governance.risk.models import OverallRiskReview, ReviewReminder, Risk, RiskReview

# --- one risk's review --------------------------------------------------------------------


@transaction.atomic
def risk_review_record(
    *,
    risk: Risk,
    acting_user,
    notes: str,
    reviewed_on: date | None = None,
    residual_likelihood: int | None = None,
    residual_impact: int | None = None,
) -> RiskReview:
    """Record a review of `risk` (optionally re-scoring its residual risk) and move its
    next review date: at most 12 months on, sooner for higher levels."""
    today = timezone.localdate()
    reviewed_on = reviewed_on or today
    if reviewed_on > today:
        raise ValidationError({"reviewed_on": "A review cannot be dated in the future."})
    if not (notes or "").strip():
        raise ValidationError({"notes": "Write what the review concluded."})
    risk = Risk.objects.select_related("matrix").get(pk=risk.pk)
    if risk.status == Risk.Status.CLOSED:
        raise ValidationError("A closed risk is not reviewed; reopen it first.")
    before_level = risk.residual_level
    rescore = {}
    if residual_likelihood is not None and residual_likelihood != risk.residual_likelihood:
        rescore["residual_likelihood"] = residual_likelihood
    if residual_impact is not None and residual_impact != risk.residual_impact:
        rescore["residual_impact"] = residual_impact
    if rescore:
        risk = services.risk_update(risk=risk, acting_user=acting_user, **rescore)
    risk = Risk.objects.select_for_update(of=("self",)).select_related("matrix").get(pk=risk.pk)
    next_on = services.next_review_date(matrix=risk.matrix, level_key=risk.residual_level, after=reviewed_on)
    changes = {
        "last_reviewed_on": [risk.last_reviewed_on, reviewed_on],
        "next_review_on": [risk.next_review_on, next_on],
    }
    risk.last_reviewed_on, risk.next_review_on, risk.updated_at = reviewed_on, next_on, timezone.now()
    risk.save(update_fields=["last_reviewed_on", "next_review_on", "updated_at"])
    review = RiskReview.objects.create(
        risk=risk,
        reviewed_by=acting_user,
        reviewed_on=reviewed_on,
        notes=notes.strip(),
        residual_level_before=before_level,
        residual_level_after=risk.residual_level,
        next_review_on=next_on,
        created_at=timezone.now(),
    )
    audit_record(action="risk.review", actor=acting_user, obj=risk, data={"review": review.pk, "changes": changes})
    return review


# --- reminders ----------------------------------------------------------------------------


def reminder_kind(days_left: int) -> str | None:
    """Which reminder is due for a review `days_left` days away (None: none yet).

    The window of a reminder runs from its offset down to the next one, so a day missed by
    beat is caught up the next day; the unique row keeps it to one email.
    """
    if days_left < 0:
        return ReviewReminder.Kind.OVERDUE
    offsets = settings.RISK_REVIEW_REMINDER_DAYS  # descending, e.g. [30, 7, 0]
    window = None
    for offset in offsets:
        if days_left <= offset:
            window = offset
    if window is None:
        return None
    return "due" if window == 0 else f"before_{window}"


def review_reminders_send(*, today: date) -> dict[str, int]:
    """Create today's reminder rows and queue their emails; count overdue risks."""
    from governance.risk.tasks import send_review_reminder

    horizon = today + timedelta(days=max(settings.RISK_REVIEW_REMINDER_DAYS, default=0))
    counts = {"reminders": 0, "overdue": 0}
    candidates = (
        Risk.objects.exclude(status=Risk.Status.CLOSED)
        .filter(next_review_on__lte=horizon)
        .select_related("owner", "owner_team")
        .order_by("next_review_on", "pk")
    )
    for risk in candidates.iterator(chunk_size=500):
        days_left = (risk.next_review_on - today).days
        if days_left < 0:
            counts["overdue"] += 1
        kind = reminder_kind(days_left)
        if kind is None:
            continue
        try:
            with transaction.atomic():
                reminder = ReviewReminder.objects.create(
                    risk=risk,
                    due_on=risk.next_review_on,
                    kind=kind,
                    sent_at=timezone.now(),
                    recipients=len(services.risk_owner_recipients(risk)),
                )
                if kind == ReviewReminder.Kind.OVERDUE:
                    audit_record(
                        action="risk.review_overdue",
                        obj=risk,
                        actor_repr="system",
                        data={"code": risk.code, "due_on": risk.next_review_on},
                    )
                transaction.on_commit(lambda pk=reminder.pk: send_review_reminder.delay(pk))
        except IntegrityError:
            continue  # already sent for this due date
        counts["reminders"] += 1
    return counts


# --- the overall yearly review ---------------------------------------------------------------

DIFF_ACTIONS = ("risk.create", "risk.close", "risk.rescore", "risk.acceptance_expire")


def overall_review_differences(*, since: datetime, until: datetime) -> dict[str, Any]:
    """What changed in the register between two instants, read from the audit trail:
    new, closed and re-scored risks, and expired acceptances."""
    events = list(
        AuditEvent.objects.filter(
            object_type="risk.risk", action__in=DIFF_ACTIONS, created_at__gt=since, created_at__lte=until
        )
        .order_by("id")
        .values("action", "object_id", "object_repr", "data", "created_at")
    )
    titles = {
        str(pk): (code, title)
        for pk, code, title in Risk.objects.filter(pk__in={e["object_id"] for e in events}).values_list(
            "pk", "code", "title"
        )
    }

    def ident(event) -> dict[str, str]:
        code, title = titles.get(event["object_id"], ("", event["object_repr"]))
        return {"id": event["object_id"], "code": code, "title": title}

    new, closed, expired, rescored = [], [], [], {}
    new_ids = set()
    for event in events:
        data = event["data"] or {}
        when = event["created_at"].isoformat()
        if event["action"] == "risk.create":
            changes = data.get("changes", {})
            new_ids.add(event["object_id"])
            new.append(
                {
                    **ident(event),
                    "at": when,
                    "inherent": (changes.get("inherent_level") or [None, None])[1],
                    "residual": (changes.get("residual_level") or [None, None])[1],
                }
            )
        elif event["action"] == "risk.close":
            closed.append({**ident(event), "at": when})
        elif event["action"] == "risk.acceptance_expire":
            expired.append({**ident(event), "at": when, "expires_on": data.get("expires_on")})
        elif event["action"] == "risk.rescore":
            entry = rescored.setdefault(
                event["object_id"],
                {**ident(event), "inherent": list(data["inherent"]), "residual": list(data["residual"])},
            )
            entry["inherent"][1], entry["residual"][1] = data["inherent"][1], data["residual"][1]
            entry["at"] = when
    rescored_list = [
        r
        for pk, r in rescored.items()
        if pk not in new_ids and (r["inherent"][0] != r["inherent"][1] or r["residual"][0] != r["residual"][1])
    ]
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "new": new,
        "closed": closed,
        "rescored": rescored_list,
        "expired_acceptances": expired,
        "counts": {
            "new": len(new),
            "closed": len(closed),
            "rescored": len(rescored_list),
            "expired_acceptances": len(expired),
        },
    }


def last_signed_review() -> OverallRiskReview | None:
    return OverallRiskReview.objects.filter(status=OverallRiskReview.Status.SIGNED).order_by("-signed_at").first()


@transaction.atomic
def overall_review_start(*, acting_user, copy_previous: bool = True) -> OverallRiskReview:
    """Open this year's review as a draft; with `copy_previous` its text starts as a copy
    of the last signed review's. Its period starts where the last one ended."""
    if OverallRiskReview.objects.select_for_update().filter(status=OverallRiskReview.Status.DRAFT).exists():
        raise ValidationError("A draft overall review is already open: finish or sign it first.")
    now = timezone.now()
    previous = last_signed_review()
    if previous is not None:
        period_start = previous.period_end or previous.signed_at
    else:
        first = Risk.objects.order_by("created_at").values_list("created_at", flat=True).first()
        period_start = min(first, now - timedelta(days=365)) if first else now - timedelta(days=365)
    review = OverallRiskReview.objects.create(
        title=f"Overall risk review {now:%Y}",
        previous=previous,
        period_start=period_start,
        summary=previous.summary if (previous and copy_previous) else "",
        decisions=previous.decisions if (previous and copy_previous) else "",
        differences=overall_review_differences(since=period_start, until=now),
        created_by=acting_user,
        created_at=now,
    )
    audit_record(
        action="overall_review.start",
        actor=acting_user,
        obj=review,
        data={"previous": previous.pk if previous else None, "copied": bool(previous and copy_previous)},
    )
    return review


@transaction.atomic
def overall_review_update(*, review: OverallRiskReview, acting_user, summary: str, decisions: str) -> OverallRiskReview:
    review = OverallRiskReview.objects.select_for_update().get(pk=review.pk)
    if review.status != OverallRiskReview.Status.DRAFT:
        raise ValidationError("A signed review cannot be changed.")
    changes = {}
    if summary != review.summary:
        changes["summary"] = [review.summary, summary]
    if decisions != review.decisions:
        changes["decisions"] = [review.decisions, decisions]
    review.summary, review.decisions = summary, decisions
    review.differences = overall_review_differences(since=review.period_start, until=timezone.now())
    review.save(update_fields=["summary", "decisions", "differences"])
    if changes:
        audit_record(action="overall_review.update", actor=acting_user, obj=review, data={"changes": changes})
    return review


@transaction.atomic
def overall_review_sign(*, review: OverallRiskReview, acting_user) -> OverallRiskReview:
    """A security officer signs the review: the differences and the register are frozen."""
    review = OverallRiskReview.objects.select_for_update().get(pk=review.pk)
    if not acting_user.has_perm("risk.sign_overallriskreview"):
        raise PermissionDenied("Only a security officer signs the overall risk review.")
    if review.status != OverallRiskReview.Status.DRAFT:
        raise ValidationError("This review is already signed.")
    if not review.summary.strip():
        raise ValidationError({"summary": "Write the review's conclusions before signing."})
    now = timezone.now()
    review.period_end = now
    review.differences = overall_review_differences(since=review.period_start, until=now)
    review.register_snapshot = [
        {
            "code": r.code,
            "title": r.title,
            "owner": r.owner_display,
            "inherent": r.inherent_level,
            "residual": r.residual_level,
            "treatment": r.treatment,
            "status": r.status,
            "next_review_on": r.next_review_on.isoformat(),
        }
        for r in Risk.objects.select_related("owner", "owner_team").order_by("code")
    ]
    review.status, review.signed_by, review.signed_at = OverallRiskReview.Status.SIGNED, acting_user, now
    review.save(update_fields=["period_end", "differences", "register_snapshot", "status", "signed_by", "signed_at"])
    audit_record(
        action="overall_review.sign",
        actor=acting_user,
        obj=review,
        data={"counts": review.differences["counts"], "risks": len(review.register_snapshot)},
    )
    return review
