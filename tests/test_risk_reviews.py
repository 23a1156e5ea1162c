"""Reviews (C26): next-review dates, reminders on the right days with frozen time, acceptance
expiry, and the yearly overall review's differences computed from history."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from governance.core.models import JobRun
from governance.risk import reviews, selectors, services, tasks
from governance.risk.models import OverallRiskReview, ReviewReminder, Risk, RiskAcceptance
from tests.factories import StaffFactory
from tests.factories_risk import make_risk, risk_owner, security_officer
from tests.helpers import otp_client

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C26")]


def at(time_machine, *args) -> datetime:
    moment = datetime(*args, tzinfo=UTC)
    time_machine.move_to(moment, tick=False)
    return moment


@pytest.fixture(autouse=True)
def _mail_sent_in_process(monkeypatch):
    """Email tasks run in-process when their on-commit callback fires (no broker)."""
    for task in (tasks.send_review_reminder, tasks.notify_acceptance_expired, tasks.notify_continuity_plan):
        monkeypatch.setattr(task, "delay", lambda *args, _task=task: _task(*args))


def test_next_review_is_at_most_twelve_months_and_sooner_for_higher_levels(time_machine):
    at(time_machine, 2030, 1, 31, 9)
    low = make_risk(residual_likelihood=1, residual_impact=2)
    medium = make_risk(residual_likelihood=2, residual_impact=3)
    high = make_risk(residual_likelihood=3, residual_impact=4)
    critical = make_risk(residual_likelihood=5, residual_impact=5)
    assert [r.residual_level for r in (low, medium, high, critical)] == ["low", "medium", "high", "critical"]
    assert low.next_review_on == date(2031, 1, 31)
    assert medium.next_review_on == date(2030, 10, 31)
    assert high.next_review_on == date(2030, 7, 31)
    assert critical.next_review_on == date(2030, 4, 30)  # 31 April does not exist

    # Raising the level pulls the review date in; a review moves it from the review day.
    raised = services.risk_update(risk=low, acting_user=low.owner, residual_likelihood=5, residual_impact=5)
    assert raised.next_review_on == date(2030, 4, 30)
    at(time_machine, 2030, 3, 1, 9)
    review = reviews.risk_review_record(
        risk=raised, acting_user=raised.owner, notes="Compensating control live.", residual_likelihood=1
    )
    raised.refresh_from_db()
    assert (review.residual_level_before, review.residual_level_after) == ("critical", "medium")
    assert raised.last_reviewed_on == date(2030, 3, 1) and raised.next_review_on == date(2030, 12, 1)

    with pytest.raises(ValidationError, match="due by"):
        services.risk_update(risk=raised, acting_user=raised.owner, next_review_on=date(2031, 3, 2))


def test_reminders_fire_30_and_7_days_before_and_on_the_day_then_overdue(
    time_machine, django_capture_on_commit_callbacks
):
    at(time_machine, 2030, 1, 1, 9)
    owner = risk_owner(email="owner@assyst.example")
    risk = make_risk(owner=owner, residual_likelihood=1, residual_impact=2)  # low: due 2031-01-01
    team = Group.objects.create(name="Platform team")
    team.user_set.add(StaffFactory(email="team-member@assyst.example"))
    team_risk = make_risk(owner=None, owner_team=team, residual_likelihood=1, residual_impact=2, acting_user=owner)
    assert risk.next_review_on == date(2031, 1, 1) == team_risk.next_review_on

    sent = {}
    day = date(2030, 11, 20)
    while day <= date(2031, 1, 5):
        at(time_machine, day.year, day.month, day.day, 6, 15)
        mail.outbox.clear()
        with django_capture_on_commit_callbacks(execute=True):
            tasks.remind_risk_reviews()
        for message in mail.outbox:
            sent.setdefault(day, []).append((message.subject, tuple(message.to)))
        day = date.fromordinal(day.toordinal() + 1)

    assert sorted(sent) == [date(2030, 12, 2), date(2030, 12, 25), date(2031, 1, 1), date(2031, 1, 2)]
    assert sent[date(2030, 12, 2)] == [
        (f"[Assyst] Risk review due in 30 days: {risk.code} (2031-01-01)", ("owner@assyst.example",)),
        (f"[Assyst] Risk review due in 30 days: {team_risk.code} (2031-01-01)", ("team-member@assyst.example",)),
    ]
    assert sent[date(2030, 12, 25)][0][0] == f"[Assyst] Risk review due in 7 days: {risk.code} (2031-01-01)"
    assert sent[date(2031, 1, 1)][0][0] == f"[Assyst] Risk review due today: {risk.code}"
    assert sent[date(2031, 1, 2)][0][0] == f"[Assyst] Risk review overdue: {risk.code} (due 2031-01-01)"
    assert ReviewReminder.objects.filter(risk=risk).count() == 4
    assert list(selectors.risks_overdue(now=datetime(2031, 1, 5, tzinfo=UTC))) == [risk, team_risk]
    run = JobRun.objects.filter(task=tasks.REVIEWS_TASK).order_by("-id").first()
    assert run.outcome == "success" and run.counts == {"reminders": 0, "overdue": 2}

    # A review clears the flag and starts the next cycle.
    reviews.risk_review_record(risk=risk, acting_user=owner, notes="Still low.")
    assert list(selectors.risks_overdue(now=datetime(2031, 1, 5, tzinfo=UTC))) == [team_risk]


def test_a_day_missed_by_beat_is_caught_up_once(time_machine, django_capture_on_commit_callbacks):
    at(time_machine, 2030, 1, 1, 9)
    risk = make_risk(residual_likelihood=1, residual_impact=2)
    at(time_machine, 2030, 12, 3, 6, 15)  # beat was down on 2 December
    with django_capture_on_commit_callbacks(execute=True):
        tasks.remind_risk_reviews()
        tasks.remind_risk_reviews()  # a second run the same day sends nothing more
    assert [m.subject for m in mail.outbox] == [f"[Assyst] Risk review due in 29 days: {risk.code} (2031-01-01)"]


def test_acceptance_keeps_a_snapshot_and_expiry_reopens_the_risk_and_tells_the_owner(
    time_machine, django_capture_on_commit_callbacks
):
    at(time_machine, 2030, 5, 1, 9)
    owner = risk_owner(email="ravi@assyst.example")
    risk = make_risk(owner=owner)
    with pytest.raises(ValidationError, match="Only the risk's owner"):
        services.risk_accept(risk=risk, acting_user=security_officer(), reason="x", expires_on=date(2030, 9, 1))
    with pytest.raises(ValidationError, match="no later than"):
        services.risk_accept(risk=risk, acting_user=owner, reason="x", expires_on=date(2031, 9, 1))
    acceptance = services.risk_accept(
        risk=risk, acting_user=owner, reason="Disk encryption makes theft low impact.", expires_on=date(2030, 8, 1)
    )
    risk.refresh_from_db()
    assert risk.status == Risk.Status.ACCEPTED and risk.treatment == Risk.Treatment.ACCEPT
    assert acceptance.snapshot["residual_level"] == "medium"
    assert acceptance.snapshot["residual_likelihood"] == 2

    # Later changes leave the signed snapshot as it was.
    services.risk_update(risk=risk, acting_user=owner, residual_impact=5)
    acceptance.refresh_from_db()
    assert acceptance.snapshot["residual_impact"] == 3

    at(time_machine, 2030, 7, 31, 0, 20)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.expire_risk_acceptances()
    acceptance.refresh_from_db()
    assert acceptance.status == RiskAcceptance.Status.ACTIVE and not mail.outbox

    at(time_machine, 2030, 8, 1, 0, 20)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.expire_risk_acceptances()
    acceptance.refresh_from_db()
    risk.refresh_from_db()
    assert acceptance.status == RiskAcceptance.Status.EXPIRED
    assert risk.status == Risk.Status.OPEN
    assert [(m.subject, m.to) for m in mail.outbox] == [
        (f"[Assyst] Risk acceptance expired, risk reopened: {risk.code}", ["ravi@assyst.example"])
    ]
    # The owner may sign again.
    services.risk_accept(risk=risk, acting_user=owner, reason="Re-assessed.", expires_on=date(2031, 1, 1))


def test_overall_review_lists_what_changed_since_the_previous_one(time_machine, django_capture_on_commit_callbacks):
    officer, owner = security_officer(), risk_owner()
    at(time_machine, 2029, 3, 1, 9)
    kept = make_risk(owner=owner, title="Kept as it was")
    to_close = make_risk(owner=owner, title="Closed this year")
    to_rescore = make_risk(owner=owner, title="Re-scored this year")
    back_and_forth = make_risk(owner=owner, title="Re-scored and back")
    accepted = make_risk(owner=owner, title="Accepted, then expired")
    services.risk_accept(risk=accepted, acting_user=owner, reason="Low.", expires_on=date(2030, 2, 1))

    at(time_machine, 2029, 12, 1, 9)
    first = reviews.overall_review_start(acting_user=officer)
    services_update = reviews.overall_review_update
    services_update(review=first, acting_user=officer, summary="Register is healthy.", decisions="Encrypt laptops.")
    with pytest.raises(PermissionDenied):
        reviews.overall_review_sign(review=first, acting_user=owner)
    first = reviews.overall_review_sign(review=first, acting_user=officer)
    assert first.differences["counts"]["new"] == 5  # the register's first year

    at(time_machine, 2030, 1, 10, 9)
    new = make_risk(owner=owner, title="New this year")
    services.risk_update(risk=to_close, acting_user=owner, status=Risk.Status.CLOSED)
    services.risk_update(risk=to_rescore, acting_user=owner, residual_likelihood=5, residual_impact=5)
    services.risk_update(risk=back_and_forth, acting_user=owner, residual_likelihood=5)
    services.risk_update(risk=back_and_forth, acting_user=owner, residual_likelihood=2)
    services.risk_update(risk=kept, acting_user=owner, description="Wording only: no new score.")
    at(time_machine, 2030, 2, 1, 0, 20)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.expire_risk_acceptances()

    at(time_machine, 2030, 11, 20, 9)
    second = reviews.overall_review_start(acting_user=officer, copy_previous=True)
    assert second.previous == first and second.period_start == first.period_end
    assert (second.summary, second.decisions) == ("Register is healthy.", "Encrypt laptops.")
    with pytest.raises(ValidationError, match="already open"):
        reviews.overall_review_start(acting_user=officer)
    second = reviews.overall_review_sign(review=second, acting_user=officer)

    diff = second.differences
    assert [r["code"] for r in diff["new"]] == [new.code]
    assert [r["code"] for r in diff["closed"]] == [to_close.code]
    assert [(r["code"], r["residual"]) for r in diff["rescored"]] == [(to_rescore.code, ["medium", "critical"])]
    assert [r["code"] for r in diff["expired_acceptances"]] == [accepted.code]
    assert diff["counts"] == {"new": 1, "closed": 1, "rescored": 1, "expired_acceptances": 1}
    assert len(second.register_snapshot) == 6
    assert selectors.last_overall_review() == second
    assert not selectors.overall_review_overdue(now=datetime(2030, 12, 1, tzinfo=UTC))
    assert selectors.overall_review_overdue(now=datetime(2031, 11, 21, tzinfo=UTC))

    # Signed reviews are frozen, in the services and in the admin.
    with pytest.raises(ValidationError):
        reviews.overall_review_update(review=second, acting_user=officer, summary="x", decisions="y")
    page = otp_client(officer).get(reverse("admin:risk_overallriskreview_change", args=[second.pk]))
    body = page.content.decode()
    assert page.status_code == 200 and to_rescore.code in body and "medium -&gt; critical" in body
    assert "Sign the review" not in body


def test_overall_review_in_the_admin_start_from_copy_edit_and_sign(time_machine):
    officer, owner = security_officer(), risk_owner()
    at(time_machine, 2030, 1, 5, 9)
    make_risk(owner=owner)
    client = otp_client(officer)
    assert client.post(reverse("admin:risk_overallriskreview_add"), {"copy_previous": "on"}).status_code == 302
    review = OverallRiskReview.objects.get()
    url = reverse("admin:risk_overallriskreview_change", args=[review.pk])
    assert "Sign the review" in client.get(url).content.decode()
    assert client.post(url, {"summary": "Fine.", "decisions": "None."}).status_code == 302
    # The risk owner may read but not sign.
    owner_client = otp_client(owner)
    assert owner_client.get(url).status_code == 200
    assert owner_client.post(reverse("admin:risk_overallriskreview_sign", args=[review.pk])).status_code == 403
    assert client.post(reverse("admin:risk_overallriskreview_sign", args=[review.pk])).status_code == 302
    review.refresh_from_db()
    assert review.status == "signed" and review.signed_by == officer
