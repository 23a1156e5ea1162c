"""Incidents (C12-C20): the incident, who it affects and by when they must be told, its
timeline, the outbox of notices, corrective actions, evidence, RCA and report requests."""

from incidents.models.incident import (
    AffectedOrganisation,
    CorrectiveAction,
    Incident,
    IncidentUpdate,
)
from incidents.models.notification import Notification
from incidents.models.reports import Evidence, ReportRequest, RootCauseAnalysis

__all__ = [
    "AffectedOrganisation",
    "CorrectiveAction",
    "Evidence",
    "Incident",
    "IncidentUpdate",
    "Notification",
    "ReportRequest",
    "RootCauseAnalysis",
]
