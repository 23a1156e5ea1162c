"""Periodic access reviews (C05): every support grant of a period and every role holder
is certified or revoked by a security officer, and the result is kept as evidence.

Campaigns are opened by a daily task for the latest complete period (Teleport's access
lists are the model: a recurring review with a due date, reminders when overdue, and
revocation that takes effect at once). The admin and the tasks call these functions.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from governance.access import services
from governance.access.models import AccessReviewCampaign, AccessReviewItem, SupportGrant, User
from governance.access.roles import DATA_PROTECTION_OFFICER, ROLE_NAMES
from governance.audit.services import audit_record
from governance.core.csvsafe import csv_cell

Kind = AccessReviewItem.Kind
ItemDecision = AccessReviewItem.Decision
CampaignStatus = AccessReviewCampaign.Status

# Reminders about an overdue campaign go out at most this often.
ESCALATION_INTERVAL = timedelta(hours=24)


# --- the period -----------------------------------------------------------------------------


def _month_start(months_since_year_zero: int) -> datetime:
    year, month0 = divmod(months_since_year_zero, 12)
    return datetime(year, month0 + 1, 1, tzinfo=UTC)


def review_period_for(now: datetime) -> tuple[datetime, datetime]:
    """The previous complete review period before `now`: [start, end), in UTC.

    Periods are ACCESS_REVIEW_INTERVAL_MONTHS long and aligned to the calendar year
    (quarterly by default: Jan-Mar, Apr-Jun, Jul-Sep, Oct-Dec). `end` is exclusive: the
    first instant of the period that `now` falls in.
    """
    months = settings.ACCESS_REVIEW_INTERVAL_MONTHS
    now = now.astimezone(UTC)
    current = now.year * 12 + (now.month - 1) // months * months
    return _month_start(current - months), _month_start(current)


# --- opening --------------------------------------------------------------------------------


SUPERUSER_ROLE = "Superuser"


def _role_holders() -> list[tuple[User, str]]:
    """Every (active user, role) pair: each role group carries some privilege, and the
    superuser flag (not a group) is the largest privilege of all."""
    users = (
        User.objects.filter(Q(is_staff=True, groups__name__in=ROLE_NAMES) | Q(is_superuser=True), is_active=True)
        .distinct()
        .prefetch_related("groups")
        .order_by("username")
    )
    holders = [(user, group.name) for user in users for group in user.groups.all() if group.name in ROLE_NAMES]
    return holders + [(user, SUPERUSER_ROLE) for user in users if user.is_superuser]


def campaign_open(*, now: datetime) -> AccessReviewCampaign | None:
    """Open the campaign for the latest complete period; None if it exists already.

    Idempotent (one campaign per period, enforced by a unique constraint), so the daily
    task can run it again and again.
    """
    start, end = review_period_for(now)
    if AccessReviewCampaign.objects.filter(period_start=start, period_end=end).exists():
        return None
    grants = list(
        SupportGrant.objects.with_scopes_disabled()
        .filter(starts_at__lt=end, ends_at__gt=start)  # overlapping the period, revoked or not
        .order_by("starts_at", "pk")
    )
    holders = _role_holders()
    with transaction.atomic():
        try:
            with transaction.atomic():
                campaign = AccessReviewCampaign.objects.create(
                    period_start=start,
                    period_end=end,
                    due_at=now + timedelta(days=settings.ACCESS_REVIEW_DUE_DAYS),
                )
        except IntegrityError:
            return None  # opened concurrently
        AccessReviewItem.objects.bulk_create(
            [AccessReviewItem(campaign=campaign, kind=Kind.GRANT, grant=grant) for grant in grants]
            + [AccessReviewItem(campaign=campaign, kind=Kind.ROLE, user=user, role=role) for user, role in holders]
        )
        audit_record(
            action="access_review.opened",
            obj=campaign,
            data={
                "period_start": start,
                "period_end": end,
                "due_at": campaign.due_at,
                "grants": len(grants),
                "roles": len(holders),
            },
        )
        _notify_on_commit("opened", campaign.pk)
    return campaign


# --- decisions --------------------------------------------------------------------------------


def _is_about(item: AccessReviewItem, user: User) -> bool:
    """Whether the item reviews the user's own access (their role, or a grant they hold or asked for)."""
    if item.kind == Kind.ROLE:
        return item.user_id == user.pk
    grant = item.grant
    return grant.request.requester_id == user.pk or grant.staff.filter(pk=user.pk).exists()


