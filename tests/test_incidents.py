"""Incident services: general and specific incidents, affected organisations, the timeline
and its notices (C15, C17), corrective actions and closing (C18)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from governance.access.roles import AUDITOR, INCIDENT_MANAGER
from governance.tenancy.models import DataProtectionRole
from incidents import services
from incidents.models import AffectedOrganisation, CorrectiveAction, Incident, IncidentUpdate, Notification
from tests.factories import OrganisationFactory, StaffFactory

pytestmark = pytest.mark.django_db

Status = Incident.Status


@pytest.fixture
def manager():
    return StaffFactory(role=INCIDENT_MANAGER)


def _incident(manager, *, kind=Incident.Kind.SPECIFIC, organisations=(), **extra) -> Incident:
    now = timezone.now()
    return services.incident_create(
        acting_user=manager,
        title="Login failures",
        description="Some customers cannot sign in.",
        kind=kind,
        detected_at=now - timedelta(minutes=30),
        aware_at=now - timedelta(minutes=20),
        organisations=organisations,
        **extra,
    )


def _post(incident, manager, **overrides) -> IncidentUpdate:
    fields = {
        "incident": incident,
        "acting_user": manager,
        "visibility": IncidentUpdate.Visibility.PUBLIC,
        "status": Status.IDENTIFIED,
        "message": "We know the cause and are fixing it.",
        "actions_for_customers": "Nothing is needed from you.",
        **overrides,
    }
    return services.incident_update_post(**fields)


def _resolved(manager, **extra) -> Incident:
    incident = _incident(manager, kind=Incident.Kind.GENERAL, **extra)
    _post(incident, manager, status=Status.RESOLVED, message="Fixed.")
    return incident


def _action(incident, manager) -> CorrectiveAction:
    return services.corrective_action_add(
        incident=incident, acting_user=manager, title="Alert on login errors", owner=manager, due_date=date(2031, 1, 1)
    )


# --- general and specific -------------------------------------------------------------------------


def test_a_specific_incident_names_its_organisations(manager):
    with pytest.raises(ValidationError) as refused:
        _incident(manager, kind=Incident.Kind.SPECIFIC)
    assert "organisations" in refused.value.message_dict
    assert not Incident.objects.exists()


def test_a_public_update_of_a_general_incident_writes_no_outbox_rows(manager):
    incident = _incident(manager, kind=Incident.Kind.GENERAL, organisations=[OrganisationFactory()])
    update = _post(incident, manager)
    assert update.visibility == IncidentUpdate.Visibility.PUBLIC
    assert not Notification.objects.exists()  # the status page is the notice


def test_only_staff_with_the_permission_create_incidents():
    with pytest.raises(PermissionDenied):
        _incident(StaffFactory(role=AUDITOR), organisations=[OrganisationFactory()])


# --- affected organisations -------------------------------------------------------------------------


def test_the_role_defaults_from_the_organisation_and_can_be_overridden(manager, settings):
    settings.INCIDENT_PROCESSOR_NOTICE_HOURS = 24
    controller = OrganisationFactory(data_protection_role=DataProtectionRole.CONTROLLER)
    processor = OrganisationFactory(data_protection_role=DataProtectionRole.PROCESSOR)
    overridden = OrganisationFactory(data_protection_role=DataProtectionRole.PROCESSOR)
    incident = _incident(
        manager, organisations=[controller, processor], personal_data_breach=True, data_categories=["names"]
    )
    added = services.incident_organisation_add(
        incident=incident, organisation=overridden, acting_user=manager, role=DataProtectionRole.CONTROLLER
    )
    rows = {a.organisation_id: a for a in AffectedOrganisation.objects.filter(incident=incident)}
    assert rows[controller.pk].role == DataProtectionRole.CONTROLLER
    assert rows[processor.pk].role == DataProtectionRole.PROCESSOR
    assert added.role == DataProtectionRole.CONTROLLER
    assert rows[controller.pk].deadline_at == incident.aware_at + timedelta(hours=72)
    assert rows[processor.pk].deadline_at == incident.aware_at + timedelta(hours=24)
    assert added.deadline_at == incident.aware_at + timedelta(hours=72)


def test_an_organisation_is_affected_once(manager):
    organisation = OrganisationFactory()
    incident = _incident(manager, organisations=[organisation])
    with pytest.raises(ValidationError):
        services.incident_organisation_add(incident=incident, organisation=organisation, acting_user=manager)


# --- the timeline and notices -----------------------------------------------------------------------


def test_internal_updates_create_no_notifications(manager):
    incident = _incident(manager, organisations=[OrganisationFactory(), OrganisationFactory()])
    update = _post(incident, manager, visibility=IncidentUpdate.Visibility.INTERNAL, actions_for_customers="")
    assert update.visibility == IncidentUpdate.Visibility.INTERNAL
    assert not Notification.objects.exists()
    incident.refresh_from_db()
    assert incident.status == Status.IDENTIFIED


@pytest.mark.commitment("C15")
def test_a_public_update_of_a_specific_incident_writes_one_outbox_row_per_organisation(manager):
    first, second = OrganisationFactory(), OrganisationFactory()
    bystander = OrganisationFactory()
    incident = _incident(manager, organisations=[first, second])
    update = _post(incident, manager)

    rows = Notification.objects.filter(update=update)
    assert rows.count() == 2
    by_org = {n.organisation_id: n for n in rows}
    assert set(by_org) == {first.pk, second.pk}
    assert by_org[first.pk].recipient == first.primary_contact_email
    assert by_org[second.pk].recipient == second.primary_contact_email
    assert bystander.pk not in by_org
    for n in rows:
        assert n.status == Notification.Status.PENDING
        assert "Nothing is needed from you." in n.body
        assert n.idempotency_key == f"incident-update:{update.pk}:org:{n.organisation_id}"


@pytest.mark.commitment("C17")
def test_a_public_notice_without_actions_for_customers_is_refused(manager):
    incident = _incident(manager, organisations=[OrganisationFactory()])
    with pytest.raises(ValidationError) as refused:
        _post(incident, manager, actions_for_customers="   ")
    assert "actions_for_customers" in refused.value.message_dict
    assert not IncidentUpdate.objects.exists()
    assert not Notification.objects.exists()


# --- corrective actions and closing -----------------------------------------------------------------


@pytest.mark.commitment("C18")
def test_closing_is_refused_while_a_corrective_action_is_open(manager):
    incident = _resolved(manager)
    with pytest.raises(ValidationError, match="at least one corrective action"):
        services.incident_close(incident=incident, acting_user=manager)
    action = _action(incident, manager)
    with pytest.raises(ValidationError, match="Open corrective actions: Alert on login errors"):
        services.incident_close(incident=incident, acting_user=manager)
    incident.refresh_from_db()
    assert incident.closed_at is None

    services.corrective_action_decide(action=action, acting_user=manager, done=True)
    closed = services.incident_close(incident=incident, acting_user=manager)
    assert closed.closed_at is not None
    with pytest.raises(ValidationError):
        _post(closed, manager)


@pytest.mark.commitment("C18")
def test_closing_is_allowed_when_the_open_action_is_formally_accepted_with_a_reason(manager):
    incident = _resolved(manager)
    action = _action(incident, manager)
    with pytest.raises(ValidationError) as refused:
        services.corrective_action_decide(action=action, acting_user=manager, done=False, reason="  ")
    assert "accepted_reason" in refused.value.message_dict
    action.refresh_from_db()
    assert action.status == CorrectiveAction.Status.OPEN

    services.corrective_action_decide(
        action=action, acting_user=manager, done=False, reason="Compensated by the on-call rota until Q3."
    )
    action.refresh_from_db()
    assert action.status == CorrectiveAction.Status.ACCEPTED
    assert action.accepted_reason == "Compensated by the on-call rota until Q3."
    assert action.decided_by == manager
    assert services.incident_close(incident=incident, acting_user=manager).closed_at is not None


@pytest.mark.commitment("C18")
def test_closing_is_refused_until_the_incident_is_resolved(manager):
    incident = _incident(manager, kind=Incident.Kind.GENERAL)
    action = _action(incident, manager)
    services.corrective_action_decide(action=action, acting_user=manager, done=True)
    with pytest.raises(ValidationError, match="Only a resolved incident"):
        services.incident_close(incident=incident, acting_user=manager)


@pytest.mark.commitment("C18")
def test_a_decided_action_cannot_be_decided_again(manager):
    incident = _resolved(manager)
    action = _action(incident, manager)
    services.corrective_action_decide(action=action, acting_user=manager, done=True)
    with pytest.raises(ValidationError, match="already decided"):
        services.corrective_action_decide(action=action, acting_user=manager, done=False, reason="Changed my mind.")
