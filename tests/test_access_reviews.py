"""Access is also reviewed periodically (C05): every support grant of the period and every
staff role holder is certified or revoked by a security officer; revocation takes effect
at once; overdue reviews are escalated; the result is exported as evidence."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab
from django.contrib.auth.models import Group
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from assyst.celery import BEAT_SCHEDULE
from governance.access import reviews, services, tasks, tasks_reviews
from governance.access.models import AccessReviewCampaign, AccessReviewItem, User
from governance.access.roles import (
    AUDITOR,
    DATA_PROTECTION_OFFICER,
    INCIDENT_MANAGER,
    RISK_OWNER,
    SECURITY_OFFICER,
    SUPPORT_ENGINEER,
)
from governance.audit.models import AuditEvent
from governance.core.models import JobRun
from governance.tenancy.policies import organisations_with_customer_data
from tests.factories import StaffFactory, approved_grant
from tests.helpers import otp_client

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C05")]

Decision = AccessReviewItem.Decision
Kind = AccessReviewItem.Kind
# The last day of Q1 2030; campaigns in these tests open for Q1 on 1 April.
Q1_START = datetime(2030, 1, 1, tzinfo=UTC)
Q2_START = datetime(2030, 4, 1, tzinfo=UTC)
OPENING = datetime(2030, 4, 1, 2, 0, tzinfo=UTC)


def at(time_machine, *args) -> datetime:
    moment = datetime(*args, tzinfo=UTC)
    time_machine.move_to(moment, tick=False)
    return moment


@pytest.fixture(autouse=True)
def _mail_sent_in_process(monkeypatch):
    """Notification tasks run in-process when their on-commit callback fires (no broker)."""
    for task in (tasks_reviews.notify_access_review, tasks.notify_support_access):
        monkeypatch.setattr(task, "delay", lambda *args, _task=task: _task(*args))


def _open(now: datetime, captured) -> AccessReviewCampaign:
    with captured(execute=True):
        campaign = reviews.campaign_open(now=now)
    assert campaign is not None
    return campaign


def _item(campaign, **lookup) -> AccessReviewItem:
    return campaign.items.get(**lookup)


# --- the period ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ((2030, 4, 1, 0, 0), ((2030, 1, 1), (2030, 4, 1))),
        ((2030, 5, 17, 12, 0), ((2030, 1, 1), (2030, 4, 1))),
        ((2030, 6, 30, 23, 59), ((2030, 1, 1), (2030, 4, 1))),
        ((2030, 7, 1, 0, 0), ((2030, 4, 1), (2030, 7, 1))),
        ((2030, 12, 31, 23, 59), ((2030, 7, 1), (2030, 10, 1))),
        # Year boundary: in Q1 the previous complete quarter is last year's Q4.
        ((2030, 1, 1, 0, 0), ((2029, 10, 1), (2030, 1, 1))),
        ((2030, 3, 31, 23, 59), ((2029, 10, 1), (2030, 1, 1))),
    ],
)
def test_review_period_is_the_previous_complete_quarter(time_machine, now, expected):
    at(time_machine, *now)
    start, end = reviews.review_period_for(timezone.now())
    assert (start, end) == (datetime(*expected[0], tzinfo=UTC), datetime(*expected[1], tzinfo=UTC))
    assert start.tzinfo is UTC and end.tzinfo is UTC


def test_review_period_is_computed_in_utc():
    # 01:00 on 1 April in Berlin is still 31 March in UTC: Q1 is not complete yet.
    berlin = datetime(2030, 4, 1, 1, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert reviews.review_period_for(berlin) == (datetime(2029, 10, 1, tzinfo=UTC), Q1_START)


@pytest.mark.parametrize(
    ("months", "now", "expected"),
    [
        (1, (2030, 1, 15), ((2029, 12, 1), (2030, 1, 1))),
        (2, (2030, 4, 30), ((2030, 1, 1), (2030, 3, 1))),
        (6, (2030, 7, 1), ((2030, 1, 1), (2030, 7, 1))),
        (12, (2030, 3, 1), ((2029, 1, 1), (2030, 1, 1))),
    ],
)
def test_review_period_follows_the_configured_interval(settings, months, now, expected):
    settings.ACCESS_REVIEW_INTERVAL_MONTHS = months
    start, end = reviews.review_period_for(datetime(*now, tzinfo=UTC))
    assert (start, end) == (datetime(*expected[0], tzinfo=UTC), datetime(*expected[1], tzinfo=UTC))


# --- opening ---------------------------------------------------------------------------------


def test_campaign_collects_overlapping_grants_and_every_role_holder(
    time_machine, org_a, org_b, django_capture_on_commit_callbacks
):
    at(time_machine, 2029, 12, 30, 10)
    before = approved_grant(org_a)  # ends 30 Dec: before the period
    at(time_machine, 2029, 12, 31, 22)
    across_start = approved_grant(org_a)  # 22:00-02:00 across New Year
    at(time_machine, 2030, 2, 10, 9)
    inside_revoked = approved_grant(org_b)
    services.grant_revoke(
        grant=inside_revoked, acting_user=StaffFactory(role=SECURITY_OFFICER), reason="Ticket closed early."
    )
    at(time_machine, 2030, 3, 31, 22)
    across_end = approved_grant(org_b)  # 22:00-02:00 across the end of the quarter
    at(time_machine, 2030, 4, 1, 0, 0)
    after = approved_grant(org_a)  # starts exactly at the end: not in the period

    auditor = StaffFactory(role=AUDITOR)
    two_roles = StaffFactory(role=INCIDENT_MANAGER)
    two_roles.groups.add(Group.objects.get(name=RISK_OWNER))
    dpo = StaffFactory(role=DATA_PROTECTION_OFFICER)
    StaffFactory(role=SUPPORT_ENGINEER, is_active=False)  # deactivated: nothing left to review
    StaffFactory()  # staff without a role
    Group.objects.create(name="Not a role").user_set.add(StaffFactory())

    now = at(time_machine, 2030, 4, 1, 2)
    campaign = _open(now, django_capture_on_commit_callbacks)

    assert (campaign.period_start, campaign.period_end) == (Q1_START, Q2_START)
    assert campaign.due_at == now + timedelta(days=14)
    assert campaign.status == AccessReviewCampaign.Status.OPEN
    grant_ids = set(campaign.items.filter(kind=Kind.GRANT).values_list("grant", flat=True))
    assert grant_ids == {across_start.pk, inside_revoked.pk, across_end.pk}
    assert before.pk not in grant_ids and after.pk not in grant_ids

    role_items = set(campaign.items.filter(kind=Kind.ROLE).values_list("user__username", "role"))
    expected = {
        (u.username, g.name)
        for u in User.objects.filter(is_active=True, is_staff=True)
        for g in u.groups.all()
        if g.name != "Not a role"
    }
    assert role_items == expected
    assert (auditor.username, AUDITOR) in role_items
    assert (dpo.username, DATA_PROTECTION_OFFICER) in role_items
    assert {(two_roles.username, INCIDENT_MANAGER), (two_roles.username, RISK_OWNER)} <= role_items
    # Five approved grants: five support engineers and six security officers (one revoked a grant).
    assert sum(1 for _, role in role_items if role == SUPPORT_ENGINEER) == 5
    assert sum(1 for _, role in role_items if role == SECURITY_OFFICER) == 6
    assert set(campaign.items.values_list("decision", flat=True)) == {Decision.PENDING}
    assert AuditEvent.objects.filter(action="access_review.opened", object_id=str(campaign.pk)).exists()

    # Security officers are told, and nobody else.
    (message,) = mail.outbox
    officers = {u.email for u in services.internal_approvers()}
    assert set(message.to) == officers
    assert "2030-01-01 to 2030-03-31" in message.subject
    assert f"/admin/access/accessreviewcampaign/{campaign.pk}/change/" in message.body


def test_campaign_open_is_idempotent(time_machine, django_capture_on_commit_callbacks):
    StaffFactory(role=SECURITY_OFFICER)
    campaign = _open(at(time_machine, 2030, 4, 1, 2), django_capture_on_commit_callbacks)
    items = campaign.items.count()

    with django_capture_on_commit_callbacks(execute=True):
        assert reviews.campaign_open(now=at(time_machine, 2030, 4, 2, 2)) is None
        assert reviews.campaign_open(now=at(time_machine, 2030, 6, 30, 2)) is None
    assert AccessReviewCampaign.objects.count() == 1
    assert campaign.items.count() == items
    assert len(mail.outbox) == 1

    # Next quarter, next campaign.
    later = reviews.campaign_open(now=at(time_machine, 2030, 7, 1, 2))
    assert later is not None and later.period_start == Q2_START


# --- decisions -------------------------------------------------------------------------------


@pytest.fixture
def officers():
    return StaffFactory(role=SECURITY_OFFICER), StaffFactory(role=SECURITY_OFFICER)


@pytest.fixture
def engineer():
    return StaffFactory(role=SUPPORT_ENGINEER)


@pytest.fixture
def campaign(time_machine, officers, engineer, django_capture_on_commit_callbacks):
    return _open(at(time_machine, 2030, 4, 1, 2), django_capture_on_commit_callbacks)


def test_certify_records_the_decision(campaign, officers, engineer):
    officer, _ = officers
    item = _item(campaign, user=engineer)
    reviews.review_item_certify(item=item, acting_user=officer, note="Still on the support rota.")

    item.refresh_from_db()
    assert item.decision == Decision.CERTIFIED
    assert item.decided_by == officer
    assert item.decided_at == timezone.now()
    assert item.note == "Still on the support rota."
    event = AuditEvent.objects.get(action="access_review.certified")
    assert event.actor == officer and event.object_id == str(item.pk)
    assert event.data["user"] == engineer.username and event.data["role"] == SUPPORT_ENGINEER


def test_a_reviewer_cannot_decide_their_own_role(campaign, officers):
    officer, other = officers
    own = _item(campaign, user=officer)
    with pytest.raises(PermissionDenied):
        reviews.review_item_certify(item=own, acting_user=officer)
    with pytest.raises(PermissionDenied):
        reviews.review_item_revoke(item=own, acting_user=officer, note="Leaving.")
    own.refresh_from_db()
    assert own.decision == Decision.PENDING
    reviews.review_item_certify(item=own, acting_user=other)  # another officer may


def test_a_reviewer_cannot_decide_a_grant_naming_them(time_machine, org_a, django_capture_on_commit_callbacks):
    at(time_machine, 2030, 2, 10, 9)
    dual = StaffFactory(role=SUPPORT_ENGINEER)
    dual.groups.add(Group.objects.get(name=SECURITY_OFFICER))
    grant = approved_grant(org_a, requester=dual, named=[dual])
    campaign = _open(at(time_machine, 2030, 4, 1, 2), django_capture_on_commit_callbacks)

    item = _item(campaign, grant=grant)
    with pytest.raises(PermissionDenied):
        reviews.review_item_certify(item=item, acting_user=dual)
    reviews.review_item_certify(item=item, acting_user=StaffFactory(role=SECURITY_OFFICER))


def test_only_security_officers_decide(campaign, engineer):
    item = _item(campaign, user=engineer)
    for user in (StaffFactory(role=AUDITOR), StaffFactory(role=DATA_PROTECTION_OFFICER), engineer):
        with pytest.raises(PermissionDenied):
            reviews.review_item_certify(item=item, acting_user=user)
    item.refresh_from_db()
    assert item.decision == Decision.PENDING


def test_revoking_needs_a_note(campaign, officers, engineer):
    item = _item(campaign, user=engineer)
    with pytest.raises(ValidationError):
        reviews.review_item_revoke(item=item, acting_user=officers[0], note="   ")
    item.refresh_from_db()
    assert item.decision == Decision.PENDING
    assert engineer.groups.filter(name=SUPPORT_ENGINEER).exists()


def test_a_decided_item_cannot_be_decided_again(campaign, officers, engineer):
    officer, other = officers
    item = _item(campaign, user=engineer)
    reviews.review_item_certify(item=item, acting_user=officer)
    with pytest.raises(ValidationError):
        reviews.review_item_revoke(item=item, acting_user=other, note="Changed my mind.")
    with pytest.raises(ValidationError):
        reviews.review_item_certify(item=item, acting_user=other)
    item.refresh_from_db()
    assert (item.decision, item.decided_by) == (Decision.CERTIFIED, officer)
    assert engineer.groups.filter(name=SUPPORT_ENGINEER).exists()


def test_revoking_a_grant_item_ends_the_access_at_once(time_machine, org_a, django_capture_on_commit_callbacks):
    at(time_machine, 2030, 3, 31, 22)
    grant = approved_grant(org_a, hours=8)  # until 06:00 on 1 April, after the campaign opens
    (holder,) = grant.staff.all()
    campaign = _open(at(time_machine, 2030, 4, 1, 2), django_capture_on_commit_callbacks)
    assert list(organisations_with_customer_data(holder)) == [org_a]

    at(time_machine, 2030, 4, 1, 3)
    item = _item(campaign, grant=grant)
    officer = StaffFactory(role=SECURITY_OFFICER)
    reviews.review_item_revoke(item=item, acting_user=officer, note="Ticket was closed in March.")

    assert list(organisations_with_customer_data(holder)) == []
    grant.refresh_from_db()
    assert grant.revoked_at == timezone.now() and grant.revoked_by == officer
    assert "Ticket was closed in March." in grant.revoke_reason
    assert not holder.has_perm(services.GRANT_PERMISSION, org_a)
    item.refresh_from_db()
    assert item.decision == Decision.REVOKED
    assert AuditEvent.objects.filter(action="support_access.revoked", object_id=str(grant.pk)).exists()
    event = AuditEvent.objects.get(action="access_review.revoked")
    assert event.data["effect"] == "grant revoked" and event.organisation_id == org_a.pk


def test_revoking_an_ended_grant_item_only_records(time_machine, org_a, django_capture_on_commit_callbacks):
    at(time_machine, 2030, 2, 10, 9)
    grant = approved_grant(org_a)
    campaign = _open(at(time_machine, 2030, 4, 1, 2), django_capture_on_commit_callbacks)

    item = _item(campaign, grant=grant)
    reviews.review_item_revoke(item=item, acting_user=StaffFactory(role=SECURITY_OFFICER), note="Not justified.")
    grant.refresh_from_db()
    assert grant.revoked_at is None  # it had ended on its own in February
    item.refresh_from_db()
    assert item.decision == Decision.REVOKED
    assert AuditEvent.objects.get(action="access_review.revoked").data["effect"] == "grant had already ended"


def test_revoking_a_role_item_removes_the_group(campaign, officers, engineer):
    item = _item(campaign, user=engineer)
    reviews.review_item_revoke(item=item, acting_user=officers[0], note="Moved to sales.")

    assert not engineer.groups.filter(name=SUPPORT_ENGINEER).exists()
    assert not services.is_support_staff(User.objects.get(pk=engineer.pk))
    assert AuditEvent.objects.filter(action="user.groups.remove", object_id=str(engineer.pk)).exists()
    item.refresh_from_db()
    assert (item.decision, item.note) == (Decision.REVOKED, "Moved to sales.")


def test_superusers_are_reviewed_and_revoking_removes_the_flag(
    time_machine, officers, django_capture_on_commit_callbacks
):
    root = StaffFactory(is_superuser=True)
    campaign = _open(at(time_machine, 2030, 4, 1, 2), django_capture_on_commit_callbacks)
    item = _item(campaign, user=root, role=reviews.SUPERUSER_ROLE)
    reviews.review_item_revoke(item=item, acting_user=officers[0], note="No standing superusers.")
    root.refresh_from_db()
    assert not root.is_superuser
    item.refresh_from_db()
    assert item.decision == Decision.REVOKED


# --- completion ------------------------------------------------------------------------------


def test_complete_is_refused_while_items_are_pending(time_machine, campaign, officers):
    officer, other = officers
    with pytest.raises(ValidationError, match="pending"):
        reviews.campaign_complete(campaign=campaign, acting_user=officer)

    for item in campaign.items.all():
        reviewer = other if item.user_id == officer.pk else officer
        reviews.review_item_certify(item=item, acting_user=reviewer)
    now = at(time_machine, 2030, 4, 5, 10)
    with pytest.raises(PermissionDenied):
        reviews.campaign_complete(campaign=campaign, acting_user=StaffFactory(role=AUDITOR))
    reviews.campaign_complete(campaign=campaign, acting_user=officer)

    campaign.refresh_from_db()
    assert campaign.status == AccessReviewCampaign.Status.COMPLETED
    assert (campaign.completed_at, campaign.completed_by) == (now, officer)
    event = AuditEvent.objects.get(action="access_review.completed")
    assert event.data == {"pending": 0, "certified": 3, "revoked": 0}
    with pytest.raises(ValidationError):
        reviews.campaign_complete(campaign=campaign, acting_user=officer)


# --- escalation ------------------------------------------------------------------------------


def test_escalation_waits_for_the_due_date_then_repeats_at_most_daily(
    time_machine, campaign, officers, django_capture_on_commit_callbacks
):
    dpo = StaffFactory(role=DATA_PROTECTION_OFFICER)
    mail.outbox.clear()

    def escalate(*moment) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return reviews.campaigns_escalate(now=at(time_machine, *moment))

    assert campaign.due_at == datetime(2030, 4, 15, 2, tzinfo=UTC)
    assert escalate(2030, 4, 15, 1, 59) == 0
    assert mail.outbox == []

    assert escalate(2030, 4, 15, 2, 0) == 1
    (message,) = mail.outbox
    assert set(message.to) == {officers[0].email, officers[1].email, dpo.email}
    assert "overdue" in message.subject and "3 items pending" in message.subject

    assert escalate(2030, 4, 15, 14, 0) == 0
    assert escalate(2030, 4, 16, 1, 59) == 0
    assert len(mail.outbox) == 1

    assert escalate(2030, 4, 16, 2, 0) == 1
    assert len(mail.outbox) == 2
    campaign.refresh_from_db()
    assert campaign.last_escalated_at == datetime(2030, 4, 16, 2, tzinfo=UTC)
    assert AuditEvent.objects.filter(action="access_review.escalated").count() == 2

    # A completed campaign is never escalated.
    AccessReviewCampaign.objects.filter(pk=campaign.pk).update(status=AccessReviewCampaign.Status.COMPLETED)
    assert escalate(2030, 4, 20, 2, 0) == 0
    assert len(mail.outbox) == 2


# --- evidence --------------------------------------------------------------------------------


def _csv_rows(text: str) -> tuple[list[list[str]], list[dict[str, str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    split = rows.index([])
    header, body = rows[:split], rows[split + 1 :]
    return header, [dict(zip(body[0], row, strict=True)) for row in body[1:]]


def test_csv_contains_every_item_and_the_campaign(time_machine, org_a, django_capture_on_commit_callbacks):
    at(time_machine, 2030, 2, 10, 9)
    grant = approved_grant(org_a)
    campaign = _open(at(time_machine, 2030, 4, 1, 2), django_capture_on_commit_callbacks)
    officer = StaffFactory(role=SECURITY_OFFICER)
    reviews.review_item_revoke(item=_item(campaign, grant=grant), acting_user=officer, note='=HYPERLINK("http://evil")')

    header, rows = _csv_rows(reviews.campaign_csv(campaign))
    assert header[0] == ["Access review", "2030-01-01", "2030-03-31"]
    assert ["Status", "Open"] in header
    assert {int(r["item"]) for r in rows} == set(campaign.items.values_list("pk", flat=True))
    (grant_row,) = [r for r in rows if r["kind"] == "Support grant"]
    assert grant_row["grant"] == str(grant.pk)
    assert grant_row["organisation"] == org_a.name
    assert grant_row["staff"] == " ".join(u.username for u in grant.staff.all())
    assert grant_row["grant_starts_at"] == "2030-02-10T09:00:00+00:00"
    assert grant_row["decision"] == "Revoked"
    assert grant_row["decided_by"] == officer.username
    assert grant_row["decided_at"] == "2030-04-01T02:00:00+00:00"
    assert grant_row["note"].startswith("'=")  # a spreadsheet shows it, never runs it
    role_rows = {(r["user"], r["role"]) for r in rows if r["kind"] == "Privileged role"}
    assert role_rows == set(campaign.items.filter(kind=Kind.ROLE).values_list("user__username", "role"))


# --- admin -----------------------------------------------------------------------------------


def _changelist_post(client, item_ids, action: str, **extra):
    url = reverse("admin:access_accessreviewitem_changelist")
    return client.post(url, {"action": action, "_selected_action": [str(pk) for pk in item_ids], **extra})


def test_admin_campaign_pages_for_a_security_officer(campaign, officers):
    client = otp_client(officers[0])
    response = client.get(reverse("admin:access_accessreviewcampaign_changelist"))
    assert response.status_code == 200
    assert "2030-01-01 to 2030-03-31" in response.text and "0/3 decided" in response.text

    response = client.get(reverse("admin:access_accessreviewcampaign_change", args=[campaign.pk]))
    assert response.status_code == 200
    assert reverse("admin:access_accessreviewcampaign_export", args=[campaign.pk]) in response.text
    assert reverse("admin:access_accessreviewcampaign_complete", args=[campaign.pk]) in response.text
    assert f"?campaign__id__exact={campaign.pk}" in response.text
    assert 'name="_save"' not in response.text  # read-only

    response = client.get(reverse("admin:access_accessreviewcampaign_export", args=[campaign.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert len(_csv_rows(response.content.decode())[1]) == 3

    # Campaigns come only from the task.
    assert client.get(reverse("admin:access_accessreviewcampaign_add")).status_code == 403
    assert client.get(reverse("admin:access_accessreviewitem_add")).status_code == 403
    assert client.post(reverse("admin:access_accessreviewcampaign_delete", args=[campaign.pk])).status_code == 403


def test_admin_certify_and_revoke_actions(campaign, officers, engineer):
    officer, other = officers
    client = otp_client(officer)
    items = {i.user_id: i for i in campaign.items.all()}

    # The officer's own item is refused with a message; the other is certified.
    response = _changelist_post(client, [items[officer.pk].pk, items[other.pk].pk], "certify_selected")
    assert response.status_code == 302
    decisions = dict(campaign.items.values_list("user", "decision"))
    assert decisions[officer.pk] == Decision.PENDING
    assert decisions[other.pk] == Decision.CERTIFIED
    shown = [str(m) for m in client.get(response.url).context["messages"]]
    assert any("cannot review your own access" in m for m in shown)
    assert "Certified 1 item(s)." in shown

    # Revoke asks for a note on a confirmation page first.
    response = _changelist_post(client, [items[engineer.pk].pk], "revoke_selected")
    assert response.status_code == 200
    assert 'name="note"' in response.text and engineer.username in response.text
    response = _changelist_post(client, [items[engineer.pk].pk], "revoke_selected", confirm="yes", note="")
    assert response.status_code == 200  # the note is required
    assert engineer.groups.filter(name=SUPPORT_ENGINEER).exists()

    response = _changelist_post(
        client, [items[engineer.pk].pk], "revoke_selected", confirm="yes", note="Left the support team."
    )
    assert response.status_code == 302
    item = AccessReviewItem.objects.get(pk=items[engineer.pk].pk)
    assert (item.decision, item.decided_by, item.note) == (Decision.REVOKED, officer, "Left the support team.")
    assert not engineer.groups.filter(name=SUPPORT_ENGINEER).exists()

    # Completing is refused while the officer's own item is pending, then allowed.
    complete = reverse("admin:access_accessreviewcampaign_complete", args=[campaign.pk])
    assert client.get(complete).status_code == 405
    response = client.post(complete)
    assert response.status_code == 302
    assert any("pending" in str(m) for m in client.get(response.url).context["messages"])
    assert AccessReviewCampaign.objects.get(pk=campaign.pk).status == AccessReviewCampaign.Status.OPEN

    _changelist_post(otp_client(other), [items[officer.pk].pk], "certify_selected")
    assert client.post(complete).status_code == 302
    campaign.refresh_from_db()
    assert (campaign.status, campaign.completed_by) == (AccessReviewCampaign.Status.COMPLETED, officer)


def test_admin_refuses_decisions_to_an_auditor(campaign, engineer):
    auditor = StaffFactory(role=AUDITOR)
    client = otp_client(auditor)
    item = _item(campaign, user=engineer)

    # An auditor reads and exports the evidence...
    assert client.get(reverse("admin:access_accessreviewcampaign_changelist")).status_code == 200
    response = client.get(reverse("admin:access_accessreviewcampaign_change", args=[campaign.pk]))
    assert response.status_code == 200
    assert reverse("admin:access_accessreviewcampaign_complete", args=[campaign.pk]) not in response.text
    assert client.get(reverse("admin:access_accessreviewitem_changelist")).status_code == 200
    assert client.get(reverse("admin:access_accessreviewcampaign_export", args=[campaign.pk])).status_code == 200

    # ...and decides nothing.
    assert _changelist_post(client, [item.pk], "certify_selected").status_code == 403
    assert _changelist_post(client, [item.pk], "revoke_selected").status_code == 403
    assert _changelist_post(client, [item.pk], "revoke_selected", confirm="yes", note="x").status_code == 403
    complete = reverse("admin:access_accessreviewcampaign_complete", args=[campaign.pk])
    assert client.post(complete).status_code == 403
    item.refresh_from_db()
    assert item.decision == Decision.PENDING
    assert engineer.groups.filter(name=SUPPORT_ENGINEER).exists()


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_admin_query_counts_do_not_grow_with_items(time_machine, org_a, org_b, officers, campaign):
    client = otp_client(officers[0])
    pages = [
        reverse("admin:access_accessreviewcampaign_changelist"),
        reverse("admin:access_accessreviewitem_changelist"),
        reverse("admin:access_accessreviewcampaign_change", args=[campaign.pk]),
    ]
    at(time_machine, 2030, 4, 1, 3)
    grant = approved_grant(org_a)
    AccessReviewItem.objects.create(campaign=campaign, kind=Kind.GRANT, grant=grant)
    small = [_queries(client, url) for url in pages]

    for org in (org_a, org_b, org_a):
        grant = approved_grant(org)
        AccessReviewItem.objects.create(campaign=campaign, kind=Kind.GRANT, grant=grant)
    reviewed = campaign.items.filter(user__isnull=False).values("user")
    for user in User.objects.filter(is_staff=True).exclude(pk__in=reviewed)[:5]:
        AccessReviewItem.objects.create(campaign=campaign, kind=Kind.ROLE, user=user, role=SUPPORT_ENGINEER)
    assert campaign.items.count() >= 12
    assert [_queries(client, url) for url in pages] == small


# --- tasks -----------------------------------------------------------------------------------


def test_open_task_records_job_runs_and_is_idempotent(time_machine, officers, django_capture_on_commit_callbacks):
    at(time_machine, 2030, 4, 1, 2)
    with django_capture_on_commit_callbacks(execute=True):
        tasks_reviews.open_access_review()
        tasks_reviews.open_access_review()

    runs = list(JobRun.objects.filter(task=tasks_reviews.OPEN_TASK).order_by("id"))
    assert [r.outcome for r in runs] == [JobRun.Outcome.SUCCESS, JobRun.Outcome.SUCCESS]
    assert runs[0].counts == {"opened": 1, "items": 2}
    assert runs[1].counts == {"opened": 0}
    assert AccessReviewCampaign.objects.get().period_start == Q1_START
    assert len(mail.outbox) == 1


def test_escalate_task_records_job_runs(time_machine, campaign, django_capture_on_commit_callbacks):
    at(time_machine, 2030, 4, 20, 8)
    with django_capture_on_commit_callbacks(execute=True):
        tasks_reviews.escalate_access_reviews()
    run = JobRun.objects.get(task=tasks_reviews.ESCALATE_TASK)
    assert (run.outcome, run.counts) == (JobRun.Outcome.SUCCESS, {"escalated": 1})


def test_review_tasks_are_scheduled_daily_in_utc():
    entries = {e["task"]: e["schedule"] for e in BEAT_SCHEDULE.values()}
    opening = entries[tasks_reviews.OPEN_TASK]
    assert isinstance(opening, crontab)
    assert opening.hour == {2} and opening.minute == {0} and len(opening.day_of_month) == 31
    assert isinstance(entries[tasks_reviews.ESCALATE_TASK], crontab)
