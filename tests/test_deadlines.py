"""Breach-notice deadlines (C12 controller 72 h, C13 processor "undue delay" target) and the
monitor that escalates at 50/75/90 % and marks misses. Time is frozen; nothing sleeps."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection, connections, transaction

from assyst.celery import BEAT_SCHEDULE
from governance.access.roles import DATA_PROTECTION_OFFICER, INCIDENT_MANAGER, SECURITY_OFFICER
from governance.audit.models import AuditEvent
from governance.core.jobs import lock_acquire
from governance.core.models import JobRun
from governance.tenancy.models import DataProtectionRole
from incidents import services
from incidents.deadlines import deadlines_scan, threshold_reached
from incidents.models import AffectedOrganisation, Incident, Notification
from incidents.tasks_deadlines import WATCH_TASK, notify_deadline_escalation, watch_notice_deadlines
from tests.factories import MembershipFactory, OrganisationFactory, StaffFactory

pytestmark = pytest.mark.django_db

AWARE = datetime(2030, 6, 3, 9, 0, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")


@pytest.fixture(autouse=True)
def _emails_sent_inline(monkeypatch):
    """The escalation task runs in-process (its send_mail is what is under test)."""
    monkeypatch.setattr(notify_deadline_escalation, "delay", lambda *args: notify_deadline_escalation(*args))


@pytest.fixture
def manager():
    return StaffFactory(role=INCIDENT_MANAGER)


@pytest.fixture
def dpo():
    return StaffFactory(role=DATA_PROTECTION_OFFICER)


@pytest.fixture
def bystanders():
    """People who must never receive a deadline escalation."""
    StaffFactory(role=INCIDENT_MANAGER)  # not this incident's manager
    StaffFactory(role=SECURITY_OFFICER)
    StaffFactory(role=DATA_PROTECTION_OFFICER, is_active=False)
    MembershipFactory()  # a customer


def _breach(time_machine, manager, organisations, *, aware_at=AWARE, incident_manager="same") -> Incident:
    time_machine.move_to(aware_at + timedelta(minutes=5), tick=False)
    return services.incident_create(
        acting_user=manager,
        title="Exported files readable without sign-in",
        description="A misconfigured bucket exposed export files.",
        kind=Incident.Kind.SPECIFIC,
        detected_at=aware_at,
        aware_at=aware_at,
        personal_data_breach=True,
        data_categories=["contact details"],
        organisations=organisations,
        incident_manager=manager if incident_manager == "same" else incident_manager,
    )


def _affected(incident: Incident) -> AffectedOrganisation:
    return AffectedOrganisation.objects.get(incident=incident)


def _scan(time_machine, captured, at: datetime) -> dict[str, int]:
    time_machine.move_to(at, tick=False)
    with captured(execute=True):
        return deadlines_scan(now=at)


def _controller():
    return OrganisationFactory(data_protection_role=DataProtectionRole.CONTROLLER)


def _processor():
    return OrganisationFactory(data_protection_role=DataProtectionRole.PROCESSOR)


# --- the deadlines --------------------------------------------------------------------------------


@pytest.mark.commitment("C12")
def test_controller_deadline_is_exactly_72_hours_after_awareness(time_machine, manager):
    incident = _breach(time_machine, manager, [_controller()])
    affected = _affected(incident)
    assert affected.role == DataProtectionRole.CONTROLLER
    assert affected.deadline_at == AWARE + timedelta(hours=72)


@pytest.mark.commitment("C13")
@pytest.mark.parametrize("hours", [24, 36])
def test_processor_deadline_follows_the_undue_delay_target(time_machine, settings, manager, hours):
    settings.INCIDENT_PROCESSOR_NOTICE_HOURS = hours
    incident = _breach(time_machine, manager, [_processor()])
    affected = _affected(incident)
    assert affected.role == DataProtectionRole.PROCESSOR
    assert affected.deadline_at == AWARE + timedelta(hours=hours)


@pytest.mark.commitment("C12")
def test_no_deadline_when_the_incident_is_not_a_personal_data_breach(time_machine, manager):
    time_machine.move_to(AWARE, tick=False)
    incident = services.incident_create(
        acting_user=manager,
        title="Slow dashboard",
        description="Pages load slowly.",
        kind=Incident.Kind.SPECIFIC,
        detected_at=AWARE,
        aware_at=AWARE,
        organisations=[_controller()],
    )
    assert _affected(incident).deadline_at is None


@pytest.mark.commitment("C12")
def test_deadline_is_72_real_hours_across_the_clock_change(
    time_machine, manager, dpo, django_capture_on_commit_callbacks
):
    # 28 March 2026 12:00 in London is still GMT (= UTC); the clocks go forward on 29 March.
    aware_local = datetime(2026, 3, 28, 12, 0, tzinfo=LONDON)
    incident = _breach(time_machine, manager, [_controller()], aware_at=aware_local)
    affected = _affected(incident)

    assert affected.deadline_at == datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
    assert affected.deadline_at.utcoffset() == timedelta(0)  # stored and read back in UTC
    assert affected.deadline_at - aware_local == timedelta(hours=72)
    # On the wall clock in London it is 13:00 BST on 31 March: 73 hours after 12:00 GMT.
    local_deadline = affected.deadline_at.astimezone(LONDON)
    assert (local_deadline.hour, local_deadline.tzname()) == (13, "BST")
    wall_clock = local_deadline.replace(tzinfo=None) - aware_local.replace(tzinfo=None)
    assert wall_clock == timedelta(hours=73)

    # The escalation thresholds are real hours too: 50 % is 36 h after awareness.
    half = aware_local.astimezone(UTC) + timedelta(hours=36)
    assert _scan(time_machine, django_capture_on_commit_callbacks, half - timedelta(seconds=1))["escalated"] == 0
    assert _scan(time_machine, django_capture_on_commit_callbacks, half)["escalated"] == 1
    # ... and the miss comes at 72 real hours, not at the wall-clock 72 h (an hour earlier).
    deadline = affected.deadline_at
    assert _scan(time_machine, django_capture_on_commit_callbacks, deadline - timedelta(seconds=1))["missed"] == 0
    assert _scan(time_machine, django_capture_on_commit_callbacks, deadline)["missed"] == 1


def test_threshold_is_crossed_at_its_exact_microsecond():
    deadline = AWARE + timedelta(hours=72)
    at_75 = AWARE + timedelta(hours=54)
    assert threshold_reached(aware_at=AWARE, deadline_at=deadline, now=at_75 - timedelta(microseconds=1)) == 50
    assert threshold_reached(aware_at=AWARE, deadline_at=deadline, now=at_75) == 75
    assert threshold_reached(aware_at=AWARE, deadline_at=deadline, now=AWARE) == 0


# --- escalations ----------------------------------------------------------------------------------


@pytest.mark.commitment("C12")
def test_escalates_once_at_each_threshold_then_marks_the_miss_at_the_deadline_second(
    time_machine, manager, dpo, bystanders, django_capture_on_commit_callbacks
):
    incident = _breach(time_machine, manager, [_controller()])
    scan = lambda at: _scan(time_machine, django_capture_on_commit_callbacks, at)  # noqa: E731
    deadline = AWARE + timedelta(hours=72)
    second = timedelta(seconds=1)
    expected_to = sorted([manager.email, dpo.email])

    # Nothing before 50 %.
    for at in (AWARE, AWARE + timedelta(hours=12), AWARE + timedelta(hours=36) - second):
        scan(at)
    assert mail.outbox == []

    sent = []
    for percent, elapsed in ((50, timedelta(hours=36)), (75, timedelta(hours=54)), (90, timedelta(hours=64.8))):
        scan(AWARE + elapsed - second)
        assert len(mail.outbox) == len(sent), f"{percent} % sent a second early"
        scan(AWARE + elapsed)
        scan(AWARE + elapsed + timedelta(minutes=1))  # the next beat: nothing again
        assert len(mail.outbox) == len(sent) + 1
        message = mail.outbox[-1]
        assert sorted(message.to) == expected_to
        assert f"{percent} %" in message.subject
        assert f"/admin/incidents/incident/{incident.pk}/change/" in message.body
        assert _affected(incident).escalated_percent == percent
        sent.append(message)

    scan(deadline - second)
    assert _affected(incident).missed_at is None
    assert len(mail.outbox) == 3

    assert scan(deadline) == {"scanned": 1, "escalated": 0, "missed": 1}
    assert _affected(incident).missed_at == deadline
    missed = mail.outbox[-1]
    assert "MISSED" in missed.subject and sorted(missed.to) == expected_to
    assert "has been MISSED" in missed.body

    scan(deadline + timedelta(minutes=1))
    scan(deadline + timedelta(hours=5))
    assert len(mail.outbox) == 4
    assert _affected(incident).missed_at == deadline
    actions = list(
        AuditEvent.objects.filter(object_type="incidents.affectedorganisation").values_list("action", flat=True)
    )
    assert sorted(actions) == ["incident.deadline_escalated"] * 3 + ["incident.deadline_missed"]


@pytest.mark.commitment("C13")
def test_processor_escalations_follow_its_shorter_window(
    time_machine, settings, manager, dpo, django_capture_on_commit_callbacks
):
    settings.INCIDENT_PROCESSOR_NOTICE_HOURS = 24
    incident = _breach(time_machine, manager, [_processor()])
    scan = lambda at: _scan(time_machine, django_capture_on_commit_callbacks, at)  # noqa: E731
    scan(AWARE + timedelta(hours=12) - timedelta(seconds=1))
    assert mail.outbox == []
    scan(AWARE + timedelta(hours=12))
    assert _affected(incident).escalated_percent == 50
    scan(AWARE + timedelta(hours=18))
    assert _affected(incident).escalated_percent == 75
    scan(AWARE + timedelta(hours=24))
    assert _affected(incident).missed_at == AWARE + timedelta(hours=24)
    assert len(mail.outbox) == 3


@pytest.mark.commitment("C12")
def test_after_a_beat_gap_one_email_for_the_highest_threshold(
    time_machine, manager, dpo, django_capture_on_commit_callbacks
):
    incident = _breach(time_machine, manager, [_controller()])
    _scan(time_machine, django_capture_on_commit_callbacks, AWARE + timedelta(hours=70))
    (message,) = mail.outbox
    assert "90 %" in message.subject
    assert _affected(incident).escalated_percent == 90
    _scan(time_machine, django_capture_on_commit_callbacks, AWARE + timedelta(hours=71))
    assert len(mail.outbox) == 1


@pytest.mark.commitment("C12")
def test_a_gap_past_the_deadline_sends_only_the_miss(time_machine, manager, dpo, django_capture_on_commit_callbacks):
    incident = _breach(time_machine, manager, [_controller()])
    _scan(time_machine, django_capture_on_commit_callbacks, AWARE + timedelta(hours=80))
    (message,) = mail.outbox
    assert "MISSED" in message.subject
    assert _affected(incident).missed_at == AWARE + timedelta(hours=80)


@pytest.mark.commitment("C12")
def test_notified_organisations_never_escalate(time_machine, manager, dpo, django_capture_on_commit_callbacks):
    notified, waiting = _controller(), _controller()
    incident = _breach(time_machine, manager, [notified, waiting])
    AffectedOrganisation.objects.filter(incident=incident, organisation=notified).update(
        notified_at=AWARE + timedelta(hours=1)
    )
    for hours in (36, 54, 65, 72, 100):
        _scan(time_machine, django_capture_on_commit_callbacks, AWARE + timedelta(hours=hours))
    row = AffectedOrganisation.objects.get(incident=incident, organisation=notified)
    assert (row.escalated_percent, row.missed_at) == (0, None)
    assert all(notified.name not in m.subject for m in mail.outbox)
    assert len(mail.outbox) == 4  # 50, 75, 90 and missed: for the other organisation only
    assert all(waiting.name in m.subject for m in mail.outbox)


@pytest.mark.commitment("C12")
def test_a_notice_sent_before_the_email_cancels_the_escalation(time_machine, manager, dpo):
    incident = _breach(time_machine, manager, [_controller()])
    time_machine.move_to(AWARE + timedelta(hours=40), tick=False)
    deadlines_scan(now=AWARE + timedelta(hours=40))  # recorded; the email is queued after commit
    affected = _affected(incident)
    AffectedOrganisation.objects.filter(pk=affected.pk).update(notified_at=AWARE + timedelta(hours=40))
    notify_deadline_escalation(affected.pk, 50)
    assert mail.outbox == []


@pytest.mark.commitment("C12")
def test_without_an_incident_manager_every_incident_manager_is_told(
    time_machine, manager, dpo, django_capture_on_commit_callbacks
):
    other_manager = StaffFactory(role=INCIDENT_MANAGER)
    _breach(time_machine, manager, [_controller()], incident_manager=None)
    _scan(time_machine, django_capture_on_commit_callbacks, AWARE + timedelta(hours=36))
    (message,) = mail.outbox
    assert sorted(message.to) == sorted([manager.email, other_manager.email, dpo.email])


@pytest.mark.commitment("C12")
def test_escalation_emails_contain_no_customer_contact(time_machine, manager, dpo, django_capture_on_commit_callbacks):
    organisation = _controller()
    _breach(time_machine, manager, [organisation])
    _scan(time_machine, django_capture_on_commit_callbacks, AWARE + timedelta(hours=36))
    (message,) = mail.outbox
    assert organisation.primary_contact_email not in message.body
    assert organisation.primary_contact_email not in message.to


# --- late notices ---------------------------------------------------------------------------------


@pytest.mark.commitment("C12")
def test_a_late_notice_requires_and_stores_the_reason(time_machine, manager):
    late, in_time = _controller(), _processor()
    incident = _breach(time_machine, manager, [late])
    services.incident_organisation_add(
        incident=incident, organisation=in_time, acting_user=manager, role=DataProtectionRole.CONTROLLER
    )
    time_machine.move_to(AWARE + timedelta(hours=72), tick=False)  # the deadline second: late
    notice = {
        "incident": incident,
        "acting_user": manager,
        "visibility": "public",
        "status": Incident.Status.IDENTIFIED,
        "message": "We found how the files were exposed.",
        "actions_for_customers": "Nothing is needed from you.",
    }
    with pytest.raises(ValidationError) as refused:
        services.incident_update_post(**notice)
    assert "late_reason" in refused.value.message_dict
    assert late.name in refused.value.message_dict["late_reason"][0]
    assert Notification.objects.count() == 0

    services.incident_update_post(**notice, late_reason="  The bucket logs took three days to obtain.  ")
    rows = {a.organisation_id: a for a in AffectedOrganisation.objects.filter(incident=incident)}
    assert rows[late.pk].late_reason == "The bucket logs took three days to obtain."
    assert Notification.objects.filter(incident=incident).count() == 2


# --- the task and its schedule ----------------------------------------------------------------------


@pytest.mark.commitment("C12")
def test_the_beat_task_scans_every_minute_under_a_lease(time_machine, manager, dpo, django_capture_on_commit_callbacks):
    entry = BEAT_SCHEDULE["watch-notice-deadlines"]
    assert entry == {"task": WATCH_TASK, "schedule": 60.0}

    _breach(time_machine, manager, [_controller()])
    time_machine.move_to(AWARE + timedelta(hours=36), tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        watch_notice_deadlines()
        watch_notice_deadlines()  # two runs in a row: the second finds nothing to send
    assert len(mail.outbox) == 1
    first, second = JobRun.objects.filter(task=WATCH_TASK).order_by("id")
    assert first.counts == {"scanned": 1, "escalated": 1, "missed": 0}
    assert second.counts == {"scanned": 1, "escalated": 0, "missed": 0}

    # A run that overlaps another (the lease is held) is skipped and sends nothing.
    time_machine.move_to(AWARE + timedelta(hours=54), tick=False)
    assert lock_acquire(name=WATCH_TASK, ttl=timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        watch_notice_deadlines()
    assert JobRun.objects.filter(task=WATCH_TASK).latest("id").outcome == JobRun.Outcome.SKIPPED
    assert len(mail.outbox) == 1


@pytest.mark.commitment("C12")
@pytest.mark.django_db(transaction=True)
def test_a_row_being_handled_by_another_scan_is_skipped_not_sent_twice(time_machine, manager, dpo):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no row locks (select_for_update is a no-op); runs in CI on PostgreSQL")
    incident = _breach(time_machine, manager, [_controller()])
    pk = _affected(incident).pk
    at = AWARE + timedelta(hours=40)
    time_machine.move_to(at, tick=False)
    locked, release = threading.Event(), threading.Event()

    def other_scan_holding_the_row():
        try:
            with transaction.atomic():
                AffectedOrganisation.objects.with_scopes_disabled().select_for_update().get(pk=pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=other_scan_holding_the_row)
    holder.start()
    try:
        assert locked.wait(10)
        assert deadlines_scan(now=at) == {"scanned": 1, "escalated": 0, "missed": 0}
    finally:
        release.set()
        holder.join(10)
    assert mail.outbox == []
    assert deadlines_scan(now=at)["escalated"] == 1
    assert len(mail.outbox) == 1
