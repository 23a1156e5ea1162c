"""Every risk admin page works for the roles that use it, on the demo register (C23, C26)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.urls import reverse

from governance.access.roles import AUDITOR, RISK_OWNER, SECURITY_OFFICER, SUPPORT_ENGINEER
from governance.risk import selectors
from governance.risk.demo import seed_risk_register
from governance.risk.models import Change, ContinuityPlan, OverallRiskReview, Risk
from tests.factories import StaffFactory
from tests.helpers import otp_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    owner = StaffFactory(role=RISK_OWNER)
    officer = StaffFactory(role=SECURITY_OFFICER)
    requester = StaffFactory(role=RISK_OWNER)
    assert seed_risk_register(owner=owner, officer=officer, requester=requester)
    assert seed_risk_register(owner=owner, officer=officer, requester=requester) == []  # idempotent
    return owner, officer


@pytest.mark.commitment("C26")
@pytest.mark.commitment("C23")
@pytest.mark.parametrize("role", [RISK_OWNER, SECURITY_OFFICER, AUDITOR])
def test_every_risk_admin_page_renders_for_the_roles(demo, role):
    client = otp_client(StaffFactory(role=role))
    for model in apps.get_app_config("risk").get_models():
        name = model._meta.model_name
        try:
            changelist = reverse(f"admin:risk_{name}_changelist")
        except Exception:  # noqa: BLE001, S112 - not registered in the admin (assessments live on the change page)
            continue
        assert client.get(changelist).status_code == 200, (role, name)
        obj = model.objects.order_by("pk").first()
        if obj is not None:
            for view in ("change", "history"):
                response = client.get(reverse(f"admin:risk_{name}_{view}", args=[obj.pk]))
                assert response.status_code == 200, (role, name, view)


@pytest.mark.commitment("C26")
def test_demo_register_feeds_the_dashboard_selectors(demo):
    from django.utils import timezone

    now = timezone.now()
    assert Risk.objects.count() == 15
    assert {r["key"] for r in selectors.heat_map("residual")["levels"]} == {"low", "medium", "high", "critical"}
    levels = {lv["key"]: lv["count"] for lv in selectors.heat_map("inherent")["levels"]}
    assert sum(levels.values()) == 15 and all(levels[k] for k in ("medium", "high", "critical"))
    assert selectors.risks_due_for_review(now=now, within_days=30).count() == 2
    assert [c.assessed for c in selectors.major_changes(since=now - timezone.timedelta(days=1), until=now)] == [True]
    assert Change.objects.get(change_type="major").status == Change.Status.APPROVED
    assert ContinuityPlan.objects.count() == 4
    assert [p.operation for p in selectors.continuity_plans_overdue(now=now)] == ["incident_response"]
    last = selectors.last_overall_review()
    assert last is not None and last.status == OverallRiskReview.Status.SIGNED
    assert not selectors.overall_review_overdue(now=now)


@pytest.mark.commitment("C25")
def test_roles_without_risk_duties_see_no_risk_admin(demo):
    client = otp_client(StaffFactory(role=SUPPORT_ENGINEER))
    assert client.get(reverse("admin:risk_risk_changelist")).status_code == 403
    assert client.get(reverse("admin:risk_change_changelist")).status_code == 403


@pytest.mark.commitment("C26")
def test_sign_offs_reviews_controls_and_matrix_versions_through_the_admin():
    import json

    from governance.risk.models import Control, RiskAcceptance, RiskMatrix, RiskReview
    from tests.factories_risk import make_risk

    owner = StaffFactory(role=RISK_OWNER)
    officer = StaffFactory(role=SECURITY_OFFICER)
    risk = make_risk(owner=owner)
    client = otp_client(owner)

    response = client.post(reverse("admin:risk_control_add"), {"name": "Laptop MDM", "status": "implemented"})
    assert response.status_code == 302
    assert Control.objects.get().code == "CTL-001"

    from django.utils import timezone

    expiry = (timezone.localdate() + timezone.timedelta(days=90)).isoformat()
    response = client.post(
        reverse("admin:risk_riskacceptance_add"),
        {"risk": risk.pk, "reason": "MDM wipes lost laptops.", "expires_on": expiry},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    acceptance = RiskAcceptance.objects.get()
    assert acceptance.snapshot["code"] == risk.code
    page = client.get(reverse("admin:risk_riskacceptance_change", args=[acceptance.pk])).content.decode()
    assert "Risk as accepted" in page and risk.code in page

    response = client.post(
        reverse("admin:risk_riskreview_add"),
        {"risk": risk.pk, "reviewed_on": timezone.localdate().isoformat(), "notes": "Fine.", "residual_impact": "2"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    review = RiskReview.objects.get()
    assert (review.residual_level_before, review.residual_level_after) == ("medium", "low")

    # Revoking from the changelist action reopens the risk.
    response = client.post(
        reverse("admin:risk_riskacceptance_changelist"),
        {"action": "revoke", "_selected_action": [acceptance.pk]},
    )
    assert response.status_code == 302
    acceptance.refresh_from_db()
    risk.refresh_from_db()
    assert acceptance.status == "revoked" and risk.status == "open"

    officer_client = otp_client(officer)
    active = RiskMatrix.objects.get(is_active=True)
    grid = [["low"] * 5 for _ in range(5)]
    grid[4][4] = "critical"
    response = officer_client.post(
        reverse("admin:risk_riskmatrix_add"),
        {
            "name": active.name,
            "likelihood_labels": json.dumps(active.likelihood_labels),
            "impact_labels": json.dumps(active.impact_labels),
            "levels": json.dumps(active.levels),
            "grid": json.dumps(grid),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert RiskMatrix.objects.get(is_active=True).version == 2
    response = officer_client.post(
        reverse("admin:risk_riskmatrix_add"),
        {
            "name": active.name,
            "likelihood_labels": json.dumps(active.likelihood_labels),
            "impact_labels": json.dumps(active.impact_labels),
            "levels": json.dumps(active.levels),
            "grid": json.dumps([["nope"] * 5] * 5),
        },
    )
    assert response.status_code == 200 and "Every grid cell must name one of the levels." in response.content.decode()


@pytest.mark.commitment("C26")
def test_risk_page_links_to_its_review_and_sign_off_with_the_risk_preselected():
    from governance.risk import reviews
    from tests.factories_risk import make_risk

    owner = StaffFactory(role=RISK_OWNER)
    risk = make_risk(owner=owner)
    reviews.risk_review_record(risk=risk, acting_user=owner, notes="Checked the MDM report.")
    client = otp_client(owner)
    page = client.get(reverse("admin:risk_risk_change", args=[risk.pk])).content.decode()
    assert f"{reverse('admin:risk_riskreview_add')}?risk={risk.pk}" in page
    assert f"{reverse('admin:risk_riskacceptance_add')}?risk={risk.pk}" in page
    assert "Checked the MDM report." in page
    add = client.get(reverse("admin:risk_riskreview_add"), {"risk": risk.pk}).content.decode()
    assert f'<option value="{risk.pk}" selected>' in add
    # Someone else's risk: readable, but no sign-off link.
    other = otp_client(StaffFactory(role=RISK_OWNER)).get(reverse("admin:risk_risk_change", args=[risk.pk]))
    assert f"riskacceptance/add/?risk={risk.pk}" not in other.content.decode()
