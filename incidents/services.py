"""Incident state changes: create, affect organisations, post updates (which write outbox
rows in the same transaction), corrective actions and closing (C12-C15, C17, C18)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from governance.access.models import User
from governance.audit.services import audit_record
from governance.tenancy.models import DataProtectionRole, Organisation
from incidents.models import AffectedOrganisation, Component, CorrectiveAction, Incident, IncidentUpdate, Notification
from incidents.status import cache as status_cache
from incidents.status import subscriptions
from incidents.status.services import component_status_set, component_statuses_clean

logger = logging.getLogger(__name__)

CONTROLLER_NOTICE = timedelta(hours=72)  # GDPR Art. 33(1): calendar hours, not working days


def notice_deadline(*, role: str, aware_at: datetime) -> datetime:
    # In UTC: adding hours to a datetime in a zone with DST adds wall-clock hours, so
    # 72 h across a clock change would be 71 or 73 real hours.
    aware_at = aware_at.astimezone(UTC)
    if role == DataProtectionRole.CONTROLLER:
        return aware_at + CONTROLLER_NOTICE
    return aware_at + timedelta(hours=settings.INCIDENT_PROCESSOR_NOTICE_HOURS)


def _require_staff(user: User, perm: str) -> None:
    if not (user.is_active and user.is_staff and user.has_perm(perm)):
        raise PermissionDenied("You cannot do this to incidents.")


# --- incidents ------------------------------------------------------------------------------


def incident_create(
    *,
    acting_user: User,
    title: str,
    description: str,
    kind: str,
    detected_at: datetime,
    aware_at: datetime,
    severity: str = Incident.Severity.MINOR,
    personal_data_breach: bool = False,
    data_categories: Iterable[str] = (),
    approx_people: int | None = None,
    approx_records: int | None = None,
    affected_components: Iterable[str] = (),
    organisations: Iterable[Organisation] = (),
    sensitive_details: str = "",
    incident_manager: User | None = None,
    components: Iterable[Component] = (),
) -> Incident:
    """Record an incident; affected organisations get their notice deadlines at once. A
    general incident appears on the public status page on commit."""
    _require_staff(acting_user, "incidents.add_incident")
    now = timezone.now()
    organisations = list({o.pk: o for o in organisations}.values())
    data_categories = [c.strip() for c in data_categories if c.strip()]
    errors: dict[str, str] = {}
    if not title.strip():
        errors["title"] = "Give the incident a title."
    if kind not in Incident.Kind.values:
        errors["kind"] = "Choose general or specific."
    elif kind == Incident.Kind.SPECIFIC and not organisations:
        errors["organisations"] = "A specific incident names the organisations it affects."
    if aware_at > now:
        errors["aware_at"] = "We cannot have become aware in the future."
    if detected_at > aware_at:
        errors["detected_at"] = "Detection cannot come after awareness."
    if personal_data_breach and not data_categories:
        errors["data_categories"] = "A personal-data breach lists the categories of data concerned (Art. 33(3))."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        incident = Incident.objects.create(
            title=title.strip(),
            description=description.strip(),
            sensitive_details=sensitive_details,
            kind=kind,
            severity=severity,
            detected_at=detected_at,
            aware_at=aware_at,
            personal_data_breach=personal_data_breach,
            data_categories=data_categories,
            approx_people=approx_people,
            approx_records=approx_records,
            affected_components=list(affected_components),
            incident_manager=incident_manager,
            created_by=acting_user,
        )
        for organisation in organisations:
            _affect(incident, organisation, role=None)
        if components:
            incident.status_components.set(components)
        if kind == Incident.Kind.GENERAL:
            status_cache.bump_on_commit()
        audit_record(
            action="incident.created",
            actor=acting_user,
            obj=incident,
            data={"kind": kind, "breach": personal_data_breach, "organisations": [o.pk for o in organisations]},
        )
    return incident


def _affect(incident: Incident, organisation: Organisation, role: str | None) -> AffectedOrganisation:
    role = role or organisation.data_protection_role
    return AffectedOrganisation.objects.with_scopes_disabled().create(
        incident=incident,
        organisation=organisation,
        role=role,
        deadline_at=notice_deadline(role=role, aware_at=incident.aware_at) if incident.personal_data_breach else None,
    )


def incident_organisation_add(
    *, incident: Incident, organisation: Organisation, acting_user: User, role: str | None = None
) -> AffectedOrganisation:
    """Add an affected organisation; the role defaults from the organisation, overridable."""
    _require_staff(acting_user, "incidents.change_incident")
    if role is not None and role not in DataProtectionRole.values:
        raise ValidationError({"role": "Choose controller or processor."})
    if (
        AffectedOrganisation.objects.with_scopes_disabled()
        .filter(incident=incident, organisation=organisation)
        .exists()
    ):
        raise ValidationError(f"{organisation} is already affected by this incident.")
    with transaction.atomic():
        affected = _affect(incident, organisation, role)
        audit_record(
            action="incident.organisation_added", actor=acting_user, obj=incident, organisation_id=organisation.pk
        )
    return affected


# --- timeline and notices -------------------------------------------------------------------


def incident_update_post(
    *,
    incident: Incident,
    acting_user: User,
    visibility: str,
    status: str,
    message: str,
    actions_for_customers: str = "",
    late_reason: str = "",
    component_statuses: Mapping[int, str] | None = None,
) -> IncidentUpdate:
    """Add a timeline entry. A public update of a specific incident is a notice: one outbox
    row per affected organisation, written in this same transaction (C15, C17).

    `component_statuses` ({component id: status}) changes public component statuses, so
    only a public update may carry it; the changes are recorded in the components'
    history and the components are linked to the incident (C14)."""
    _require_staff(acting_user, "incidents.change_incident")
    now = timezone.now()
    errors: dict[str, str] = {}
    if incident.is_closed:
        raise ValidationError("This incident is closed.")
    if visibility not in IncidentUpdate.Visibility.values:
        errors["visibility"] = "Choose public or internal."
    if status not in Incident.Status.values:
        errors["status"] = "Choose a status."
    if not message.strip():
        errors["message"] = "Write the update."
    public = visibility == IncidentUpdate.Visibility.PUBLIC
    if public and not actions_for_customers.strip():
        errors["actions_for_customers"] = (
            "A notice must tell customers what they should do (or that nothing is needed)."
        )
    affected = []
    if public and incident.kind == Incident.Kind.SPECIFIC:
        affected = list(
            AffectedOrganisation.objects.with_scopes_disabled().filter(incident=incident).select_related("organisation")
        )
        if missing := [a.organisation.name for a in affected if not a.organisation.primary_contact_email]:
            errors["visibility"] = f"No primary email address to notify: {', '.join(missing)}."
        late = [a for a in affected if a.notified_at is None and a.deadline_at is not None and a.deadline_at <= now]
        if late and not late_reason.strip():
            errors["late_reason"] = (
                "The notice deadline has passed for "
                + ", ".join(a.organisation.name for a in late)
                + ": give the reasons for the delay (GDPR Art. 33(1))."
            )
    if component_statuses and not public:
        errors["component_statuses"] = "Component statuses are public: change them with a public update."
    if errors:
        raise ValidationError(errors)
    component_changes = component_statuses_clean(component_statuses)

    with transaction.atomic():
        update = IncidentUpdate.objects.create(
            incident=incident,
            visibility=visibility,
            status=status,
            message=message.strip(),
            actions_for_customers=actions_for_customers.strip(),
            created_by=acting_user,
            created_at=now,
        )
        if incident.status != status:
            incident.status = status
            incident.save(update_fields=["status"])
        for component, component_status in component_changes.items():
            component_status_set(
                component=component, status=component_status, acting_user=acting_user, at=now, incident_update=update
            )
        if component_changes:
            incident.status_components.add(*component_changes)
        if public and incident.kind == Incident.Kind.GENERAL:
            status_cache.bump_on_commit()
        notifications = [_notice_for(update, a, now) for a in affected]
        # Status-page subscribers and webhooks: every public update of a general incident
        # (decided by public_incidents(), so nothing else ever reaches them).
        notifications += subscriptions.update_notifications(update=update, now=now)
        Notification.objects.bulk_create(notifications)
        for a in affected:
            if a.notified_at is None and a.deadline_at is not None and a.deadline_at <= now and not a.late_reason:
                a.late_reason = late_reason.strip()
                a.save(update_fields=["late_reason"])
        audit_record(
            action=f"incident.update_{visibility}",
            actor=acting_user,
            obj=incident,
            data={
                "status": status,
                "update": update.pk,
                "notices": len(notifications),
                "components": {c.pk: s for c, s in component_changes.items()},
            },
        )
        keys = [n.idempotency_key for n in notifications]
        if keys:
            transaction.on_commit(lambda: _enqueue(keys))
    return update


def _notice_for(update: IncidentUpdate, affected: AffectedOrganisation, now: datetime) -> Notification:
    organisation = affected.organisation
    incident = update.incident
    context = {
        "update": update,
        "incident": incident,
        "organisation": organisation,
        "affected": affected,
        "portal_url": f"{settings.SITE_URL}/portal/incidents/{incident.pk}/",
    }
    return Notification(
        idempotency_key=f"incident-update:{update.pk}:org:{organisation.pk}",
        incident=incident,
        update=update,
        organisation=organisation,
        recipient=organisation.primary_contact_email,
        subject=f"[Assyst] {incident.get_severity_display()} incident affecting {organisation.name}: {incident.title}",
        body=render_to_string("email/incident_notice.txt", context),
        next_attempt_at=now,
    )


def _enqueue(keys: list[str]) -> None:
    """After commit: the rows are safe, so a broker outage must not fail the request; the
    outbox sweep delivers whatever was not queued."""
    from incidents.tasks import deliver_notification

    try:
        for pk in Notification.objects.filter(idempotency_key__in=keys).values_list("pk", flat=True):
            deliver_notification.delay(pk)
    except Exception:
        logger.exception("could not queue %s notices; the outbox sweep will deliver them", len(keys))


# --- corrective actions and closing ------------------------------------------------------


def corrective_action_add(
    *, incident: Incident, acting_user: User, title: str, owner: User, due_date: date, description: str = ""
) -> CorrectiveAction:
    _require_staff(acting_user, "incidents.change_incident")
    if not title.strip():
        raise ValidationError({"title": "Say what will be done."})
    if not owner.is_staff:
        raise ValidationError({"owner": "The owner must be a member of staff."})
    with transaction.atomic():
        action = CorrectiveAction.objects.create(
            incident=incident, title=title.strip(), description=description, owner=owner, due_date=due_date
        )
        audit_record(action="incident.action_added", actor=acting_user, obj=incident, data={"action": action.pk})
    return action


def corrective_action_decide(
    *, action: CorrectiveAction, acting_user: User, done: bool, reason: str = ""
) -> CorrectiveAction:
    """Mark an action done, or formally accept it as open with a reason (C18)."""
    _require_staff(acting_user, "incidents.change_incident")
    if action.status != CorrectiveAction.Status.OPEN:
        raise ValidationError("This action is already decided.")
    if not done and not reason.strip():
        raise ValidationError({"accepted_reason": "Accepting an open action needs a reason."})
    with transaction.atomic():
        action.status = CorrectiveAction.Status.DONE if done else CorrectiveAction.Status.ACCEPTED
        action.accepted_reason = reason.strip()
        action.decided_by = acting_user
        action.decided_at = timezone.now()
        action.save(update_fields=["status", "accepted_reason", "decided_by", "decided_at"])
        audit_record(
            action=f"incident.action_{action.status}",
            actor=acting_user,
            obj=action.incident,
            data={"action": action.pk, "reason": action.accepted_reason},
        )
    return action


def incident_close(*, incident: Incident, acting_user: User) -> Incident:
    """Close a resolved incident; refused while any corrective action is still open (C18)."""
    _require_staff(acting_user, "incidents.close_incident")
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if incident.is_closed:
            raise ValidationError("This incident is already closed.")
        if incident.status not in (Incident.Status.RESOLVED, Incident.Status.POSTMORTEM):
            raise ValidationError("Only a resolved incident can be closed.")
        if not incident.corrective_actions.exists():
            raise ValidationError("Record at least one corrective action before closing.")
        if open_actions := list(incident.corrective_actions.filter(status=CorrectiveAction.Status.OPEN)):
            raise ValidationError(
                "Open corrective actions: "
                + "; ".join(a.title for a in open_actions)
                + ". Complete them or formally accept them with a reason."
            )
        unnotified = AffectedOrganisation.objects.with_scopes_disabled().filter(
            incident=incident, notified_at__isnull=True, deadline_at__isnull=False
        )
        if unnotified.exists():
            raise ValidationError("Some affected organisations have not been notified yet.")
        incident.closed_at = timezone.now()
        incident.save(update_fields=["closed_at"])
        audit_record(action="incident.closed", actor=acting_user, obj=incident)
    return incident
