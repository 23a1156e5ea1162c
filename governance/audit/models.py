"""The append-only, tamper-evident audit trail (C25)."""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

GENESIS_HASH = "0" * 64


class AuditEvent(models.Model):
    """One privileged or security-relevant action: who, what, on which object, when.

    Rows are never updated or deleted (database triggers refuse it). Each row stores
    the hash of its predecessor and its own hash over its content, so any edit,
    deletion or reordering breaks the chain (`manage.py verify_audit_chain`).
    """

    created_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    # Kept as text so the record survives the actor's deletion.
    actor_repr = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100, blank=True, db_index=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    organisation_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} by {self.actor_repr or 'system'}"

    def canonical(self) -> bytes:
        payload = {
            "created_at": self.created_at.isoformat(),
            "actor_id": self.actor_id,
            "actor_repr": self.actor_repr,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "object_repr": self.object_repr,
            "organisation_id": self.organisation_id,
            "ip_address": self.ip_address,
            "data": self.data,
            "prev_hash": self.prev_hash,
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder).encode()

    def compute_hash(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()
