"""The public status page (C14): components customers use, their status history,
scheduled maintenance, and the email and webhook subscriptions to it. Incidents link to
the components they affect."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from governance.core.encryption import (
    BlindIndexedSaveMixin,
    BlindIndexField,
    EncryptedCharField,
    EncryptedEmailField,
)
from incidents.models.incident import Incident, IncidentUpdate


class ComponentStatus(models.TextChoices):
    """Statuspage's component statuses, in its spelling (its public API is the contract)."""

    OPERATIONAL = "operational", "Operational"
    DEGRADED_PERFORMANCE = "degraded_performance", "Degraded performance"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    MAJOR_OUTAGE = "major_outage", "Major outage"
    UNDER_MAINTENANCE = "under_maintenance", "Under maintenance"


# Worst-first comparison for "the worst status that day" and the overall indicator.
STATUS_RANK = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.UNDER_MAINTENANCE: 1,
    ComponentStatus.DEGRADED_PERFORMANCE: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}


class ComponentGroup(models.Model):
    """A heading on the status page that gathers related components (e.g. "Reporting")."""

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Component(models.Model):
    """A service customers use (web app, API, ...) and its current public status."""

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    group = models.ForeignKey(
        ComponentGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="components"
    )
    position = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=24, choices=ComponentStatus.choices, default=ComponentStatus.OPERATIONAL)
    showcase = models.BooleanField(default=True, help_text="Show the 90-day history bar on the status page.")
    only_show_if_degraded = models.BooleanField(default=False)
    start_date = models.DateField(null=True, blank=True, help_text="History starts here (defaults to creation).")
    # Not "components": the incident admin already shows the legacy name list under that name.
    incidents = models.ManyToManyField(Incident, related_name="status_components", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class ScheduledMaintenance(models.Model):
    """Planned work announced on the status page; its status is set by staff, not by the
    clock, so the page changes only when someone records a change."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        IN_PROGRESS = "in_progress", "In progress"
        VERIFYING = "verifying", "Verifying"
        COMPLETED = "completed", "Completed"

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED, db_index=True)
    scheduled_for = models.DateTimeField()
    scheduled_until = models.DateTimeField()
    components = models.ManyToManyField(Component, related_name="maintenances", blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-scheduled_for", "-pk"]
        verbose_name_plural = "scheduled maintenance"

    def __str__(self) -> str:
        return self.name


class MaintenanceUpdate(models.Model):
    """One public entry of a maintenance's timeline (all maintenance updates are public)."""

    maintenance = models.ForeignKey(ScheduledMaintenance, on_delete=models.CASCADE, related_name="updates")
    status = models.CharField(max_length=16, choices=ScheduledMaintenance.Status.choices)
    body = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.maintenance} update at {self.created_at:%Y-%m-%d %H:%M}"


class ComponentStatusChange(models.Model):
    """One change of a component's status: the 90-day history bars are drawn from these."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="status_changes")
    previous_status = models.CharField(max_length=24, choices=ComponentStatus.choices, blank=True)
    status = models.CharField(max_length=24, choices=ComponentStatus.choices)
    at = models.DateTimeField()
    incident_update = models.ForeignKey(
        IncidentUpdate, null=True, blank=True, on_delete=models.SET_NULL, related_name="component_changes"
    )
    maintenance_update = models.ForeignKey(
        MaintenanceUpdate, null=True, blank=True, on_delete=models.SET_NULL, related_name="component_changes"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["at", "component"])]

    def __str__(self) -> str:
        return f"{self.component}: {self.status} at {self.at:%Y-%m-%d %H:%M}"


# --- subscriptions (C14, C15) -------------------------------------------------------------


class StatusSubscriber(BlindIndexedSaveMixin, models.Model):
    """Someone who asked to be emailed about general incidents (double opt-in).

    The address is encrypted; `email_index` (a keyed HMAC) finds duplicates. Only the
    SHA-256 of the confirmation token is stored, and only until it is used or expires.
    The unsubscribe token goes into every notice, so it is kept encrypted, with its hash
    for the lookup. Unsubscribing deletes the row: nothing is kept about a former
    subscriber except the audit event."""

    email = EncryptedEmailField()
    email_index = BlindIndexField(source="email", purpose="status-subscriber")
    components = models.ManyToManyField(
        Component, related_name="subscribers", blank=True, help_text="None: every component."
    )
    confirm_token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    confirm_expires_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    unsubscribe_token = EncryptedCharField(max_length=100)
    unsubscribe_token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"subscriber {self.pk} ({'confirmed' if self.confirmed_at else 'unconfirmed'})"


class StatusWebhook(models.Model):
    """An endpoint that receives every public update of general incidents as signed JSON
    in Statuspage's webhook shape. Created by staff; the secret is shown once. Disabled
    after STATUS_WEBHOOK_MAX_FAILURES consecutive failed deliveries."""

    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    secret = EncryptedCharField(max_length=100, editable=False)
    components = models.ManyToManyField(
        Component, related_name="webhooks", blank=True, help_text="None: every component."
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True, db_index=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "status webhook"

    def __str__(self) -> str:
        return self.description or self.url

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None
