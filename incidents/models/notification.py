from __future__ import annotations

from django.db import models

from governance.core.encryption import EncryptedEmailField, EncryptedTextField


class Notification(models.Model):
    """A transactional-outbox row: one message to one recipient (C15).

    Written in the same transaction as the change that causes it; a Celery task and a
    beat sweep deliver it. `idempotency_key` (one per update and recipient) makes the
    row unique; `message_id` is derived from it, so a resend after a lost acknowledgement
    carries the same Message-ID.

    Status-page subscriptions use the same rows: an email to a `subscriber`, or a signed
    JSON POST to a `webhook` (channel "webhook": `body` is the JSON, `recipient` empty).
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (gave up)"

    idempotency_key = models.CharField(max_length=200, unique=True)
    incident = models.ForeignKey(
        "incidents.Incident", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    update = models.ForeignKey(
        "incidents.IncidentUpdate", null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    organisation = models.ForeignKey(
        "tenancy.Organisation", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    # Unsubscribing deletes the subscriber and its pending rows; sent rows stay as record.
    subscriber = models.ForeignKey(
        "incidents.StatusSubscriber", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    webhook = models.ForeignKey(
        "incidents.StatusWebhook", null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    recipient = EncryptedEmailField(blank=True)
    subject = models.CharField(max_length=300)
    body = EncryptedTextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    # While SENDING: the lease after which a sweep may take the row over (worker died).
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    message_id = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        permissions = [("requeue_notification", "Can requeue failed notices")]

    def __str__(self) -> str:
        return f"{self.subject} ({self.get_status_display().lower()})"
