"""Termination, clean-up runs, deletion certificates (C21) and the backup register (C22, C24).

None of these rows is customer data: they are our evidence that customer data was
deleted, so the purge never deletes them. They keep the organisation's id and name as
plain values because the organisation row itself is deleted at the end of its purge.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from governance.core.encryption import EncryptedTextField


class Termination(models.Model):
    """A customer account's termination: two-person decision, then its purge progress.

    Requested (by a security officer or the customer's admin) and confirmed by a
    different security officer. Once confirmed the organisation is terminated and waits
    for the next clean-up run; the purge keeps its progress here so a killed worker
    resumes where it stopped.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested (awaiting confirmation)"
        CONFIRMED = "confirmed", "Terminated (awaiting clean-up)"
        PURGING = "purging", "Purge in progress"
        PURGED = "purged", "Purged"
        CANCELLED = "cancelled", "Cancelled"

    class Via(models.TextChoices):
        STAFF = "staff", "Security officer"
        CUSTOMER = "customer", "Customer admin (portal)"

    # SET_NULL: the organisation row is deleted at the end of the purge; this record stays.
    organisation = models.ForeignKey(
        "tenancy.Organisation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    organisation_pk = models.BigIntegerField(db_index=True)
    organisation_name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REQUESTED, db_index=True)
    reason = models.TextField()
    requested_via = models.CharField(max_length=16, choices=Via.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Usernames as text: a customer admin's account is deleted by the purge.
    requested_by_repr = models.CharField(max_length=150)
    requested_at = models.DateTimeField()
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confirmed_by_repr = models.CharField(max_length=150, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # Former customer admins' addresses, kept encrypted solely to send them the
    # certificate, then erased (C06, data minimisation).
    certificate_recipients = EncryptedTextField(blank=True, default="")
    # Purge progress (resumable): customer accounts snapshotted when the purge starts,
    # rows deleted so far per kind, written in the same transaction as each batch.
    customer_user_ids = models.JSONField(default=list, blank=True)
    purge_counts = models.JSONField(default=dict, blank=True)
    purge_started_at = models.DateTimeField(null=True, blank=True)
    purge_finished_at = models.DateTimeField(null=True, blank=True)
    cleanup_run = models.ForeignKey(
        "retention.CleanupRun", null=True, blank=True, on_delete=models.PROTECT, related_name="terminations"
    )

    class Meta:
        ordering = ["-requested_at"]
        permissions = [("confirm_termination", "Can request and confirm an organisation's termination")]
        constraints = [
            # At most one open termination per organisation.
            models.UniqueConstraint(
                fields=["organisation_pk"],
                condition=~models.Q(status="cancelled"),
                name="retention_one_open_termination",
            )
        ]

    def __str__(self) -> str:
        return f"Termination of {self.organisation_name} ({self.get_status_display()})"


class CleanupRun(models.Model):
    """One clean-up run: every terminated organisation purged from the active database."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed (resumes on the next attempt)"

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    organisations = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Clean-up run {self.started_at:%Y-%m-%d} ({self.get_status_display()})"


class DeletionCertificate(models.Model):
    """Proof that one organisation's data left the active database: counts, times, digest.

    Holds no personal data: no contact name or email, no usernames, only the company's
    name and id (needed to say whose data it certifies) and counts per kind of record.
    """

    termination = models.OneToOneField(Termination, on_delete=models.PROTECT, related_name="certificate")
    organisation_pk = models.BigIntegerField()
    organisation_name = models.CharField(max_length=200)
    purge_started_at = models.DateTimeField()
    purge_finished_at = models.DateTimeField()
    counts = models.JSONField(default=dict)
    # SHA-256 over `content()`, the canonical JSON of everything above.
    digest = models.CharField(max_length=64, unique=True)
    issued_at = models.DateTimeField()
    emailed_at = models.DateTimeField(null=True, blank=True)
    emailed_to_count = models.PositiveIntegerField(default=0)
    # Purge date + RETENTION_BACKUP_DAYS: when the data has left the last backup (C22).
    backups_clear_at = models.DateTimeField()

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return f"Deletion certificate for {self.organisation_name}"


class BackupRecord(models.Model):
    """One backup run reported by an external tool (pgBackRest, WAL-G, ...) (C24).

    The record is kept after its artefact expires (C22): it is the evidence the
    artefact existed, where, encrypted, and when it was deleted.
    """

    class Kind(models.TextChoices):
        FULL = "full", "Full"
        INCREMENTAL = "incremental", "Incremental"

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired (artefact deleted)"

    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    source = models.CharField(max_length=200, help_text="Tool and database, e.g. 'pgbackrest:main'.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(db_index=True)
    size_bytes = models.BigIntegerField(default=0)
    checksum = models.CharField(max_length=128, blank=True, help_text="e.g. sha256:<hex>.")
    encrypted = models.BooleanField()
    location = models.CharField(max_length=100, help_text="Region or site of the stored artefact.")
    artefact = models.CharField(max_length=500, blank=True, help_text="Name in the backup storage backend.")
    expires_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUCCEEDED, db_index=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    reported_by = models.CharField(max_length=100, blank=True, help_text="'api', 'command' or a username.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-finished_at"]
        indexes = [models.Index(fields=["kind", "status", "-finished_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} backup of {self.source} at {self.finished_at:%Y-%m-%d %H:%M}"


class BackupPolicyCheck(models.Model):
    """One run of the daily backup policy check and what it found missing (C24)."""

    checked_at = models.DateTimeField(db_index=True)
    misses = models.JSONField(default=list, blank=True)
    alerted = models.BooleanField(default=False)

    class Meta:
        ordering = ["-checked_at"]

    def __str__(self) -> str:
        return f"Backup policy check {self.checked_at:%Y-%m-%d %H:%M}: {len(self.misses) or 'no'} misses"

    @property
    def passed(self) -> bool:
        return not self.misses
