"""The staff dashboard (the admin index page): what needs a person now, most urgent first.

Each source is one query (rows capped), shown only to staff holding the permission to act
on it, and each item links to the admin page where it is acted on. The page therefore
costs a fixed number of queries whatever the data volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from governance.trust.evidence.base import admin_url, changelist_url

# How far ahead the dashboard looks, and how many rows one source may show.
GRANT_ENDING_WITHIN = timedelta(hours=4)
REVIEW_DUE_WITHIN = timedelta(days=3)
REPORT_DUE_WITHIN_DAYS = 2
RISK_REVIEW_WITHIN_DAYS = 30
PER_SOURCE = 10


@dataclass
class Item:
    kind: str
    title: str
    detail: str
    due: datetime | None
    url: str
    overdue: bool = False

    @property
    def left(self) -> str:
        """Time left (or past) in words: "5 h 12 min left", "2 days overdue"."""
        if self.due is None:
            return "overdue" if self.overdue else ""
        delta = self.due - timezone.now()
        past = delta.total_seconds() < 0
        delta = abs(delta)
        if delta >= timedelta(days=2):
            text = f"{delta.days} days"
        elif delta >= timedelta(hours=1):
            text = f"{int(delta.total_seconds() // 3600)} h {int(delta.total_seconds() % 3600 // 60)} min"
        else:
            text = f"{int(delta.total_seconds() // 60)} min"
        return f"{text} overdue" if past else f"{text} left"


def _day_end(day) -> datetime:
    from datetime import UTC, time

    return datetime.combine(day, time(23, 59), tzinfo=UTC)


def _breach_notices(user, now):
    if not user.has_perm("incidents.view_affectedorganisation"):
        return []
    from incidents.deadlines import open_deadlines

    rows = open_deadlines().select_related("incident", "organisation").order_by("deadline_at")[:PER_SOURCE]
    return [
        Item(
            "Breach notice",
            f"Notify {a.organisation} about incident #{a.incident_id}",
            f"{a.get_role_display()} deadline {a.deadline_at:%Y-%m-%d %H:%M} UTC",
            a.deadline_at,
            admin_url(a.incident),
            a.deadline_at <= now,
        )
        for a in rows
    ]


def _support_decisions(user, now):
    if not user.has_perm("access.decide_internal"):
        return []
    from governance.access.models import SupportAccessRequest

    rows = (
        SupportAccessRequest.objects.with_scopes_disabled()
        .filter(status=SupportAccessRequest.Status.PENDING, internal_decision=SupportAccessRequest.Decision.PENDING)
        .exclude(requester=user)
        .select_related("organisation")
        .order_by("decision_deadline")[:PER_SOURCE]
    )
    return [
        Item(
            "Support access",
            f"Decide access to {r.organisation} ({r.ticket_reference})",
            f"{r.duration_label} requested; expires undecided {r.decision_deadline:%Y-%m-%d %H:%M} UTC",
            r.decision_deadline,
            reverse("admin:access_supportaccessrequest_decide", args=[r.pk]),
        )
        for r in rows
    ]


def _grants_ending(user, now):
    if not user.has_perm("access.view_supportgrant"):
        return []
    from governance.access.models import SupportGrant

    rows = (
        SupportGrant.objects.with_scopes_disabled()
        .filter(revoked_at__isnull=True, starts_at__lte=now, ends_at__gt=now, ends_at__lte=now + GRANT_ENDING_WITHIN)
        .select_related("organisation")
        .order_by("ends_at")[:PER_SOURCE]
    )
    return [
        Item(
            "Grant ending",
            f"Grant #{g.pk} to {g.organisation} ends",
            "extend with a new request if still needed",
            g.ends_at,
            admin_url(g),
        )
        for g in rows
    ]


def _access_reviews(user, now):
    if not user.has_perm("access.view_accessreviewcampaign"):
        return []
    from governance.access.models import AccessReviewCampaign

    rows = AccessReviewCampaign.objects.filter(
        status=AccessReviewCampaign.Status.OPEN, due_at__lte=now + REVIEW_DUE_WITHIN
    ).order_by("due_at")[:PER_SOURCE]
    return [
        Item(
            "Access review",
            str(c),
            "certify or revoke every item, then complete",
            c.due_at,
            admin_url(c),
            c.due_at <= now,
        )
        for c in rows
    ]


def _report_requests(user, now):
    if not user.has_perm("incidents.view_reportrequest"):
        return []
    from incidents.models import ReportRequest
    from incidents.workdays import add_working_days, clock_start, uk_date

    horizon = add_working_days(uk_date(now), REPORT_DUE_WITHIN_DAYS)
    # RCA requests have no due date; they surface after 5 working days (the report target).
    rca_since = now - timedelta(days=7)
    rows = (
        ReportRequest.objects.with_scopes_disabled()
        .filter(delivered_at__isnull=True)
        .filter(
            Q(kind=ReportRequest.Kind.REPORT, due_target__lte=horizon)
            | Q(kind=ReportRequest.Kind.RCA, requested_at__lte=rca_since)
        )
        .select_related("organisation")
        .order_by("due_target", "requested_at")[:PER_SOURCE]
    )
    items = []
    for r in rows:
        due_day = (
            r.due_limit if r.kind == ReportRequest.Kind.REPORT else add_working_days(clock_start(r.requested_at), 7)
        )
        due = _day_end(due_day)
        items.append(
            Item(
                "Report request" if r.kind == ReportRequest.Kind.REPORT else "RCA request",
                f"{r.get_kind_display()} for {r.organisation} (incident #{r.incident_id})",
                f"target {r.due_target:%Y-%m-%d}, limit {r.due_limit:%Y-%m-%d}"
                if r.due_target
                else "no RCA published yet",
                due,
                admin_url(r),
                due <= now,
            )
        )
    return items


def _vulnerability_reports(user, now):
    if not user.has_perm("disclosure.view_vulnerabilityreport"):
        return []
    from governance.disclosure.models import VulnerabilityReport
    from incidents.workdays import uk_date

    today = uk_date(now)
    rows = VulnerabilityReport.objects.filter(
        first_response_at__isnull=True,
        status=VulnerabilityReport.Status.NEW,
        first_response_due__lte=today + timedelta(days=1),
    ).order_by("first_response_due")[:PER_SOURCE]
    return [
        Item(
            "Vulnerability report",
            f"First response to {r.reference}",
            f"target {r.first_response_due:%Y-%m-%d}",
            _day_end(r.first_response_due),
            admin_url(r),
            r.first_response_due < today,
        )
        for r in rows
    ]


def _backup_misses(user, now):
    if not user.has_perm("retention.view_backuppolicycheck"):
        return []
    from governance.retention.models import BackupPolicyCheck

    last = BackupPolicyCheck.objects.order_by("-checked_at").first()
    if last is None or not last.misses:
        return []
    return [
        Item(
            "Backup policy",
            miss,
            f"policy check {last.checked_at:%Y-%m-%d %H:%M} UTC",
            last.checked_at,
            admin_url(last),
            True,
        )
        for miss in last.misses[:PER_SOURCE]
    ]


def _risk_items(user, now):
    if not apps.is_installed("governance.risk"):
        return []
    from governance.risk import selectors

    items = []
    if user.has_perm("risk.view_risk"):
        today = timezone.localdate(now)
        for risk in selectors.risks_due_for_review(now=now, within_days=RISK_REVIEW_WITHIN_DAYS)[:PER_SOURCE]:
            items.append(
                Item(
                    "Risk review",
                    f"Review risk {risk}",
                    f"yearly review due {risk.next_review_on:%Y-%m-%d}",
                    _day_end(risk.next_review_on),
                    admin_url(risk),
                    risk.next_review_on < today,
                )
            )
    if user.has_perm("risk.view_overallriskreview"):
        last = selectors.last_overall_review()
        if last is None or last.signed_at < now - timedelta(days=365):
            items.append(
                Item(
                    "Risk review",
                    "Hold the yearly overall risk review",
                    f"last signed {last.signed_at:%Y-%m-%d}" if last else "none signed yet",
                    (last.signed_at + timedelta(days=365)) if last else None,
                    changelist_url("risk.overallriskreview"),
                    True,
                )
            )
    if user.has_perm("risk.view_continuityplan"):
        from django.conf import settings

        today = timezone.localdate(now)
        for plan in selectors.continuity_plans_overdue(now=now)[:PER_SOURCE]:
            # Due: the review date if that passed, else when the last exercise became too old.
            if plan.next_review_on < today:
                due = _day_end(plan.next_review_on)
            elif plan.last_exercised_on:
                due = _day_end(plan.last_exercised_on + timedelta(days=settings.CONTINUITY_EXERCISE_MAX_AGE_DAYS))
            else:
                due = None
            items.append(
                Item("Continuity plan", f"Review or exercise {plan}", "; ".join(plan.flags), due, admin_url(plan), True)
            )
    return items


SOURCES = (
    _breach_notices,
    _support_decisions,
    _grants_ending,
    _access_reviews,
    _report_requests,
    _vulnerability_reports,
    _backup_misses,
    _risk_items,
)


def dashboard_items(user, *, now: datetime | None = None) -> list[Item]:
    """Everything `user` may act on that needs a person now, most urgent first."""
    now = now or timezone.now()
    items = [item for source in SOURCES for item in source(user, now)]
    far = now + timedelta(days=3650)
    return sorted(items, key=lambda i: (not i.overdue, i.due or far))


def next_cleanup(user) -> dict | None:
    if not user.has_perm("retention.view_cleanuprun"):
        return None
    from governance.retention.cadence import next_cleanup_date
    from governance.retention.models import Termination

    waiting = Termination.objects.filter(status__in=[Termination.Status.CONFIRMED, Termination.Status.PURGING]).count()
    return {"date": next_cleanup_date(), "waiting": waiting, "url": changelist_url("retention.termination")}


def heat_maps(user) -> list[dict]:
    if not (apps.is_installed("governance.risk") and user.has_perm("risk.view_risk")):
        return []
    from governance.risk import selectors

    return [{"kind": kind, "heatmap": selectors.heat_map(kind)} for kind in ("inherent", "residual")]


def dashboard_context(request) -> dict:
    user = request.user
    if not (user.is_active and user.is_staff):
        return {}
    return {
        "dashboard_items": dashboard_items(user),
        "dashboard_cleanup": next_cleanup(user),
        "dashboard_heatmaps": heat_maps(user),
        "dashboard_trust_report": user.has_perm("trust.view_trust_report"),
    }