def _decide(*, item: AccessReviewItem, acting_user: User, decision: str, note: str) -> AccessReviewItem:
    if not services.is_internal_approver(acting_user):
        raise PermissionDenied("Only a security officer can decide access-review items.")
    now = timezone.now()
    note = note.strip()
    with transaction.atomic():
        item = (
            AccessReviewItem.objects.select_for_update(of=("self",))
            .select_related("campaign", "grant__request")
            .get(pk=item.pk)
        )
        if item.decision != ItemDecision.PENDING:
            raise ValidationError(f"{item} is already {item.get_decision_display().lower()}.")
        if item.campaign.status != CampaignStatus.OPEN:
            raise ValidationError("This access review is already completed.")
        if _is_about(item, acting_user):
            raise PermissionDenied(f"You cannot review your own access ({item}); another security officer must.")
        effect = ""
        if decision == ItemDecision.REVOKED:
            effect = _revoke_access(item, acting_user, note, now)
        item.decision = decision
        item.decided_by = acting_user
        item.decided_at = now
        item.note = note
        item.save(update_fields=["decision", "decided_by", "decided_at", "note"])
        audit_record(
            action=f"access_review.{decision}",
            actor=acting_user,
            obj=item,
            organisation_id=item.grant.organisation_id if item.grant_id else None,
            data={
                "campaign": item.campaign_id,
                "kind": item.kind,
                "grant": item.grant_id,
                "user": item.user.get_username() if item.user_id else None,
                "role": item.role,
                "note": note,
                "effect": effect,
            },
        )
    return item


def _revoke_access(item: AccessReviewItem, acting_user: User, note: str, now: datetime) -> str:
    """End the reviewed access at once; say what happened (for the audit event)."""
    if item.kind == Kind.GRANT:
        grant = item.grant
        if grant.revoked_at is None and grant.ends_at > now:
            services.grant_revoke(grant=grant, acting_user=acting_user, reason=f"Access review: {note}")
            return "grant revoked"
        return "grant had already ended"
    if item.role == SUPERUSER_ROLE:
        if not item.user.is_superuser:
            return "no longer held the role"
        item.user.is_superuser = False
        item.user.save(update_fields=["is_superuser"])
        return "superuser status removed"
    group = Group.objects.filter(name=item.role).first()
    if group is not None and item.user.groups.filter(pk=group.pk).exists():
        item.user.groups.remove(group)  # the m2m receiver audits the change too
        return "removed from role"
    return "no longer held the role"


def review_item_certify(*, item: AccessReviewItem, acting_user: User, note: str = "") -> AccessReviewItem:
    """A security officer confirms the access was (and, for roles, still is) needed."""
    return _decide(item=item, acting_user=acting_user, decision=ItemDecision.CERTIFIED, note=note)


def review_item_revoke(*, item: AccessReviewItem, acting_user: User, note: str) -> AccessReviewItem:
    """A security officer finds the access not needed: it ends at once (grant or role)."""
    if not note.strip():
        raise ValidationError({"note": "Say why the access is revoked."})
    return _decide(item=item, acting_user=acting_user, decision=ItemDecision.REVOKED, note=note)


# --- completion and escalation -----------------------------------------------------------------


def campaign_complete(*, campaign: AccessReviewCampaign, acting_user: User) -> AccessReviewCampaign:
    """Close a campaign once every item is decided."""
    if not services.is_internal_approver(acting_user):
        raise PermissionDenied("Only a security officer can complete an access review.")
    now = timezone.now()
    with transaction.atomic():
        campaign = AccessReviewCampaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status != CampaignStatus.OPEN:
            raise ValidationError("This access review is already completed.")
        pending = campaign.items.filter(decision=ItemDecision.PENDING).count()
        if pending:
            raise ValidationError(f"{pending} item(s) are still pending; decide every item before completing.")
        campaign.status = CampaignStatus.COMPLETED
        campaign.completed_at = now
        campaign.completed_by = acting_user
        campaign.save(update_fields=["status", "completed_at", "completed_by"])
        audit_record(action="access_review.completed", actor=acting_user, obj=campaign, data=_decision_counts(campaign))
    return campaign


