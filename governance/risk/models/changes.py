"""Change records gated by a risk assessment (C26)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Change(models.Model):
    """A change to the service or its infrastructure.

    The type follows from the stated criteria (changes.change_type_for): anything touching
    customer data, security controls or availability is major; a pre-approved routine
    change with none of those is standard; the rest is normal. A major change cannot be
    approved without a completed risk assessment, and nobody approves their own change.
    """

    class Type(models.TextChoices):
        STANDARD = "standard", "Standard (pre-approved routine)"
        NORMAL = "normal", "Normal"
        MAJOR = "major", "Major"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ASSESSMENT = "assessment", "In assessment"
        APPROVED = "approved", "Approved"
        IMPLEMENTED = "implemented", "Implemented"
        REVIEWED = "reviewed", "Reviewed"
        REJECTED = "rejected", "Rejected"

    code = models.CharField(max_length=30, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField()
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # Criteria that decide the type.
    affects_customer_data = models.BooleanField(
        default=False, help_text="Touches how customer data is stored or reached."
    )
    affects_security_controls = models.BooleanField(
        default=False, help_text="Changes authentication, access control, encryption, logging or network boundaries."
    )
    expects_downtime = models.BooleanField(default=False, help_text="Customers may notice an outage or degradation.")
    pre_approved_routine = models.BooleanField(
        default=False, help_text="A documented routine change (e.g. patching on the standard procedure)."
    )
    change_type = models.CharField(max_length=16, choices=Type.choices, editable=False, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    planned_start = models.DateTimeField()
    planned_end = models.DateTimeField()
    rollback_plan = models.TextField()
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    implemented_at = models.DateTimeField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True, verbose_name="post-implementation review")
    created_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("approve_change", "Can approve or reject changes")]

    def __str__(self) -> str:
        return f"{self.code} {self.title}"


class RiskAssessment(models.Model):
    """The risk assessment of one change: which risks it creates or changes, and why the
    residual risk is acceptable. Completed assessments are what lets a major change pass."""

    change = models.OneToOneField(Change, on_delete=models.PROTECT, related_name="assessment")
    assessor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    summary = models.TextField()
    risks = models.ManyToManyField("risk.Risk", related_name="assessments", blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Assessment of {self.change.code}"

    @property
    def is_complete(self) -> bool:
        return self.completed_at is not None
