"""Users (staff and customers), support-access requests, grants and the access log."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django_scopes import ScopedManager

from governance.core.encryption import (
    BlindIndexedSaveMixin,
    BlindIndexField,
    EncryptedCharField,
    EncryptedEmailField,
    EncryptedTextField,
)

EMAIL_INDEX_PURPOSE = "user.email"


class User(BlindIndexedSaveMixin, AbstractUser):
    """A person who signs in: staff (no membership) or a customer (one membership).

    Names and email are personal data, stored encrypted (C06); `email_index` is the
    blind index used to find a user by email.
    """

    first_name = EncryptedCharField("first name", max_length=150, blank=True)
    last_name = EncryptedCharField("last name", max_length=150, blank=True)
    email = EncryptedEmailField("email address", blank=True)
    email_index = BlindIndexField(source="email", purpose=EMAIL_INDEX_PURPOSE)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @property
    def is_customer(self) -> bool:
        return hasattr(self, "membership")


class ReasonType(models.TextChoices):
    CUSTOMER_SUPPORT = "customer_support", "Customer-initiated support"
    INCIDENT_RESPONSE = "incident_response", "Vendor-initiated incident response"
    LEGAL = "legal", "Legal request"


class DataScope(models.TextChoices):
    """Kinds of customer data a support grant can open."""

    PROFILE = "profile", "Organisation profile and primary contact"
    PEOPLE = "people", "People: customer users' names and email addresses"


class SupportAccessPolicy(models.Model):
    """The customer's own limits on support access to its data (set by its admins)."""

    organisation = models.OneToOneField(
        "tenancy.Organisation", on_delete=models.CASCADE, related_name="support_access_policy"
    )
    max_grant_hours = models.PositiveSmallIntegerField(
        default=8, help_text="Longest grant this organisation accepts, in hours."
    )
    decision_timeout_hours = models.PositiveSmallIntegerField(
        default=12, help_text="Hours before an undecided request expires by itself."
    )
    accepted_reason_types = models.JSONField(
        default=list, blank=True, help_text="Reason types accepted at all; empty means all."
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(organisation="organisation")

    def __str__(self) -> str:
        return f"Support-access limits of {self.organisation}"

    def accepts(self, reason_type: str) -> bool:
        return not self.accepted_reason_types or reason_type in self.accepted_reason_types


class SupportAccessRequest(models.Model):
    """A support engineer's request to reach one organisation's data (C03, C04).

    Needs two independent approvals: an internal approver (security officer, never the
    requester or a named actor) and a customer admin's consent. Undecided requests
    expire at `decision_deadline`.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting decisions"
        APPROVED = "approved", "Approved (grant issued)"
        DENIED = "denied", "Denied"
        EXPIRED = "expired", "Expired undecided"
        CANCELLED = "cancelled", "Cancelled by the requester"

    class Decision(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"

    organisation = models.ForeignKey("tenancy.Organisation", on_delete=models.CASCADE, related_name="support_requests")
    requester = models.ForeignKey(User, on_delete=models.PROTECT, related_name="support_requests_made")
    reason_type = models.CharField(max_length=32, choices=ReasonType.choices)
    ticket_reference = models.CharField(max_length=100)
    # Written by staff but often quotes the customer's problem: personal data, encrypted.
    justification = EncryptedTextField()
    scope = models.JSONField(help_text="Kinds of customer data (DataScope values).")
    requested_start = models.DateTimeField()
    requested_duration = models.DurationField()
    named_staff = models.ManyToManyField(User, related_name="support_requests_named")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    decision_deadline = models.DateTimeField(db_index=True)

    internal_decision = models.CharField(max_length=16, choices=Decision.choices, default=Decision.PENDING)
    internal_decided_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    internal_decided_at = models.DateTimeField(null=True, blank=True)
    internal_reason = models.TextField(blank=True)

    customer_decision = models.CharField(max_length=16, choices=Decision.choices, default=Decision.PENDING)
    customer_decided_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    customer_decided_at = models.DateTimeField(null=True, blank=True)
    customer_reason = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(organisation="organisation")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organisation", "status"])]
        permissions = [("decide_internal", "Can give the internal approval of support-access requests")]

    def __str__(self) -> str:
        return f"Support access to {self.organisation} ({self.ticket_reference})"

    @property
    def requested_end(self):
        return self.requested_start + self.requested_duration

    @property
    def duration_label(self) -> str:
        minutes = int(self.requested_duration.total_seconds() // 60)
        hours, minutes = divmod(minutes, 60)
        parts = [f"{hours} hour{'s' if hours != 1 else ''}"] if hours else []
        if minutes:
            parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
        return " ".join(parts) or "0 minutes"

    def scope_labels(self) -> list[str]:
        return [DataScope(s).label for s in self.scope if s in DataScope.values]


class SupportGrant(models.Model):
    """Access issued when both approvals are in: named staff, one organisation, a window.

    The source of truth for access (guardian object permissions mirror it): every
    check asks for an active grant, so access ends on time even if beat is late.
    """

    request = models.OneToOneField(SupportAccessRequest, on_delete=models.PROTECT, related_name="grant")
    organisation = models.ForeignKey("tenancy.Organisation", on_delete=models.CASCADE, related_name="support_grants")
    staff = models.ManyToManyField(User, related_name="support_grants")
    scope = models.JSONField()
    starts_at = models.DateTimeField(db_index=True)
    ends_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    revoke_reason = models.TextField(blank=True)
    # Set once the guardian permissions have been removed (expiry or revocation).
    permissions_removed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedManager(organisation="organisation")

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"Grant #{self.pk} to {self.organisation} ({self.starts_at:%Y-%m-%d %H:%M}-{self.ends_at:%H:%M} UTC)"

    def is_active(self, at) -> bool:
        return self.revoked_at is None and self.starts_at <= at < self.ends_at

    def state(self, at) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if at < self.starts_at:
            return "scheduled"
        return "active" if at < self.ends_at else "ended"


class AccessLogEntry(models.Model):
    """One read or change of an organisation's data by staff under a grant (transparency log)."""

    class Action(models.TextChoices):
        VIEW = "view", "Viewed"
        CHANGE = "change", "Changed"

    organisation = models.ForeignKey("tenancy.Organisation", on_delete=models.CASCADE, related_name="access_log")
    grant = models.ForeignKey(SupportGrant, on_delete=models.PROTECT, related_name="log_entries")
    staff = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.VIEW)
    scope = models.CharField(max_length=32, choices=DataScope.choices)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200)
    reason_type = models.CharField(max_length=32, choices=ReasonType.choices)
    ticket_reference = models.CharField(max_length=100)
    path = models.CharField(max_length=300, blank=True)

    objects = ScopedManager(organisation="organisation")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["organisation", "-at"])]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.staff} {self.get_action_display().lower()} {self.object_repr} at {self.at:%Y-%m-%d %H:%M}"


