from __future__ import annotations

from django.conf import settings
from django.db import models
from django_scopes import ScopedManager


class Evidence(models.Model):
    """A file about an incident, encrypted at rest, shared with chosen organisations (C19)."""

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="evidence")
    title = models.CharField(max_length=200)
    # Path in the evidence storage; the stored bytes are ciphertext.
    stored_name = models.CharField(max_length=300, unique=True)
    original_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    shared_with = models.ManyToManyField("tenancy.Organisation", blank=True, related_name="+")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded_at"]
        verbose_name_plural = "evidence"

    def __str__(self) -> str:
        return self.title


class RootCauseAnalysis(models.Model):
    """The incident's RCA (C20): Markdown, shown as sanitised HTML and as PDF."""

    incident = models.OneToOneField("incidents.Incident", on_delete=models.CASCADE, related_name="rca")
    body_markdown = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    published_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "root cause analysis"
        verbose_name_plural = "root cause analyses"

    def __str__(self) -> str:
        return f"RCA of {self.incident}"


class ReportRequest(models.Model):
    """A customer's request for a complete report or the RCA, tracked to delivery (C16, C20).

    Complete reports are due in 5 England working days (target) and no later than 7 (limit).
    """

    class Kind(models.TextChoices):
        REPORT = "report", "Complete incident report"
        RCA = "rca", "Root cause analysis"

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="report_requests")
    organisation = models.ForeignKey("tenancy.Organisation", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField()
    due_target = models.DateField(null=True, blank=True)
    due_limit = models.DateField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reminder_sent_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(organisation="organisation")

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "organisation", "kind"],
                condition=models.Q(delivered_at__isnull=True),
                name="one_open_request_per_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.organisation} ({self.incident})"
