"""Incidents (C12-C20): the incident, who it affects and by when they must be told, its
timeline, the outbox of notices, corrective actions, evidence, RCA and report requests,
and the public status page's components and scheduled maintenance."""

from incidents.models.incident import (
    AffectedOrganisation,
    CorrectiveAction,
    Incident,
    IncidentUpdate,
)
from incidents.models.notification import Notification
from incidents.models.reports import Evidence, ReportRequest, RootCauseAnalysis
from incidents.models.status import (
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusChange,
    MaintenanceUpdate,
    ScheduledMaintenance,
    StatusSubscriber,
    StatusWebhook,
)

__all__ = [
    "AffectedOrganisation",
    "Component",
    "ComponentGroup",
    "ComponentStatus",
    "ComponentStatusChange",
    "CorrectiveAction",
    "Evidence",
    "Incident",
    "IncidentUpdate",
    "MaintenanceUpdate",
    "Notification",
    "ReportRequest",
    "RootCauseAnalysis",
    "ScheduledMaintenance",
    "StatusSubscriber",
    "StatusWebhook",
]
