"""The staff admin for incidents: thin pages over the incident services, read-only for
auditors, the open notice deadlines list and the outbox, with fixed query counts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.access.roles import AUDITOR, DATA_PROTECTION_OFFICER, INCIDENT_MANAGER
from governance.tenancy.models import DataProtectionRole
from incidents import services
from incidents.models import AffectedOrganisation, CorrectiveAction, Incident, IncidentUpdate, Notification
from tests.factories import OrganisationFactory, StaffFactory
from tests.helpers import otp_client

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:incidents_incident_add")
INCIDENTS_URL = reverse("admin:incidents_incident_changelist")
DEADLINES_URL = reverse("admin:incidents_affectedorganisation_changelist")
OUTBOX_URL = reverse("admin:incidents_notification_changelist")
SECRET = "Root cause: leaked deploy key AKIA-EXAMPLE-123"
NOW = datetime(2030, 6, 10, 12, 0, tzinfo=UTC)


def _url(name: str, incident: Incident, *args) -> str:
    return reverse(f"admin:incidents_incident_{name}", args=[incident.pk, *args])


@pytest.fixture
def now(time_machine):
    time_machine.move_to(NOW, tick=False)
    return NOW


@pytest.fixture
def manager():
    return StaffFactory(role=INCIDENT_MANAGER)


@pytest.fixture
def auditor():
    return StaffFactory(role=AUDITOR)


def _breach(manager, organisations, *, aware_at: datetime, **extra) -> Incident:
    return services.incident_create(
        acting_user=manager,
        title=extra.pop("title", "Exports exposed"),
        description="Export files were readable without sign-in.",
        kind=Incident.Kind.SPECIFIC,
        detected_at=aware_at,
        aware_at=aware_at,
        personal_data_breach=True,
        data_categories=["contact details"],
        organisations=organisations,
        sensitive_details=SECRET,
        incident_manager=manager,
        **extra,
    )


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- the incident manager's path ------------------------------------------------------------------


def test_incident_manager_creates_updates_and_closes_an_incident(now, manager):
    controller = OrganisationFactory(data_protection_role=DataProtectionRole.CONTROLLER)
    processor = OrganisationFactory(data_protection_role=DataProtectionRole.PROCESSOR)
    client = otp_client(manager)
    aware = now - timedelta(hours=2)

    response = client.post(
        ADD_URL,
        {
            "title": "Exports exposed",
            "kind": "specific",
            "severity": "major",
            "description": "Export files were readable without sign-in.",
            "organisations": [controller.pk, processor.pk],
            "detected_at_0": f"{aware:%Y-%m-%d}",
            "detected_at_1": f"{aware:%H:%M:%S}",
            "aware_at_0": f"{aware:%Y-%m-%d}",
            "aware_at_1": f"{aware:%H:%M:%S}",
            "personal_data_breach": "on",
            "data_categories": "contact details\nlogin history",
            "incident_manager": manager.pk,
            "sensitive_details": SECRET,
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    incident = Incident.objects.get()
    assert incident.created_by == manager
    assert incident.data_categories == ["contact details", "login history"]
    assert incident.sensitive_details == SECRET
    roles = dict(AffectedOrganisation.objects.filter(incident=incident).values_list("organisation", "role"))
    assert roles == {controller.pk: DataProtectionRole.CONTROLLER, processor.pk: DataProtectionRole.PROCESSOR}

    page = client.get(_url("change", incident))
    assert page.status_code == 200
    content = page.content.decode()
    assert SECRET in content  # incident managers see the sensitive details
    assert "Post an update" in content and "Close the incident" in content
    assert "70 h 0 min left" in content  # the controller's 72 h, two hours in

    # A public update: one notice per affected organisation.
    response = client.post(
        _url("update", incident),
        {
            "visibility": "public",
            "status": "identified",
            "message": "We closed the bucket.",
            "actions_for_customers": "Nothing is needed from you.",
        },
    )
    assert response.status_code == 302
    assert Notification.objects.filter(incident=incident).count() == 2
    assert client.get(_url("change", incident)).content.decode().count("We closed the bucket.") == 1

    # Refused by the service: shown on the form, nothing saved.
    response = client.post(
        _url("update", incident),
        {"visibility": "public", "status": "identified", "message": "More news.", "actions_for_customers": ""},
    )
    assert response.status_code == 200
    assert "actions_for_customers" in response.context["form"].errors
    assert IncidentUpdate.objects.filter(incident=incident).count() == 1

    # Add an organisation with an overridden role.
    other = OrganisationFactory(data_protection_role=DataProtectionRole.PROCESSOR)
    response = client.post(_url("organisation", incident), {"organisation": other.pk, "role": "controller"})
    assert response.status_code == 302
    assert AffectedOrganisation.objects.get(incident=incident, organisation=other).role == "controller"

    # Closing: refused while unresolved / actions open, then done.
    response = client.post(_url("close", incident), follow=True)
    assert any("resolved" in m for m in _messages(response))
    response = client.post(
        _url("action", incident),
        {"title": "Block public buckets", "owner": manager.pk, "due_date": "2030-07-01"},
    )
    assert response.status_code == 302
    action = CorrectiveAction.objects.get(incident=incident)
    response = client.post(_url("action_decide", incident, action.pk), {"decision": "accept", "reason": ""})
    assert response.status_code == 200
    assert "reason" in response.context["form"].errors
    response = client.post(
        _url("action_decide", incident, action.pk), {"decision": "accept", "reason": "Compensating control in place."}
    )
    assert response.status_code == 302
    action.refresh_from_db()
    assert action.status == CorrectiveAction.Status.ACCEPTED
    # The notices were delivered (the outbox sets notified_at); now it can be resolved and closed.
    AffectedOrganisation.objects.filter(incident=incident).update(notified_at=now)
    client.post(
        _url("update", incident),
        {"visibility": "internal", "status": "resolved", "message": "Fixed and verified."},
    )
    response = client.post(_url("close", incident), follow=True)
    assert any("is closed" in m for m in _messages(response)), _messages(response)
    incident.refresh_from_db()
    assert incident.closed_at is not None
    assert "Post an update" not in client.get(_url("change", incident)).content.decode()


def test_add_form_shows_service_errors(now, manager):
    client = otp_client(manager)
    response = client.post(
        ADD_URL,
        {
            "title": "No organisations",
            "kind": "specific",
            "severity": "minor",
            "description": "Something.",
            "detected_at_0": f"{now:%Y-%m-%d}",
            "detected_at_1": "11:00:00",
            "aware_at_0": f"{now:%Y-%m-%d}",
            "aware_at_1": "11:30:00",
            "_save": "Save",
        },
    )
    assert response.status_code == 200
    assert "organisations" in response.context["adminform"].form.errors
    assert not Incident.objects.exists()


# --- auditors and the DPO ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", [AUDITOR, DATA_PROTECTION_OFFICER])
def test_readers_view_but_cannot_change_and_never_see_sensitive_details(now, manager, role):
    incident = _breach(manager, [OrganisationFactory()], aware_at=now - timedelta(hours=1))
    action = services.corrective_action_add(
        incident=incident, acting_user=manager, title="Rotate keys", owner=manager, due_date=now.date()
    )
    reader = StaffFactory(role=role)
    client = otp_client(reader)

    page = client.get(_url("change", incident))
    assert page.status_code == 200
    content = page.content.decode()
    assert "Exports exposed" in content and "Rotate keys" in content
    assert SECRET not in content
    assert "Sensitive details" not in content
    assert "Post an update" not in content and "Close the incident" not in content
    assert SECRET not in client.get(INCIDENTS_URL).content.decode()
    assert SECRET not in client.get(_url("history", incident)).content.decode()

    assert client.get(ADD_URL).status_code == 403
    for name, args in (("update", ()), ("organisation", ()), ("action", ()), ("action_decide", (action.pk,))):
        assert client.get(_url(name, incident, *args)).status_code == 403
        assert client.post(_url(name, incident, *args), {}).status_code == 403
    assert client.post(_url("close", incident)).status_code == 403
    assert client.post(_url("change", incident), {"title": "Changed"}).status_code == 403
    incident.refresh_from_db()
    assert incident.title == "Exports exposed"
    assert IncidentUpdate.objects.count() == 0


def test_staff_without_incident_permissions_get_no_page(now, manager):
    incident = _breach(manager, [OrganisationFactory()], aware_at=now - timedelta(hours=1))
    client = otp_client(StaffFactory())
    assert client.get(_url("change", incident)).status_code == 403
    assert client.get(_url("update", incident)).status_code in (403, 404)


# --- open notice deadlines --------------------------------------------------------------------------


@pytest.mark.commitment("C12")
def test_open_deadlines_are_listed_soonest_first_with_missed_ones_on_top(now, manager, time_machine, settings):
    settings.INCIDENT_PROCESSOR_NOTICE_HOURS = 24
    controller = OrganisationFactory(name="Controller Ltd", data_protection_role=DataProtectionRole.CONTROLLER)
    processor = OrganisationFactory(name="Processor Ltd", data_protection_role=DataProtectionRole.PROCESSOR)
    late = OrganisationFactory(name="Late Ltd", data_protection_role=DataProtectionRole.PROCESSOR)
    told = OrganisationFactory(name="Told Ltd", data_protection_role=DataProtectionRole.PROCESSOR)
    _breach(manager, [controller, processor], aware_at=now - timedelta(hours=10), title="Recent")
    old = _breach(manager, [late, told], aware_at=now - timedelta(hours=30), title="Older")
    AffectedOrganisation.objects.filter(organisation=told).update(notified_at=now - timedelta(hours=20))
    services.incident_create(  # not a breach: no deadline, not listed
        acting_user=manager,
        title="Slow pages",
        description="Slow.",
        kind=Incident.Kind.SPECIFIC,
        detected_at=now,
        aware_at=now,
        organisations=[OrganisationFactory(name="Slow Ltd")],
    )

    response = otp_client(StaffFactory(role=DATA_PROTECTION_OFFICER)).get(DEADLINES_URL)
    assert response.status_code == 200
    content = response.content.decode()
    assert "Open notice deadlines" in content
    rows = [r.organisation.name for r in response.context["cl"].result_list]
    assert rows == ["Late Ltd", "Processor Ltd", "Controller Ltd"]
    assert "Told Ltd" not in content and "Slow Ltd" not in content
    assert "MISSED" in content
    assert "14 h 0 min left" in content  # processor: 24 h from 10 h ago
    assert "62 h 0 min left" in content  # controller: 72 h from 10 h ago
    assert reverse("admin:incidents_incident_change", args=[old.pk]) in content
    # Read-only: nobody changes a deadline by hand.
    assert otp_client(manager).post(reverse("admin:incidents_affectedorganisation_add"), {}).status_code == 403


# --- the outbox --------------------------------------------------------------------------------------


@pytest.mark.commitment("C15")
def test_outbox_shows_delivery_state_but_never_the_recipient_or_body(now, manager):
    organisation = OrganisationFactory(name="Notified Ltd")
    incident = _breach(manager, [organisation], aware_at=now - timedelta(hours=1))
    services.incident_update_post(
        incident=incident,
        acting_user=manager,
        visibility="public",
        status="identified",
        message="Confidential-looking message body",
        actions_for_customers="Reset your password.",
    )
    notification = Notification.objects.get()
    client = otp_client(StaffFactory(role=AUDITOR))
    for url in (OUTBOX_URL, reverse("admin:incidents_notification_change", args=[notification.pk])):
        response = client.get(url)
        assert response.status_code == 200
        content = response.content.decode()
        assert "Notified Ltd" in content and "Pending" in content
        assert organisation.primary_contact_email not in content
        assert "Confidential-looking message body" not in content
    assert client.post(reverse("admin:incidents_notification_change", args=[notification.pk]), {}).status_code == 403


# --- query counts ------------------------------------------------------------------------------------


def _count(client, url) -> int:
    client.get(url)  # warm up: the first request of a session does one-off work
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _grow(manager, n: int, now: datetime) -> None:
    for i in range(n):
        incident = _breach(manager, [OrganisationFactory()], aware_at=now - timedelta(minutes=i + 1), title=f"B{i}")
        services.incident_update_post(
            incident=incident,
            acting_user=manager,
            visibility="public",
            status="identified",
            message="Found it.",
            actions_for_customers="Nothing.",
        )


@pytest.mark.parametrize("role", [INCIDENT_MANAGER, AUDITOR])
def test_incident_changelists_do_not_grow_with_rows(now, manager, role):
    client = otp_client(manager if role == INCIDENT_MANAGER else StaffFactory(role=role))
    urls = [INCIDENTS_URL, DEADLINES_URL, OUTBOX_URL]
    _grow(manager, 5, now)
    small = {u: _count(client, u) for u in urls}
    assert re.search(r"5 incidents", client.get(INCIDENTS_URL).content.decode())
    _grow(manager, 45, now)
    large = {u: _count(client, u) for u in urls}
    assert len(client.get(DEADLINES_URL).context["cl"].result_list) == 50
    assert len(client.get(OUTBOX_URL).context["cl"].result_list) == 50
    assert small == large, (small, large)
