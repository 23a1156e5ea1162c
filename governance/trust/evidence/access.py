"""Evidence for support access (C02-C05) and roles (C25), from grants, the access log,
access reviews, role groups and the audit-chain verification runs."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db.models import Count, Exists, F, OuterRef, Q
from django.db.models.functions import Coalesce

from governance.access.models import (
    AccessLogEntry,
    AccessReviewCampaign,
    AccessReviewItem,
    SupportAccessRequest,
    SupportGrant,
    User,
)
from governance.trust.evidence.base import (
    FAILING,
    KEPT,
    NO_DATA,
    Period,
    Record,
    admin_url,
    as_of,
    commitment,
    day,
    plural,
    result,
)

# How long beat may take to remove an ended grant's permissions before it counts as a miss.
PERMISSION_REMOVAL_GRACE = timedelta(minutes=5)


def _grants():
    return SupportGrant.objects.with_scopes_disabled()


@commitment("C02", "Staff cannot reach customer data by default")
def staff_access_by_default(period: Period):
    """Every read of customer data was under a grant naming that person and open at the
    time; no ended grant still holds its permissions."""
    valid_grant = (
        _grants()
        .filter(
            pk=OuterRef("grant_id"),
            staff=OuterRef("staff_id"),
            starts_at__lte=OuterRef("at"),
            ends_at__gt=OuterRef("at"),
        )
        .filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=OuterRef("at")))
    )
    log = AccessLogEntry.objects.with_scopes_disabled().filter(at__gte=period.since, at__lt=period.until)
    totals = log.aggregate(reads=Count("pk"), outside=Count("pk", filter=~Q(Exists(valid_grant))))
    outside = list(log.exclude(Exists(valid_grant)).select_related("staff").order_by("-at")[:20])
    now = as_of(period)
    stale = list(
        _grants()
        .filter(permissions_removed_at__isnull=True)
        .filter(Q(ends_at__lte=now - PERMISSION_REMOVAL_GRACE) | Q(revoked_at__lte=now - PERMISSION_REMOVAL_GRACE))
        .select_related("organisation")
        .order_by("ends_at")[:20]
    )
    records = [
        Record(f"Access log entry #{e.pk}", f"{e.staff} read data at {e.at:%Y-%m-%d %H:%M} outside a grant naming them")
        for e in outside
    ] + [Record(str(g), "ended but still holds its permissions (expiry task not run)", admin_url(g)) for g in stale]
    figures = {
        "reads": totals["reads"],
        "reads_outside_grant": totals["outside"],
        "ended_grants_with_permissions": len(stale),
    }
    status = FAILING if records else KEPT
    summary = (
        f"{plural(totals['reads'], 'staff read')} of customer data in the period, "
        f"{totals['reads'] - totals['outside']} under an open grant naming the reader; "
        f"{plural(len(stale), 'ended grant')} still holding permissions"
    )
    return result(status, summary, figures, records, source="access log, support grants")


@commitment("C03", "Support access only when approved, with the customer's consent")
def approval_and_consent(period: Period):
    requests = SupportAccessRequest.objects.with_scopes_disabled().filter(
        created_at__gte=period.since, created_at__lt=period.until
    )
    by_status = {r["status"]: r["n"] for r in requests.order_by().values("status").annotate(n=Count("pk"))}
    Decision = SupportAccessRequest.Decision
    grants = _grants().filter(starts_at__gte=period.since, starts_at__lt=period.until)
    Named = SupportAccessRequest.named_staff.through
    approver_was_named = Exists(
        Named.objects.filter(
            supportaccessrequest_id=OuterRef("request_id"), user_id=OuterRef("request__internal_decided_by")
        )
    )
    bad = list(
        grants.filter(
            ~Q(request__internal_decision=Decision.APPROVED)
            | ~Q(request__customer_decision=Decision.APPROVED)
            | Q(request__internal_decided_by=F("request__requester"))
            | Q(approver_was_named)
        )
        .select_related("organisation")
        .order_by("-starts_at")[:20]
    )
    issued = grants.count()
    figures = {
        "requests": sum(by_status.values()),
        "by_status": by_status,
        "grants": issued,
        "grants_without_both_approvals": len(bad),
    }
    records = [
        Record(str(g), "issued without an independent internal approval and the customer's consent", admin_url(g))
        for g in bad
    ]
    if not by_status and not issued:
        return result(NO_DATA, "no support-access requests in the period", figures)
    summary = (
        f"{plural(sum(by_status.values()), 'request')}: {by_status.get('approved', 0)} approved by both a security "
        f"officer and the customer, {by_status.get('denied', 0)} denied, "
        f"{by_status.get('expired', 0)} expired undecided; "
        f"{plural(issued, 'grant')}, {issued - len(bad)} with both approvals"
    )
    return result(FAILING if bad else KEPT, summary, figures, records, source="support-access requests and grants")


@commitment("C04", "Few personnel, need-to-know")
def need_to_know(period: Period):
    limit = settings.SUPPORT_ACCESS_MAX_NAMED_STAFF
    rows = list(
        _grants()
        .filter(starts_at__gte=period.since, starts_at__lt=period.until)
        .annotate(
            n_staff=Count("staff", distinct=True),
            max_hours=Coalesce(F("organisation__support_access_policy__max_grant_hours"), 8),
        )
        .select_related("organisation")
        .only("pk", "starts_at", "ends_at", "organisation__name")
        .order_by("-starts_at")
    )
    if not rows:
        return result(NO_DATA, "no support grants in the period", {"grants": 0})
    people = set(
        _grants().filter(starts_at__gte=period.since, starts_at__lt=period.until).values_list("staff", flat=True)
    )
    records = []
    for g in rows:
        length = g.ends_at - g.starts_at
        if g.n_staff > limit:
            records.append(Record(str(g), f"names {g.n_staff} staff (most allowed {limit})", admin_url(g)))
        elif length > timedelta(hours=g.max_hours):
            records.append(Record(str(g), f"lasts {length} (customer allows {g.max_hours} h)", admin_url(g)))
    longest = max(g.ends_at - g.starts_at for g in rows)
    figures = {
        "grants": len(rows),
        "distinct_staff": len(people - {None}),
        "most_staff_on_one_grant": max(g.n_staff for g in rows),
        "longest_grant_hours": round(longest.total_seconds() / 3600, 1),
        "over_limit": len(records),
    }
    summary = (
        f"{plural(len(rows), 'grant')} to {plural(figures['distinct_staff'], 'named person', 'named people')}, "
        f"at most {figures['most_staff_on_one_grant']} per grant (limit {limit}), longest "
        f"{figures['longest_grant_hours']:g} h; {len(records)} over the customer's limits"
    )
    return result(FAILING if records else KEPT, summary, figures, records, source="support grants")


@commitment("C05", "Support access reviewed periodically")
def access_reviews(period: Period):
    now = as_of(period)
    campaigns = AccessReviewCampaign.objects.all()
    overdue = list(campaigns.filter(status=AccessReviewCampaign.Status.OPEN, due_at__lt=now).order_by("due_at")[:20])
    late = list(
        campaigns.filter(
            status=AccessReviewCampaign.Status.COMPLETED,
            completed_at__gte=period.since,
            completed_at__lt=period.until,
            completed_at__gt=F("due_at"),
        )[:20]
    )
    last = (
        campaigns.filter(status=AccessReviewCampaign.Status.COMPLETED, completed_at__lt=period.until)
        .annotate(
            n_items=Count("items"),
            n_revoked=Count("items", filter=Q(items__decision=AccessReviewItem.Decision.REVOKED)),
        )
        .order_by("-completed_at")
        .first()
    )
    completed_in_period = campaigns.filter(completed_at__gte=period.since, completed_at__lt=period.until).count()
    records = [Record(str(c), f"open past its due date {day(c.due_at)}", admin_url(c)) for c in overdue] + [
        Record(str(c), f"completed {day(c.completed_at)}, after its due date {day(c.due_at)}", admin_url(c))
        for c in late
    ]
    figures = {
        "completed_in_period": completed_in_period,
        "overdue_open": len(overdue),
        "completed_late": len(late),
        "last_completed": day(last.completed_at) if last else None,
        "last_items": last.n_items if last else 0,
        "last_revoked": last.n_revoked if last else 0,
    }
    if last is None and not overdue:
        return result(NO_DATA, "no access review completed yet", figures)
    summary = (
        f"last access review finished {day(last.completed_at)}, {plural(last.n_items, 'item')}, "
        f"{last.n_revoked} revoked"
        if last
        else "no access review completed yet"
    ) + f"; {completed_in_period} completed in the period, {len(overdue)} overdue"
    return result(FAILING if records else KEPT, summary, figures, records, source="access-review campaigns")


@commitment("C25", "Least privilege, role-based permissions")
def least_privilege(period: Period):
    from governance.access.roles import AUDITOR, ROLES
    from governance.audit.tasks import TASK_NAME as AUDIT_TASK
    from governance.core.models import JobRun

    declared = {}
    auditor = {f"{p.content_type.app_label}.{p.codename}" for p in _auditor_permissions_with_types()}
    for role in ROLES:
        declared[role.name] = auditor if role.name == AUDITOR else set(role.permissions)
    actual: dict[str, set[str]] = {name: set() for name in declared}
    for name, app, codename in Group.objects.filter(name__in=declared).values_list(
        "name", "permissions__content_type__app_label", "permissions__codename"
    ):
        if codename:
            actual[name].add(f"{app}.{codename}")
    drift = [name for name in declared if declared[name] != actual[name]]
    staff = User.objects.filter(is_staff=True, is_active=True).aggregate(
        staff=Count("pk", distinct=True),
        superusers=Count("pk", filter=Q(is_superuser=True), distinct=True),
        without_role=Count("pk", filter=Q(groups__isnull=True), distinct=True),
    )
    runs = JobRun.objects.filter(task=AUDIT_TASK, started_at__gte=period.since, started_at__lt=period.until)
    chain = runs.aggregate(
        ok=Count("pk", filter=Q(outcome=JobRun.Outcome.SUCCESS)),
        failed=Count("pk", filter=Q(outcome=JobRun.Outcome.FAILURE)),
    )
    last_failure = runs.filter(outcome=JobRun.Outcome.FAILURE).order_by("-started_at").first()
    records = [Record(f"Role {name}", "permissions differ from the code (run sync_roles)") for name in drift]
    if last_failure is not None:
        records.append(
            Record(
                str(last_failure),
                last_failure.error[:200] or "audit chain verification failed",
                admin_url(last_failure),
            )
        )
    figures = {
        **staff,
        "roles": len(declared),
        "roles_drifted": len(drift),
        "chain_verifications": chain["ok"],
        "chain_failures": chain["failed"],
    }
    summary = (
        f"{len(declared)} roles, {len(drift)} differing from the code; "
        f"{plural(staff['staff'], 'active staff account')}, "
        f"{staff['superusers']} superuser(s), {staff['without_role']} without a role; audit chain verified "
        f"{plural(chain['ok'], 'time')} in the period, {chain['failed']} failure(s)"
    )
    return result(FAILING if records else KEPT, summary, figures, records, source="role groups, audit-chain job runs")


def _auditor_permissions_with_types():
    """The Auditor's permissions, computed as `roles_sync` does (every view_* of audited apps)."""
    from django.contrib.auth.models import Permission

    from governance.access.roles import AUDITED_APPS

    return (
        Permission.objects.filter(content_type__app_label__in=AUDITED_APPS, codename__startswith="view_")
        .exclude(codename__in=["view_customer_data"])
        .select_related("content_type")
    )
