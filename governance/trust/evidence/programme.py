"""Evidence for the commitments kept by modules that may not be installed yet: continuity
plans and risk reviews (C23, C26, from governance.risk) and the customers' own security
features (C28, from governance.orgsecurity and governance.sso). Without the module the
commitment says so; no figures are invented."""

from __future__ import annotations

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
    now = as_of(period)
    total = ContinuityPlan.objects.count()
    overdue = list(selectors.continuity_plans_overdue(now=now)[:20])
    if not total:
        return result(NO_DATA, "no continuity plans registered", {"plans": 0})
    records = [Record(str(p), "review date has passed", admin_url(p)) for p in overdue]
    figures = {"plans": total, "past_review": len(overdue)}
    summary = f"{plural(total, 'continuity plan')} registered, {len(overdue)} past their review date"
    return result(FAILING if records else KEPT, summary, figures, records, source="continuity plans")


@commitment("C26", "Risk assessment for every major change; risks reviewed yearly")
def risk_assessment(period: Period):
    if not apps.is_installed("governance.risk"):
        return no_source("risk register and change records")
    from governance.risk import selectors

    now = as_of(period)
    changes = list(selectors.major_changes(since=period.since, until=period.until))
    unassessed = [c for c in changes if not _assessed(c)]
    overdue = list(selectors.risks_due_for_review(now=now, within_days=0)[:20])
    last_review = selectors.last_overall_review()
    last_at = _when(last_review)
    records = [Record(str(c), "major change without a risk assessment", admin_url(c)) for c in unassessed]
    records += [Record(str(r), "past its yearly review", admin_url(r)) for r in overdue]
    stale = last_at is None or (now - last_at).days > 366
    if stale:
        records.append(
            Record("Overall risk review", f"last one {day(last_at) if last_at else 'never'}: more than a year ago")
        )
    figures = {
        "major_changes": len(changes),
        "assessed": len(changes) - len(unassessed),
        "risks_past_review": len(overdue),
        "last_overall_review": day(last_at) if last_at else None,
    }
    summary = (
        f"{plural(len(changes), 'major change')}, {figures['assessed']} assessed; last overall risk review "
        f"{figures['last_overall_review'] or 'not recorded'}; {plural(len(overdue), 'risk')} past review"
    )
    return result(FAILING if records else KEPT, summary, figures, records, source="risk register, change records")


def _assessed(change) -> bool:
    for attr in ("is_assessed", "assessed"):
        value = getattr(change, attr, None)
        if value is not None:
            return bool(value() if callable(value) else value)
    return getattr(change, "assessment", None) is not None


def _when(review):
    if review is None:
        return None
    for attr in ("completed_at", "reviewed_at", "finished_at", "held_at", "created_at"):
        value = getattr(review, attr, None)
        if value is not None:
            return value
    return None


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
    for model in apps.get_app_config("sso").get_models():
        if any(f.name == "organisation" for f in model._meta.concrete_fields):
            return model.objects.filter(organisation__status="active").count() if hasattr(model, "objects") else None
    return None
