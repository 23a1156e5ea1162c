"""Evidence for the commitments kept by modules that may not be installed yet: continuity
plans and risk reviews (C23, C26, from governance.risk) and the customers' own security
features (C28, from governance.orgsecurity and governance.sso). Without the module the
commitment says so; no figures are invented."""

from __future__ import annotations

from datetime import timedelta

from django.apps import apps

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
    no_source,
    plural,
    result,
)


@commitment("C23", "Business continuity plan for support and infrastructure")
def continuity_plans(period: Period):
    if not apps.is_installed("governance.risk"):
        return no_source("continuity plans")
    from governance.risk import selectors

    ContinuityPlan = apps.get_model("risk", "ContinuityPlan")
    ContinuityExercise = apps.get_model("risk", "ContinuityExercise")
    now = as_of(period)
    total = ContinuityPlan.objects.count()
    if not total:
        return result(NO_DATA, "no continuity plans registered", {"plans": 0})
    flagged = selectors.continuity_plans_overdue(now=now)
    exercises = ContinuityExercise.objects.filter(
        held_on__gte=period.since.date(), held_on__lt=period.until.date()
    ).count()
    records = [Record(str(p), "; ".join(p.flags), admin_url(p)) for p in flagged[:20]]
    figures = {"plans": total, "exercises_in_period": exercises, "needing_attention": len(flagged)}
    summary = (
        f"{plural(total, 'continuity plan')} with owners and recovery targets, {plural(exercises, 'exercise')} "
        f"held in the period; {len(flagged)} past review or not exercised within a year"
    )
    return result(FAILING if records else KEPT, summary, figures, records, source="continuity plans")


@commitment("C26", "Risk assessment for every major change; risks reviewed yearly")
def risk_assessment(period: Period):
    if not apps.is_installed("governance.risk"):
        return no_source("risk register and change records")
    from governance.risk import selectors

    now = as_of(period)
    changes = list(selectors.major_changes(since=period.since, until=period.until))
    unassessed = [c for c in changes if not c.assessed]
    overdue = selectors.risks_due_for_review(now=now, within_days=-1)
    n_overdue = overdue.count()
    last_review = selectors.last_overall_review()
    last_at = last_review.signed_at if last_review else None
    records = [Record(str(c), "major change without a completed risk assessment", admin_url(c)) for c in unassessed]
    records += [Record(str(r), f"review was due {day(r.next_review_on)}", admin_url(r)) for r in overdue[:20]]
    if last_at is None or last_at < now - timedelta(days=365):
        records.append(
            Record("Overall risk review", f"last signed {day(last_at) if last_at else 'never'}: more than a year ago")
        )
    figures = {
        "major_changes": len(changes),
        "assessed": len(changes) - len(unassessed),
        "risks_past_review": n_overdue,
        "last_overall_review": day(last_at) if last_at else None,
    }
    summary = (
        f"{plural(len(changes), 'major change')}, {figures['assessed']} assessed; last overall risk review "
        f"{figures['last_overall_review'] or 'not signed yet'}; {plural(n_overdue, 'risk')} past its yearly review"
    )
    return result(FAILING if records else KEPT, summary, figures, records, source="risk register, change records")


@commitment("C28", "Additional security features customers can turn on")
def customer_security_features(period: Period):
    if not apps.is_installed("governance.orgsecurity"):
        return no_source("per-organisation security settings")
    from django.db.models import Count, Q

    Policy = apps.get_model("orgsecurity", "OrganisationSecurityPolicy")
    Organisation = apps.get_model("tenancy", "Organisation")
    orgs = Organisation.objects.filter(status="active").count()
    policies = Policy.objects.filter(organisation__status="active")
    totals = policies.aggregate(
        two_factor=Count("pk", filter=~Q(two_factor="optional")),
        ip_allowlist=Count("pk", filter=~Q(ip_allowlist=[])),
        session_policy=Count(
            "pk", filter=Q(idle_timeout_minutes__isnull=False) | Q(session_lifetime_hours__isnull=False)
        ),
    )
    figures = {"organisations": orgs, **totals}
    sso = ""
    if apps.is_installed("governance.sso"):
        sso_count = _sso_count()
        if sso_count is not None:
            figures["single_sign_on"] = sso_count
            sso = f", {sso_count} single sign-on"
    summary = (
        f"of {plural(orgs, 'active organisation')}: {totals['two_factor']} enforce two-factor, "
        f"{totals['ip_allowlist']} an IP allowlist, {totals['session_policy']} a session policy{sso}; "
        "every organisation has its own audit log"
    )
    return result(KEPT, summary, figures, source="organisation security policies")


def _sso_count() -> int | None:
    """Organisations with single sign-on switched on (governance.sso), or None if its model is absent."""
    try:
        config = apps.get_model("sso", "SSOConfiguration")
    except LookupError:
        return None
    return config.objects.filter(enabled=True, organisation__status="active").count()
