"""Change records gated by a risk assessment (C26): services and the admin steps."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from governance.audit.models import AuditEvent
from governance.risk import changes
from governance.risk.models import Change
from governance.risk.selectors import major_changes
from tests.factories_risk import make_change, make_risk, risk_owner, security_officer
from tests.helpers import otp_client

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C26")]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"affects_customer_data": True}, "major"),
        ({"affects_security_controls": True, "pre_approved_routine": True}, "major"),
        ({"expects_downtime": True}, "major"),
        ({"pre_approved_routine": True}, "standard"),
        ({}, "normal"),
    ],
)
def test_type_follows_the_stated_criteria(criteria, expected):
    base = {
        "affects_customer_data": False,
        "affects_security_controls": False,
        "expects_downtime": False,
        "pre_approved_routine": False,
    }
    assert changes.change_type_for(**{**base, **criteria}) == expected
    change = make_change(major=False, **criteria)
    assert change.change_type == expected


def test_major_change_cannot_be_approved_without_a_completed_assessment_linking_risks():
    change = make_change()
    approver = security_officer()
    changes.change_submit(change=change, acting_user=change.requester)
    with pytest.raises(ValidationError, match="completed risk assessment"):
        changes.change_approve(change=change, acting_user=approver)

    # A draft assessment does not count; a completed one must link risks.
    changes.change_assess(change=change, acting_user=approver, summary="Looked at it.", risks=[], complete=False)
    with pytest.raises(ValidationError, match="completed risk assessment"):
        changes.change_approve(change=change, acting_user=approver)
    with pytest.raises(ValidationError, match="links the risks"):
        changes.change_assess(change=change, acting_user=approver, summary="Done.", risks=[], complete=True)

    risk = make_risk()
    changes.change_assess(change=change, acting_user=approver, summary="New bucket; keys rotate.", risks=[risk])
    approved = changes.change_approve(change=change, acting_user=approver, note="Go.")
    assert approved.status == Change.Status.APPROVED and approved.approver == approver
    assert AuditEvent.objects.filter(action="change.approved", object_id=str(change.pk)).exists()


def test_normal_change_needs_no_assessment_but_still_an_independent_approver():
    change = make_change(major=False)
    assert change.change_type == Change.Type.NORMAL
    changes.change_submit(change=change, acting_user=change.requester)
    assert changes.change_approve(change=change, acting_user=security_officer()).status == Change.Status.APPROVED


def test_self_approval_is_refused_even_for_a_security_officer():
    officer = security_officer()
    change = make_change(requester=officer)
    changes.change_submit(change=change, acting_user=officer)
    changes.change_assess(change=change, acting_user=officer, summary="Assessed.", risks=[make_risk()])
    with pytest.raises(ValidationError, match="no self-approval"):
        changes.change_approve(change=change, acting_user=officer)
    change.refresh_from_db()
    assert change.status == Change.Status.ASSESSMENT


def test_only_approvers_approve_and_steps_follow_the_order():
    change = make_change(major=False)
    with pytest.raises(ValidationError, match="only a change in assessment is approved"):
        changes.change_approve(change=change, acting_user=security_officer())
    changes.change_submit(change=change, acting_user=change.requester)
    with pytest.raises(PermissionDenied):
        changes.change_approve(change=change, acting_user=risk_owner())
    with pytest.raises(ValidationError, match="approved"):
        changes.change_implement(change=change, acting_user=change.requester)
    changes.change_approve(change=change, acting_user=security_officer())
    with pytest.raises(ValidationError, match="can no longer be edited"):
        changes.change_update(change=change, acting_user=change.requester, title="Changed after approval")
    changes.change_implement(change=change, acting_user=change.requester)
    with pytest.raises(ValidationError, match="post-implementation review"):
        changes.change_review(change=change, acting_user=change.requester, note=" ")
    done = changes.change_review(change=change, acting_user=change.requester, note="Went as planned.")
    assert done.status == Change.Status.REVIEWED


def test_major_changes_selector_says_whether_each_was_assessed():
    from datetime import timedelta

    from django.utils import timezone

    assessed, unassessed = make_change(), make_change()
    make_change(major=False)
    changes.change_assess(change=assessed, acting_user=security_officer(), summary="Fine.", risks=[make_risk()])
    now = timezone.now()
    rows = {c.code: c.assessed for c in major_changes(since=now - timedelta(days=1), until=now + timedelta(days=1))}
    assert rows == {assessed.code: True, unassessed.code: False}


# --- in the admin, as the roles use it ------------------------------------------------------------


def test_admin_refuses_approval_of_unassessed_major_change_with_a_clear_message():
    owner = risk_owner()
    officer = security_officer()
    client = otp_client(owner)
    response = client.post(
        reverse("admin:risk_change_add"),
        {
            "title": "Rotate the database TLS certificates",
            "description": "New CA.",
            "affects_security_controls": "on",
            "planned_start_0": "2030-01-10",
            "planned_start_1": "10:00",
            "planned_end_0": "2030-01-10",
            "planned_end_1": "11:00",
            "rollback_plan": "Restore the old certificate bundle.",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    change = Change.objects.get()
    assert change.change_type == "major" and change.requester == owner
    assert client.post(reverse("admin:risk_change_step", args=[change.pk, "submit"])).status_code == 302

    officer_client = otp_client(officer)
    url = reverse("admin:risk_change_step", args=[change.pk, "approve"])
    page = officer_client.get(url).content.decode()
    assert "A major change needs a completed risk assessment before it can be approved." in page
    response = officer_client.post(url, {"note": "ok"})
    assert response.status_code == 200
    assert "A major change needs a completed risk assessment" in response.content.decode()
    change.refresh_from_db()
    assert change.status == Change.Status.ASSESSMENT

    # The owner cannot approve at all (no approver permission): 403.
    assert client.post(url, {"note": "mine"}).status_code == 403

    risk = make_risk(owner=owner)
    response = client.post(
        reverse("admin:risk_change_step", args=[change.pk, "assess"]),
        {"summary": "Certificates only; risk RSK reviewed.", "risks": [risk.pk], "complete": "on"},
    )
    assert response.status_code == 302
    assert officer_client.post(url, {"note": "Assessed; go."}).status_code == 302
    change.refresh_from_db()
    assert change.status == Change.Status.APPROVED and change.approver == officer


def test_admin_refuses_self_approval():
    officer = security_officer()
    change = make_change(requester=officer, major=False)
    changes.change_submit(change=change, acting_user=officer)
    response = otp_client(officer).post(reverse("admin:risk_change_step", args=[change.pk, "approve"]), {"note": ""})
    assert response.status_code == 200
    assert "no self-approval" in response.content.decode()
    change.refresh_from_db()
    assert change.status == Change.Status.ASSESSMENT


def test_change_history_page_shows_who_changed_what():
    officer = security_officer()
    change = make_change(major=False)
    changes.change_update(change=change, acting_user=change.requester, title="Exports to the new store")
    body = otp_client(officer).get(reverse("admin:risk_change_history", args=[change.pk])).content.decode()
    assert "change.update" in body and "Exports to the new store" in body
    assert change.requester.username in body


def test_refused_steps_answer_json_clients_with_400_and_the_reason():
    officer = security_officer()
    change = make_change()
    changes.change_submit(change=change, acting_user=change.requester)
    url = reverse("admin:risk_change_step", args=[change.pk, "approve"])
    response = otp_client(officer).post(url, {"note": "ok"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "code": change.code,
        "status": "assessment",
        "errors": ["A major change needs a completed risk assessment before it can be approved."],
    }
    changes.change_assess(change=change, acting_user=officer, summary="ok", risks=[make_risk()])
    response = otp_client(officer).post(url, {"note": "ok"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response.json()["status"] == "approved"
    # Unknown step or change: 404, not 500.
    assert otp_client(officer).post(reverse("admin:risk_change_step", args=[change.pk, "explode"])).status_code == 404
    assert otp_client(officer).post(reverse("admin:risk_change_step", args=[999999, "approve"])).status_code == 404