class AccessReviewCampaign(models.Model):
    """A periodic review (C05): every grant of the period and every privileged role holder
    is certified or revoked by a security officer."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETED = "completed", "Completed"

    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    due_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    last_escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period_end"]
        constraints = [models.UniqueConstraint(fields=["period_start", "period_end"], name="one_campaign_per_period")]

    def __str__(self) -> str:
        return f"Access review {self.period_start:%Y-%m-%d} to {self.period_end:%Y-%m-%d}"


class AccessReviewItem(models.Model):
    """One thing to certify or revoke: a support grant, or a staff member's role."""

    class Kind(models.TextChoices):
        GRANT = "grant", "Support grant"
        ROLE = "role", "Privileged role"

    class Decision(models.TextChoices):
        PENDING = "pending", "Pending"
        CERTIFIED = "certified", "Certified"
        REVOKED = "revoked", "Revoked"

    campaign = models.ForeignKey(AccessReviewCampaign, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    grant = models.ForeignKey(SupportGrant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # For role items: the holder and the role (group) name.
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    role = models.CharField(max_length=150, blank=True)
    decision = models.CharField(max_length=16, choices=Decision.choices, default=Decision.PENDING, db_index=True)
    decided_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["campaign", "kind", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "grant"], name="one_item_per_grant"),
            models.UniqueConstraint(fields=["campaign", "user", "role"], name="one_item_per_role_holder"),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.GRANT:
            return f"Grant #{self.grant_id}"
        return f"{self.user} as {self.role}"
