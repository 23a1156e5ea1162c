"""Status page state changes: components, their groups, status changes (recorded in the
history the 90-day bars are drawn from) and scheduled maintenance. Each bumps the public
cache version on commit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from governance.access.models import User
from governance.audit.services import audit_record
from incidents.models import (
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusChange,
    IncidentUpdate,
    MaintenanceUpdate,
    ScheduledMaintenance,
)
from incidents.status import subscriptions
from incidents.status.cache import bump_on_commit


def _require_staff(user: User, perm: str) -> None:
    if not (user.is_active and user.is_staff and user.has_perm(perm)):
        raise PermissionDenied("You cannot change the status page.")


def component_statuses_clean(component_statuses: Mapping[int, str] | None) -> dict[Component, str]:
    """Validate {component id: status}; returns {component: status}."""
    if not component_statuses:
        return {}
    if bad := sorted({s for s in component_statuses.values() if s not in ComponentStatus.values}):
        raise ValidationError({"component_statuses": f"Unknown component status: {', '.join(bad)}."})
    components = {c.pk: c for c in Component.objects.filter(pk__in=list(component_statuses))}
    if missing := [str(pk) for pk in component_statuses if int(pk) not in components]:
        raise ValidationError({"component_statuses": f"No such component: {', '.join(missing)}."})
    return {components[int(pk)]: status for pk, status in component_statuses.items()}


def component_status_set(
    *,
    component: Component,
    status: str,
    acting_user: User | None,
    at: datetime | None = None,
    incident_update: IncidentUpdate | None = None,
    maintenance_update: MaintenanceUpdate | None = None,
) -> ComponentStatusChange | None:
    """Change one component's status and record it in its history. Call inside the
    caller's transaction; no row is written when the status does not change."""
    if status not in ComponentStatus.values:
        raise ValidationError({"status": "Choose a component status."})
    at = at or timezone.now()
    previous = Component.objects.select_for_update().values_list("status", flat=True).get(pk=component.pk)
    if previous == status:
        return None
    component.status = status
    Component.objects.filter(pk=component.pk).update(status=status, updated_at=at)
    change = ComponentStatusChange.objects.create(
        component=component,
        previous_status=previous,
        status=status,
        at=at,
        incident_update=incident_update,
        maintenance_update=maintenance_update,
        created_by=acting_user,
    )
    bump_on_commit()
    return change


def component_group_save(*, group: ComponentGroup, acting_user: User) -> ComponentGroup:
    adding = group._state.adding
    _require_staff(acting_user, "incidents.add_componentgroup" if adding else "incidents.change_componentgroup")
    if not group.name.strip():
        raise ValidationError({"name": "Name the group."})
    with transaction.atomic():
        group.save()
        audit_record(action="status.group_saved", actor=acting_user, obj=group, data={"created": adding})
        bump_on_commit()
    return group


def component_save(*, component: Component, acting_user: User) -> Component:
    """Create or edit a component; a status change is recorded in its history."""
    adding = component._state.adding
    _require_staff(acting_user, "incidents.add_component" if adding else "incidents.change_component")
    if not component.name.strip():
        raise ValidationError({"name": "Name the component."})
    if component.status not in ComponentStatus.values:
        raise ValidationError({"status": "Choose a component status."})
    with transaction.atomic():
        status = component.status
        if adding:
            component.save()
            ComponentStatusChange.objects.create(
                component=component, status=status, at=component.created_at, created_by=acting_user
            )
        else:
            component.status = Component.objects.values_list("status", flat=True).get(pk=component.pk)
            component.save()
            component_status_set(component=component, status=status, acting_user=acting_user)
        audit_record(
            action="status.component_saved",
            actor=acting_user,
            obj=component,
            data={"created": adding, "status": status},
        )
        bump_on_commit()
    return component


# --- scheduled maintenance -------------------------------------------------------------------


def maintenance_create(
    *,
    acting_user: User,
    name: str,
    scheduled_for: datetime,
    scheduled_until: datetime,
    components: Iterable[Component] = (),
    body: str = "",
) -> ScheduledMaintenance:
    _require_staff(acting_user, "incidents.add_scheduledmaintenance")
    errors = {}
    if not name.strip():
        errors["name"] = "Name the maintenance."
    if scheduled_until <= scheduled_for:
        errors["scheduled_until"] = "The maintenance must end after it starts."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        maintenance = ScheduledMaintenance.objects.create(
            name=name.strip(), scheduled_for=scheduled_for, scheduled_until=scheduled_until, created_by=acting_user
        )
        maintenance.components.set(components)
        first = MaintenanceUpdate.objects.create(
            maintenance=maintenance,
            status=maintenance.status,
            body=body.strip() or f"{maintenance.name} is scheduled.",
            created_by=acting_user,
            created_at=timezone.now(),
        )
        notices = subscriptions.maintenance_notify(update=first, now=timezone.now())
        audit_record(action="status.maintenance_created", actor=acting_user, obj=maintenance, data={"notices": notices})
        bump_on_commit()
    return maintenance


def maintenance_update_post(
    *,
    maintenance: ScheduledMaintenance,
    acting_user: User,
    status: str,
    body: str,
    component_statuses: Mapping[int, str] | None = None,
) -> MaintenanceUpdate:
    """Move a maintenance along (scheduled -> in progress -> verifying -> completed) with a
    public note; components it touches may change status, recorded in their history."""
    _require_staff(acting_user, "incidents.change_scheduledmaintenance")
    if status not in ScheduledMaintenance.Status.values:
        raise ValidationError({"status": "Choose a maintenance status."})
    if not body.strip():
        raise ValidationError({"body": "Write the update."})
    changes = component_statuses_clean(component_statuses)
    now = timezone.now()
    with transaction.atomic():
        update = MaintenanceUpdate.objects.create(
            maintenance=maintenance, status=status, body=body.strip(), created_by=acting_user, created_at=now
        )
        maintenance.status = status
        maintenance.save(update_fields=["status", "updated_at"])
        for component, new_status in changes.items():
            component_status_set(
                component=component, status=new_status, acting_user=acting_user, at=now, maintenance_update=update
            )
        audit_record(
            action="status.maintenance_updated",
            actor=acting_user,
            obj=maintenance,
            data={
                "status": status,
                "components": {c.pk: s for c, s in changes.items()},
                "notices": subscriptions.maintenance_notify(update=update, now=now),
            },
        )
        bump_on_commit()
    return update
