"""Reviews (C26): per-risk reviews and reminders, and the yearly overall risk review."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RiskReview(models.Model):
    """One review of one risk: who looked at it, when, what they concluded. Recording it
    moves the risk's next-review date (at most 12 months on, shorter for higher levels)."""

    risk = models.ForeignKey("risk.Risk", on_delete=models.PROTECT, related_name="reviews")
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reviewed_on = models.DateField()
    notes = models.TextField()
    residual_level_before = models.CharField(max_length=30)
    residual_level_after = models.CharField(max_length=30)
    next_review_on = models.DateField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-reviewed_on", "-id"]

    def __str__(self) -> str:
        return f"Review of {self.risk.code} on {self.reviewed_on:%Y-%m-%d}"


class ReviewReminder(models.Model):
    """A reminder sent to a risk owner for one due date (30 days before, 7 days before, on
    the day, overdue). Unique per risk, due date and kind, so each fires exactly once."""

    class Kind(models.TextChoices):
        BEFORE_30 = "before_30", "30 days before"
        BEFORE_7 = "before_7", "7 days before"
        DUE = "due", "On the day"
        OVERDUE = "overdue", "Overdue"

    risk = models.ForeignKey("risk.Risk", on_delete=models.CASCADE, related_name="reminders")
    due_on = models.DateField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    sent_at = models.DateTimeField()
    recipients = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [models.UniqueConstraint(fields=["risk", "due_on", "kind"], name="risk_reminder_once")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} reminder for {self.risk.code} (due {self.due_on:%Y-%m-%d})"


class OverallRiskReview(models.Model):
    """The yearly overall review of the register, signed by a security officer.

    `differences` is computed from the audit trail for the period since the previous
    signed review (new, closed and re-scored risks, expired acceptances) and frozen at
    signing, with the register's state in `register_snapshot`.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SIGNED = "signed", "Signed"

    title = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name="previous review"
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(null=True, blank=True)
    summary = models.TextField(blank=True, help_text="Conclusions; starts as a copy of last year's.")
    decisions = models.TextField(blank=True, help_text="Actions and decisions agreed.")
    differences = models.JSONField(default=dict, blank=True)
    register_snapshot = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("sign_overallriskreview", "Can sign the overall risk review (security officer)")]

    def __str__(self) -> str:
        return self.title
