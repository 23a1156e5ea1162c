"""Integration API tokens (hashed, scoped, expiring, revocable), the service accounts
they act as, and the stored first responses of idempotent POSTs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager


class ServiceAccount(models.Model):
    """A staff user that only integrations act as (monitoring, backup tool, SIEM, ticketing).

    The user is staff so the same services as the admin accept it, holds one role (its
    permissions cap every token issued for it), and has no usable password and no second
    factor, so it can never sign in to the admin or the portal.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="service_account")
    description = models.CharField(max_length=200, help_text="What integration acts as this account.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return self.user.get_username()


class ApiToken(models.Model):
    """A bearer token for /api/v1/. Only a SHA-256 hash of the secret is stored; the
    prefix (public part) identifies it in lists and logs.

    A staff token acts as a service account; an organisation token is created by a
    customer admin, acts as that admin, reads only that organisation's data (C09) and
    stops working when its creator leaves the organisation or stops being its admin.
    """

    class Kind(models.TextChoices):
        STAFF = "staff", "Service account (staff)"
        CUSTOMER = "customer", "Organisation (customer, read-only)"

    name = models.CharField(max_length=100, help_text="What uses this token, e.g. 'Prometheus alertmanager'.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens")
    organisation = models.ForeignKey(
        "tenancy.Organisation", null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens"
    )
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField()
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Calls a minute; empty: API_RATE_LIMIT_PER_MINUTE."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoke_reason = models.CharField(max_length=200, blank=True)

    objects = ScopedManager(organisation="organisation")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind="staff", organisation__isnull=True)
                | models.Q(kind="customer", organisation__isnull=False),
                name="api_token_kind_matches_organisation",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    def state(self, now=None) -> str:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "active"


class IdempotencyRecord(models.Model):
    """The first successful response to a POST with an Idempotency-Key, per token, so a
    retry returns it instead of acting twice (a monitor never opens two incidents)."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField(default=0)
    body = models.JSONField(default=dict)
    location = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["token", "key"], name="one_response_per_token_key")]

    def __str__(self) -> str:
        return f"{self.token_id}:{self.key}"
