"""Vulnerability reports from the public and their triage history (C11)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from governance.core.encryption import EncryptedEmailField


class VulnerabilityReport(models.Model):
    """One report filed through the public form: what the reporter told us, how it is triaged.

    The reporter's optional contact address is personal data, stored encrypted (C06) and
    shown only to security officers. Every status change goes through
    `services.report_transition` and leaves a `ReportEvent` and an audit event.
    """

    class Status(models.TextChoices):
        NEW = "new", "New"
        TRIAGED = "triaged", "Triaged"
        ACCEPTED = "accepted", "Accepted"
        DUPLICATE = "duplicate", "Duplicate"
        NOT_APPLICABLE = "not_applicable", "Not applicable"
        FIXED = "fixed", "Fixed"
        DISCLOSED = "disclosed", "Disclosed"

    reference = models.CharField(max_length=16, unique=True, editable=False)
    summary = models.CharField(max_length=200)
    affected_product = models.CharField(max_length=200)
    steps_to_reproduce = models.TextField()
    impact = models.TextField()
    cvss_vector = models.CharField("CVSS v3.1 vector", max_length=200, blank=True)
    cvss_base_score = models.DecimalField("CVSS base score", max_digits=3, decimal_places=1, null=True, blank=True)
    cvss_severity = models.CharField("CVSS severity", max_length=16, blank=True)
    contact_email = EncryptedEmailField("reporter's contact email", blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW, db_index=True)
    received_at = models.DateTimeField(db_index=True)
    first_response_due = models.DateField(help_text="First-response target: 3 England working days after receipt.")
    first_response_at = models.DateTimeField(null=True, blank=True, help_text="First triage decision.")
    reminded_at = models.DateTimeField(null=True, blank=True, help_text="Security officers reminded before the target.")
    overdue_notified_at = models.DateTimeField(null=True, blank=True, help_text="Security officers told it is overdue.")
    duplicate_of = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="duplicates")
    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.PROTECT, null=True, blank=True, related_name="vulnerability_reports"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at"]
        permissions = [("triage_vulnerabilityreport", "Can triage vulnerability reports")]
        indexes = [models.Index(fields=["first_response_at", "first_response_due"], name="disclosure_response_idx")]

    def __str__(self) -> str:
        return f"{self.reference}: {self.summary[:60]}"


class ReportEvent(models.Model):
    """One step of a report's triage: the status change, who made it and the note they left."""

    report = models.ForeignKey(VulnerabilityReport, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    acting_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    from_status = models.CharField(max_length=16, choices=VulnerabilityReport.Status.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=VulnerabilityReport.Status.choices, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.report.reference}: {self.from_status or '-'} -> {self.to_status or '-'}"
