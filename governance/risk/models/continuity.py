"""Business continuity (C23): a plan per major operation, its versions and exercises."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from governance.core.encryption import EncryptedTextField


class ContinuityPlan(models.Model):
    """The business continuity plan of one major operation (support, infrastructure
    management, ...): owner, recovery objectives, escalation contacts (encrypted: names and
    private phone numbers), next review. The plan text lives in versions."""

    class Operation(models.TextChoices):
        SUPPORT = "support", "Customer support"
        INFRASTRUCTURE = "infrastructure", "Infrastructure management"
        INCIDENT_RESPONSE = "incident_response", "Incident response"
        SERVICE_DELIVERY = "service_delivery", "Service delivery (the hosted application)"
        CORPORATE = "corporate", "Corporate IT and offices"

    operation = models.CharField(max_length=32, choices=Operation.choices, unique=True)
    title = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    rto_hours = models.PositiveIntegerField(verbose_name="recovery time objective (hours)")
    rpo_hours = models.PositiveIntegerField(verbose_name="recovery point objective (hours)")
    escalation_contacts = EncryptedTextField(blank=True, help_text="One per line: role, name, phone. Stored encrypted.")
    current_version = models.PositiveIntegerField(default=0)
    last_reviewed_on = models.DateField(null=True, blank=True)
    next_review_on = models.DateField(db_index=True)
    last_exercised_on = models.DateField(null=True, blank=True, db_index=True)
    overdue_notified_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["operation"]

    def __str__(self) -> str:
        return self.title


class ContinuityPlanVersion(models.Model):
    """One version of a plan's document (Markdown); versions are never edited."""

    plan = models.ForeignKey(ContinuityPlan, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    document = models.TextField()
    change_note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["plan", "-number"]
        constraints = [models.UniqueConstraint(fields=["plan", "number"], name="continuity_version_once")]

    def __str__(self) -> str:
        return f"{self.plan} v{self.number}"


class ContinuityExercise(models.Model):
    """An exercise or test of a plan: when, the scenario, the result and the improvements."""

    class Kind(models.TextChoices):
        TABLETOP = "tabletop", "Tabletop walk-through"
        SIMULATION = "simulation", "Simulation"
        FULL = "full", "Full failover or restore"

    class Result(models.TextChoices):
        PASSED = "passed", "Objectives met"
        PARTIAL = "partial", "Met with issues"
        FAILED = "failed", "Objectives missed"

    plan = models.ForeignKey(ContinuityPlan, on_delete=models.PROTECT, related_name="exercises")
    held_on = models.DateField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    scenario = models.TextField()
    result = models.CharField(max_length=16, choices=Result.choices)
    improvements = models.TextField(blank=True, help_text="Improvements raised, one per line.")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-held_on"]

    def __str__(self) -> str:
        return f"{self.plan.get_operation_display()} exercise on {self.held_on:%Y-%m-%d}"
