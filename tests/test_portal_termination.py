"""The customer's side of termination (C21): ask in the portal, staff confirm, the notice; staff dates."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse

from governance.access.roles import SECURITY_OFFICER
from governance.retention import services
from governance.retention.models import Termination
from governance.retention.tasks import email_termination_notice, email_termination_requested
from governance.tenancy.models import Membership
from tests.factories import MembershipFactory, StaffFactory
from tests.helpers import otp_client

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C21")]
URL = "/portal/termination/"


@pytest.fixture
def cadence(settings):
    settings.RETENTION_CLEANUP_ANCHOR = date(2030, 1, 1)
    settings.RETENTION_BACKUP_DAYS = 90


@pytest.fixture
def admin_a(org_a):
    return MembershipFactory(organisation=org_a, role=Membership.Role.ADMIN).user


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_customer_admin_asks_and_sees_the_notice(org_a, admin_a, cadence, django_capture_on_commit_callbacks):
    officer = StaffFactory(role=SECURITY_OFFICER)
    client = _client(admin_a)
    page = client.get(URL)
    assert page.status_code == 200 and "Ask for termination" in page.content.decode()
    assert "2030-01-01" in page.content.decode() and "2030-04-01" in page.content.decode()

    assert client.post(URL, {"reason": "Moving provider"}).status_code == 400  # box not ticked
    assert client.post(URL, {"reason": "", "understood": "on"}).status_code == 400
    assert not Termination.objects.exists()

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(URL, {"reason": "Moving provider", "understood": "on"})
    assert response.status_code == 302 and len(callbacks) == 1  # the email task is queued after commit
    termination = Termination.objects.get()
    email_termination_requested(termination.pk)
    assert termination.requested_via == Termination.Via.CUSTOMER and termination.requested_by == admin_a
    # The security officers are told a customer asked; one of them must confirm.
    [message] = mail.outbox
    assert message.to == [officer.email] and "Moving provider" in message.body and "Org A" in message.subject

    body = client.get(URL).content.decode()
    assert "Termination notice" in body and "Moving provider" in body and "2030-01-01" in body
    assert "Requested (awaiting confirmation)" in body and "Withdraw my request" in body
    assert client.post(URL, {"reason": "again", "understood": "on"}).status_code == 400  # already open


def test_viewer_sees_but_cannot_ask(org_a, cadence):
    viewer = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    client = _client(viewer)
    body = client.get(URL).content.decode()
    assert "Only a customer admin" in body and "Ask for termination" not in body
    assert client.post(URL, {"reason": "x", "understood": "on"}).status_code == 403
    assert not Termination.objects.exists()


def test_withdraw_only_by_the_requester(org_a, admin_a, cadence):
    services.termination_request(organisation=org_a, acting_user=admin_a, reason="Budget")
    other_admin = MembershipFactory(organisation=org_a, role=Membership.Role.ADMIN).user
    _client(other_admin).post(URL, {"action": "withdraw"})
    assert Termination.objects.get().status == Termination.Status.REQUESTED
    _client(admin_a).post(URL, {"action": "withdraw"})
    assert Termination.objects.get().status == Termination.Status.CANCELLED
    assert "Ask for termination" in _client(admin_a).get(URL).content.decode()


def test_other_organisations_never_see_the_notice(org_a, admin_a, customer_b, cadence):
    services.termination_request(organisation=org_a, acting_user=admin_a, reason="Secret reason")
    body = _client(customer_b).get(URL).content.decode()
    assert "Secret reason" not in body and "Org A" not in body and "Termination notice" not in body


def test_staff_confirm_and_the_notice_is_emailed(org_a, admin_a, cadence, django_capture_on_commit_callbacks):
    viewer = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    termination = services.termination_request(organisation=org_a, acting_user=admin_a, reason="Moving provider")
    client = _client(admin_a)
    mail.outbox.clear()
    with time_machine.travel("2029-06-01 10:00Z", tick=False), django_capture_on_commit_callbacks() as callbacks:
        services.termination_confirm(termination=termination, acting_user=StaffFactory(role=SECURITY_OFFICER))
    assert len(callbacks) == 1
    email_termination_notice(termination.pk)
    # One notice each to the admin and the primary contact, not to the viewer.
    assert sorted(m.to[0] for m in mail.outbox) == sorted([admin_a.email, org_a.primary_contact_email])
    assert viewer.email not in [m.to[0] for m in mail.outbox]
    body = mail.outbox[0].body
    assert "terminated on 2029-06-01 10:00 UTC" in body and "Moving provider" in body
    assert "next clean-up run, on 2030-01-01" in body and "by 2030-04-01" in body
    # Every login ended: the portal no longer opens.
    assert client.get(URL).status_code == 302


def test_admin_shows_next_cleanup_and_when_backups_clear(org_a, admin_a, settings):
    settings.RETENTION_CLEANUP_ANCHOR = date(2026, 1, 1)
    first, second = StaffFactory(role=SECURITY_OFFICER), StaffFactory(role=SECURITY_OFFICER)
    termination = services.termination_request(organisation=org_a, acting_user=first, reason="Ended")
    services.termination_confirm(termination=termination, acting_user=second)
    with time_machine.travel("2026-01-01 02:00Z", tick=False):
        services.cleanup_run()
    url = reverse("admin:retention_termination_changelist")
    client = otp_client(first)
    with time_machine.travel("2026-03-31 12:00Z", tick=False):
        body = client.get(url).content.decode()
    assert "Next run: <strong>2026-07-01</strong>" in body
    assert "2026-04-01" in body and "2026-04-01 (done)" not in body
    with time_machine.travel("2026-04-01 02:01Z", tick=False):
        body = client.get(url).content.decode()
    assert "2026-04-01 (done)" in body
    cert = Termination.objects.get().certificate
    assert cert.backups_clear_at == cert.purge_finished_at + timedelta(days=90)


def test_an_account_switched_back_on_after_termination_reaches_nothing(org_a, admin_a, org_b, customer_b, cadence):
    termination = services.termination_request(organisation=org_a, acting_user=admin_a, reason="Leaving")
    services.termination_confirm(termination=termination, acting_user=StaffFactory(role=SECURITY_OFFICER))
    admin_a.refresh_from_db()
    assert not admin_a.is_active
    admin_a.is_active = True  # reactivated by mistake in the admin
    admin_a.save(update_fields=["is_active"])
    client = _client(admin_a)
    for url in (reverse("portal:home"), URL, reverse("portal:status")):
        assert client.get(url).status_code == 403, url
    assert _client(customer_b).get(reverse("portal:home")).status_code == 200  # others unaffected
