"""Security settings a customer organisation turns on for its own users (C28)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django_scopes import ScopedManager

from governance.tenancy.models import Organisation


class OrganisationSecurityPolicy(models.Model):
    """One organisation's own security settings, edited by its customer admin (C28).

    Enforced on every request of the organisation's users (`enforcement.check_request`).
    No row, or a row with the defaults, means nothing beyond the portal's own rules.
    """

    class TwoFactor(models.TextChoices):
        OPTIONAL = "optional", "Optional: each person decides"
        REQUIRED = "required", "Required for everyone"

    organisation = models.OneToOneField(Organisation, on_delete=models.CASCADE, related_name="security_policy")
    two_factor = models.CharField(max_length=16, choices=TwoFactor.choices, default=TwoFactor.OPTIONAL)
    # Normalised CIDR strings ("203.0.113.0/24", "2001:db8::/32"); empty = from anywhere.
    ip_allowlist = models.JSONField(default=list, blank=True)
    # Empty = no per-organisation limit (the portal-wide session age still applies).
    idle_timeout_minutes = models.PositiveIntegerField(null=True, blank=True)
    session_lifetime_hours = models.PositiveIntegerField(null=True, blank=True)
    # Sessions that began before this moment are signed out ("sign out everyone").
    sessions_revoked_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ScopedManager(organisation="organisation")

    class Meta:
        verbose_name = "organisation security policy"
        verbose_name_plural = "organisation security policies"

    def __str__(self) -> str:
        return f"Security policy of {self.organisation_id}"


class UserSessionRevocation(models.Model):
    """Sessions of this one user that began before `revoked_at` are signed out (C28)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    revoked_at = models.DateTimeField()

    objects = ScopedManager(organisation="organisation")

    def __str__(self) -> str:
        return f"Sessions of user {self.user_id} revoked at {self.revoked_at:%Y-%m-%d %H:%M}"
