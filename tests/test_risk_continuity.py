"""Business continuity (C23): a plan per major operation with owner, RTO/RPO, a versioned
document, encrypted escalation contacts, exercises, and flags for overdue reviews and
exercises older than a year."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

from governance.access.roles import AUDITOR
from governance.audit.models import AuditEvent
from governance.risk import continuity, selectors, tasks
from governance.risk.models import ContinuityPlan
from tests.factories import StaffFactory
from tests.factories_risk import risk_owner
from tests.helpers import otp_client

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C23")]

CONTACTS = "Incident lead, Ada Example, +44 7700 900123\nHosting account manager, +44 20 7946 0000"


def at(time_machine, *args) -> datetime:
    moment = datetime(*args, tzinfo=UTC)
    time_machine.move_to(moment, tick=False)
    return moment


@pytest.fixture(autouse=True)
def _mail_sent_in_process(monkeypatch):
    monkeypatch.setattr(tasks.notify_continuity_plan, "delay", lambda pk: tasks.notify_continuity_plan(pk))


def _plan(owner, **overrides) -> ContinuityPlan:
    fields = {
        "operation": ContinuityPlan.Operation.SUPPORT,
        "title": "Customer support continuity plan",
        "owner": owner,
        "rto_hours": 8,
        "rpo_hours": 1,
        "escalation_contacts": CONTACTS,
        "document": "# Support\n\n1. Switch the phone line to the backup provider.",
        **overrides,
    }
    return continuity.continuity_plan_save(acting_user=owner, **fields)


def test_plan_document_is_versioned_and_contacts_are_encrypted(time_machine):
    at(time_machine, 2030, 2, 1, 9)
    owner = risk_owner()
    plan = _plan(owner)
    assert plan.current_version == 1 and plan.next_review_on == date(2031, 2, 1)
    continuity.continuity_plan_save(acting_user=owner, plan=plan, document=plan.versions.get().document)
    plan.refresh_from_db()
    assert plan.current_version == 1  # unchanged text: no new version
    continuity.continuity_plan_save(
        acting_user=owner, plan=plan, document="# Support\n\n1. Use the hosted fallback desk.", change_note="Fallback"
    )
    plan.refresh_from_db()
    assert plan.current_version == 2
    assert list(plan.versions.values_list("number", "change_note")) == [(2, "Fallback"), (1, "")]
    assert "Switch the phone line" in plan.versions.get(number=1).document
    old = plan.versions.get(number=1)
    page = otp_client(owner).get(reverse("admin:risk_continuityplanversion_change", args=[old.pk])).content.decode()
    assert "<h1>Support</h1>" in page and "<li>Switch the phone line" in page

    with connection.cursor() as cursor:
        cursor.execute("SELECT escalation_contacts FROM risk_continuityplan WHERE id = %s", [plan.pk])
        raw = bytes(cursor.fetchone()[0])
    assert b"Ada Example" not in raw and b"7700" not in raw
    assert plan.escalation_contacts == CONTACTS
    trail = " ".join(str(e.data) for e in AuditEvent.objects.filter(object_type="risk.continuityplan"))
    assert "Ada Example" not in trail

    with pytest.raises(ValidationError, match="at least yearly"):
        continuity.continuity_plan_save(acting_user=owner, plan=plan, next_review_on=date(2031, 6, 1))
    with pytest.raises(ValidationError, match="needs its document"):
        _plan(owner, operation=ContinuityPlan.Operation.INFRASTRUCTURE, document="")


def test_overdue_reviews_and_old_exercises_are_flagged_and_owners_told(
    time_machine, django_capture_on_commit_callbacks
):
    at(time_machine, 2030, 2, 1, 9)
    owner = risk_owner(email="bcp-owner@assyst.example")
    support = _plan(owner)
    infra = _plan(owner, operation=ContinuityPlan.Operation.INFRASTRUCTURE, title="Infrastructure plan")
    continuity.continuity_exercise_record(
        plan=support,
        acting_user=owner,
        held_on=date(2030, 1, 20),
        kind="tabletop",
        scenario="Ticketing supplier down for a day.",
        result="partial",
        improvements="Print the on-call rota.",
    )
    continuity.continuity_exercise_record(
        plan=infra,
        acting_user=owner,
        held_on=date(2030, 1, 25),
        kind="full",
        scenario="Restore the database into the second region.",
        result="passed",
    )
    with pytest.raises(ValidationError, match="after it was held"):
        continuity.continuity_exercise_record(
            plan=infra, acting_user=owner, held_on=date(2030, 3, 1), kind="full", scenario="x", result="passed"
        )
    assert selectors.continuity_plans_overdue(now=datetime(2030, 6, 1, tzinfo=UTC)) == []

    # Support reviewed in the autumn; infrastructure never again.
    at(time_machine, 2030, 10, 1, 9)
    continuity.continuity_plan_save(acting_user=owner, plan=support, reviewed=True)

    now = at(time_machine, 2031, 2, 2, 6, 20)
    flagged = {p.operation: p.flags for p in selectors.continuity_plans_overdue(now=now)}
    assert flagged == {
        "infrastructure": [
            "review overdue since 2031-02-01",
            "last exercised 2030-01-25, more than a year ago",
        ],
        "support": ["last exercised 2030-01-20, more than a year ago"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        tasks.check_continuity_plans()
        tasks.check_continuity_plans()  # same day: no second email
    subjects = sorted(m.subject for m in mail.outbox)
    assert subjects == [
        "[Assyst] Continuity plan needs attention: Customer support continuity plan",
        "[Assyst] Continuity plan needs attention: Infrastructure plan",
    ]
    assert all(m.to == ["bcp-owner@assyst.example"] for m in mail.outbox)
    assert "review overdue since 2031-02-01" in "".join(m.body for m in mail.outbox)


def test_risk_owner_keeps_plans_and_exercises_in_the_admin(time_machine):
    at(time_machine, 2030, 2, 1, 9)
    owner = risk_owner()
    client = otp_client(owner)
    response = client.post(
        reverse("admin:risk_continuityplan_add"),
        {
            "operation": "support",
            "title": "Support continuity",
            "owner": owner.pk,
            "rto_hours": "8",
            "rpo_hours": "1",
            "escalation_contacts": CONTACTS,
            "document": "# Plan\n\nSteps.",
            "change_note": "First version",
            "next_review_on": "",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
            "exercises-TOTAL_FORMS": "0",
            "exercises-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    plan = ContinuityPlan.objects.get()
    assert plan.current_version == 1 and plan.next_review_on == date(2031, 2, 1)
    change_page = client.get(reverse("admin:risk_continuityplan_change", args=[plan.pk]))
    assert change_page.status_code == 200 and "never exercised" in change_page.content.decode()

    response = client.post(
        reverse("admin:risk_continuityexercise_add"),
        {
            "plan": plan.pk,
            "held_on": "2030-01-30",
            "kind": "tabletop",
            "scenario": "Office unavailable.",
            "result": "passed",
            "improvements": "",
        },
    )
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.last_exercised_on == date(2030, 1, 30)

    auditor = otp_client(StaffFactory(role=AUDITOR))
    assert auditor.get(reverse("admin:risk_continuityplan_changelist")).status_code == 200
    assert auditor.get(reverse("admin:risk_continuityplan_add")).status_code == 403