def _decision_counts(campaign: AccessReviewCampaign) -> dict[str, int]:
    counts = {value: 0 for value in ItemDecision.values}
    for decision in campaign.items.values_list("decision", flat=True):
        counts[decision] += 1
    return counts


def campaigns_escalate(*, now: datetime) -> int:
    """Remind security officers and the DPO of overdue campaigns, at most once per 24 h each."""
    escalated = 0
    due = AccessReviewCampaign.objects.filter(status=CampaignStatus.OPEN, due_at__lte=now)
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            campaign = (
                AccessReviewCampaign.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, status=CampaignStatus.OPEN)
                .first()
            )
            if campaign is None:
                continue
            if campaign.last_escalated_at is not None and now - campaign.last_escalated_at < ESCALATION_INTERVAL:
                continue
            campaign.last_escalated_at = now
            campaign.save(update_fields=["last_escalated_at"])
            pending = campaign.items.filter(decision=ItemDecision.PENDING).count()
            audit_record(
                action="access_review.escalated", obj=campaign, data={"due_at": campaign.due_at, "pending": pending}
            )
            _notify_on_commit("overdue", campaign.pk)
            escalated += 1
    return escalated


# --- who is told -----------------------------------------------------------------------------


def review_recipients(kind: str) -> list[str]:
    """Security officers always; the data protection officer too once a review is overdue."""
    users = list(services.internal_approvers())
    if kind == "overdue":
        users += list(User.objects.filter(is_active=True, is_staff=True, groups__name=DATA_PROTECTION_OFFICER))
    return sorted({u.email for u in users if u.email})


def _notify_on_commit(kind: str, campaign_id: int) -> None:
    from governance.access.tasks_reviews import notify_access_review

    transaction.on_commit(lambda: notify_access_review.delay(kind, campaign_id))


# --- evidence --------------------------------------------------------------------------------

CSV_COLUMNS = (
    "item",
    "kind",
    "grant",
    "organisation",
    "staff",
    "grant_starts_at",
    "grant_ends_at",
    "grant_revoked_at",
    "user",
    "role",
    "decision",
    "decided_by",
    "decided_at",
    "note",
)


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def campaign_items_for_export(campaign: AccessReviewCampaign):
    return (
        campaign.items.select_related("grant__organisation", "user", "decided_by")
        .prefetch_related("grant__staff")
        .order_by("kind", "pk")
    )


def campaign_csv(campaign: AccessReviewCampaign) -> str:
    """The evidence export: header rows about the campaign, then one row per item."""
    out = io.StringIO()
    writer = csv.writer(out)
    last_day = campaign.period_end - timedelta(days=1)
    writer.writerow(["Access review", f"{campaign.period_start:%Y-%m-%d}", f"{last_day:%Y-%m-%d}"])
    writer.writerow(["Period (UTC, end exclusive)", _iso(campaign.period_start), _iso(campaign.period_end)])
    writer.writerow(["Opened at", _iso(campaign.created_at)])
    writer.writerow(["Due at", _iso(campaign.due_at)])
    writer.writerow(["Status", campaign.get_status_display()])
    completed_by = campaign.completed_by.get_username() if campaign.completed_by_id else ""
    writer.writerow(["Completed at", _iso(campaign.completed_at)])
    writer.writerow(["Completed by", csv_cell(completed_by)])
    writer.writerow([])
    writer.writerow(CSV_COLUMNS)
    for item in campaign_items_for_export(campaign):
        grant = item.grant
        writer.writerow(
            [
                item.pk,
                item.get_kind_display(),
                grant.pk if grant else "",
                csv_cell(grant.organisation.name) if grant else "",
                csv_cell(" ".join(sorted(u.get_username() for u in grant.staff.all()))) if grant else "",
                _iso(grant.starts_at) if grant else "",
                _iso(grant.ends_at) if grant else "",
                _iso(grant.revoked_at) if grant else "",
                csv_cell(item.user.get_username()) if item.user_id else "",
                csv_cell(item.role),
                item.get_decision_display(),
                csv_cell(item.decided_by.get_username()) if item.decided_by_id else "",
                _iso(item.decided_at),
                csv_cell(item.note),
            ]
        )
    return out.getvalue()
