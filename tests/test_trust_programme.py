"""Trust-report evidence from the risk register (C23, C26) and the customers' own security
settings (C28): real figures, and missed reviews shown as failing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from governance.risk.models import ContinuityExercise, ContinuityPlan, Risk
from governance.trust.evidence import FAILING, KEPT, NO_DATA, REGISTRY, Period
from tests.factories import OrganisationFactory, StaffFactory
from tests.factories_risk import make_change, make_risk

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
YEAR = Period(since=NOW - timedelta(days=365), until=NOW + timedelta(days=1))


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def _plan(operation: str, *, next_review_on, last_exercised_on):
    return ContinuityPlan.objects.create(
        operation=operation, title=f"{operation} plan", owner=StaffFactory(), rto_hours=8, rpo_hours=24,
        next_review_on=next_review_on, last_exercised_on=last_exercised_on, created_at=NOW, updated_at=NOW,
    )  # fmt: skip


@pytest.mark.commitment("C23")
def test_c23_counts_plans_and_exercises_and_fails_on_a_plan_past_review():
    assert REGISTRY["C23"].func(YEAR).status == NO_DATA
    plan = _plan("support", next_review_on=NOW.date() + timedelta(days=100), last_exercised_on=NOW.date())
    ContinuityExercise.objects.create(
        plan=plan, held_on=NOW.date() - timedelta(days=20), kind="tabletop", result="passed",
        recorded_by=plan.owner, created_at=NOW,
    )  # fmt: skip
    e = REGISTRY["C23"].func(YEAR)
    assert e.status == KEPT
    assert e.summary == (
        "C23: 1 continuity plan with owners and recovery targets, 1 exercise held in the period; "
        "0 past review or not exercised within a year"
    )
    late = _plan("infrastructure", next_review_on=NOW.date() - timedelta(days=3), last_exercised_on=NOW.date())
    e = REGISTRY["C23"].func(YEAR)
    assert e.status == FAILING and e.records[0].label == str(late)
    assert "review overdue since" in e.records[0].problem


@pytest.mark.commitment("C26")
def test_c26_a_major_change_without_assessment_and_a_risk_past_review_are_failing():
    change = make_change(major=True)
    risk = make_risk()
    Risk.objects.filter(pk=risk.pk).update(next_review_on=NOW.date() - timedelta(days=10))
    e = REGISTRY["C26"].func(YEAR)
    assert e.status == FAILING
    assert e.figures["major_changes"] == 1 and e.figures["assessed"] == 0 and e.figures["risks_past_review"] == 1
    problems = {r.label: r.problem for r in e.records}
    assert problems[str(change)] == "major change without a completed risk assessment"
    assert problems[str(Risk.objects.get(pk=risk.pk))].startswith("review was due 2026-11-10")
    assert problems["Overall risk review"].startswith("last signed never")


@pytest.mark.commitment("C28")
def test_c28_counts_organisations_using_each_security_feature():
    from governance.orgsecurity.models import OrganisationSecurityPolicy

    org = OrganisationFactory()
    OrganisationFactory()
    OrganisationSecurityPolicy.objects.create(organisation=org, two_factor="required", ip_allowlist=["10.0.0.0/8"])
    e = REGISTRY["C28"].func(YEAR)
    assert e.status == KEPT
    assert e.figures["organisations"] == 2 and e.figures["two_factor"] == 1 and e.figures["ip_allowlist"] == 1
    assert "1 enforce two-factor, 1 an IP allowlist" in e.summary and "0 single sign-on" in e.summary
