"""Permanent refusals and requeueing in the outbox (C15): a mail server's 5xx for the
recipient fails the notice at once (4xx keeps retrying), and an incident manager can send
failed notices again from the admin, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.access.roles import INCIDENT_MANAGER, SUPPORT_ENGINEER
from governance.audit.models import AuditEvent
from incidents.models import Notification
from incidents.outbox import outbox_deliver
from tests.factories import OrganisationFactory, StaffFactory
from tests.helpers import otp_client
from tests.test_outbox import Sink, _notice, _serve, enqueued  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C15")]


class RefusingSink(Sink):
    """Answers RCPT with `reply` until `refuse` is cleared."""

    def __init__(self, reply: str) -> None:
        super().__init__()
        self.reply = reply
        self.refuse = True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if self.refuse:
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def refusing(settings, request):
    server = _serve(settings, RefusingSink(request.param))
    yield server
    server.stop()


@pytest.mark.parametrize("refusing", ["550 5.1.1 No such mailbox"], indirect=True)
def test_a_permanent_refusal_fails_at_once_and_is_audited(refusing, django_capture_on_commit_callbacks, enqueued):  # noqa: F811
    _notice(django_capture_on_commit_callbacks, [OrganisationFactory()])
    [pk] = enqueued
    assert outbox_deliver(notification_id=pk) == "failed"
    row = Notification.objects.get(pk=pk)
    assert row.status == Notification.Status.FAILED and row.attempts == 1
    assert "SMTPRecipientsRefused" in row.last_error and row.recipient not in row.last_error
    assert AuditEvent.objects.get(action="incident.notice_failed").data["attempts"] == 1


@pytest.mark.parametrize("refusing", ["451 4.2.0 Mailbox busy, try later"], indirect=True)
def test_a_temporary_refusal_is_retried(refusing, django_capture_on_commit_callbacks, enqueued):  # noqa: F811
    _notice(django_capture_on_commit_callbacks, [OrganisationFactory()])
    [pk] = enqueued
    assert outbox_deliver(notification_id=pk) == "retry"
    assert Notification.objects.get(pk=pk).status == Notification.Status.PENDING


@pytest.mark.parametrize("refusing", ["550 5.1.1 No such mailbox"], indirect=True)
def test_an_incident_manager_sends_failed_notices_again(
    refusing,
    django_capture_on_commit_callbacks,
    enqueued,  # noqa: F811
    monkeypatch,
):
    _notice(django_capture_on_commit_callbacks, [OrganisationFactory(), OrganisationFactory()])
    first, second = enqueued
    assert outbox_deliver(notification_id=first) == "failed"  # the other one is still pending
    url = "/admin/incidents/notification/"
    action = {"action": "requeue", "_selected_action": [first, second]}

    support = otp_client(StaffFactory(role=SUPPORT_ENGINEER))
    assert support.post(url, action).status_code in (302, 403)
    assert Notification.objects.get(pk=first).status == Notification.Status.FAILED  # not allowed

    requeued: list[int] = []
    from incidents import tasks

    monkeypatch.setattr(tasks.deliver_notification, "delay", requeued.append)
    manager = otp_client(StaffFactory(role=INCIDENT_MANAGER))
    with django_capture_on_commit_callbacks(execute=True):
        response = manager.post(url, action, follow=True)
    assert "1 failed notice(s) queued again. 1 selected notice(s) had not failed" in response.content.decode()
    row = Notification.objects.get(pk=first)
    assert row.status == Notification.Status.PENDING and row.attempts == 0 and requeued == [first]
    event = AuditEvent.objects.get(action="incident.notice_requeued")
    assert event.data == {"notification": first, "attempts": 1, "error": "SMTPRecipientsRefused"}

    refusing.sink.refuse = False  # the customer fixed the mailbox
    assert outbox_deliver(notification_id=first, now=timezone.now() + timedelta(seconds=1)) == "sent"
    assert len(refusing.sink.accepted) == 1
