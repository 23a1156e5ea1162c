from __future__ import annotations

from django.conf import settings
from django.db import models
from django_scopes import ScopedManager

from governance.core.encryption import EncryptedTextField
from governance.tenancy.models import DataProtectionRole


class Incident(models.Model):
    """Something that went wrong. General incidents affect everyone and are public;
    specific ones concern named organisations only. `aware_at` starts the legal clock."""

    class Kind(models.TextChoices):
        GENERAL = "general", "General (affects everyone, public)"
        SPECIFIC = "specific", "Specific (named organisations only)"

    class Severity(models.TextChoices):
        MINOR = "minor", "Minor"
        MAJOR = "major", "Major"
        CRITICAL = "critical", "Critical"

    class Status(models.TextChoices):
        INVESTIGATING = "investigating", "Investigating"
        IDENTIFIED = "identified", "Identified"
        MONITORING = "monitoring", "Monitoring"
        RESOLVED = "resolved", "Resolved"
        POSTMORTEM = "postmortem", "Postmortem"

    title = models.CharField(max_length=200)
    description = models.TextField(help_text="What happened, in words fit for the affected customers.")
    sensitive_details = EncryptedTextField(blank=True, help_text="Internal details; encrypted at rest.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.MINOR)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INVESTIGATING, db_index=True)
    detected_at = models.DateTimeField()
    aware_at = models.DateTimeField(help_text="When we became aware: starts the breach-notice clock.")
    personal_data_breach = models.BooleanField(default=False)
    data_categories = models.JSONField(default=list, blank=True, help_text="Categories of personal data (Art. 33(3)).")
    approx_people = models.PositiveIntegerField(null=True, blank=True)
    approx_records = models.PositiveIntegerField(null=True, blank=True)
    affected_components = models.JSONField(default=list, blank=True)
    incident_manager = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    organisations = models.ManyToManyField(
        "tenancy.Organisation", through="AffectedOrganisation", related_name="incidents", blank=True
    )

    class Meta:
        ordering = ["-aware_at"]
        permissions = [("close_incident", "Can close incidents")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None


class AffectedOrganisation(models.Model):
    """One organisation an incident concerns, with its notice deadline (C12, C13).

    Controller: aware + 72 h (GDPR Art. 33(1)). Processor: aware + the "undue delay"
    target (Art. 33(2); INCIDENT_PROCESSOR_NOTICE_HOURS, default 24 h). The monitor
    escalates at 50, 75 and 90 % of the window and marks a miss.
    """

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="affected")
    organisation = models.ForeignKey("tenancy.Organisation", on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=16, choices=DataProtectionRole.choices)
    deadline_at = models.DateTimeField(null=True, blank=True, db_index=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    late_reason = models.TextField(blank=True, help_text="Required when the notice goes out after the deadline.")
    # Highest escalation sent so far: 0, 50, 75 or 90 (percent of the window).
    escalated_percent = models.PositiveSmallIntegerField(default=0)
    missed_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(organisation="organisation")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "organisation"], name="one_row_per_affected_org")]
        indexes = [models.Index(fields=["notified_at", "deadline_at"])]

    def __str__(self) -> str:
        return f"{self.organisation} in {self.incident}"


class IncidentUpdate(models.Model):
    """One entry of an incident's timeline. Public updates are notices (C14, C15, C17)."""

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public (sent to customers)"
        INTERNAL = "internal", "Internal (staff only)"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")
    visibility = models.CharField(max_length=16, choices=Visibility.choices)
    status = models.CharField(max_length=16, choices=Incident.Status.choices)
    message = models.TextField()
    actions_for_customers = models.TextField(
        blank=True, help_text="What customers should do (required on every public notice, C17)."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.incident} update at {self.created_at:%Y-%m-%d %H:%M}"


class CorrectiveAction(models.Model):
    """What we do so it does not happen again (C18). Closing needs each done or accepted."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        ACCEPTED = "accepted", "Formally accepted as open"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="corrective_actions")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    due_date = models.DateField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    accepted_reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_date", "id"]

    def __str__(self) -> str:
        return self.title
