"""Organisations (tenants) and the memberships that tie customer users to one of them."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django_scopes import ScopedManager
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from governance.core.encryption import (
    BlindIndexedSaveMixin,
    BlindIndexField,
    EncryptedCharField,
    EncryptedEmailField,
)

CONTACT_EMAIL_PURPOSE = "organisation.primary_contact_email"


class DataProtectionRole(models.TextChoices):
    CONTROLLER = "controller", "Controller"
    PROCESSOR = "processor", "Processor"


class Organisation(BlindIndexedSaveMixin, models.Model):
    """A customer organisation: the tenant every piece of customer data belongs to (C09)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        TERMINATED = "terminated", "Terminated"

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    primary_contact_name = EncryptedCharField(max_length=200, blank=True)
    primary_contact_email = EncryptedEmailField(blank=True)
    primary_contact_email_index = BlindIndexField(source="primary_contact_email", purpose=CONTACT_EMAIL_PURPOSE)
    data_protection_role = models.CharField(
        max_length=16,
        choices=DataProtectionRole.choices,
        default=DataProtectionRole.PROCESSOR,
        help_text="The role we hold for this customer's personal data; sets breach-notice deadlines.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Inside a customer request only the customer's own organisation is reachable.
    objects = ScopedManager(organisation="pk")

    class Meta:
        ordering = ["name"]
        permissions = [
            # Given only as an object permission, by an approved support grant.
            ("view_customer_data", "Can view this organisation's customer personal data"),
        ]

    def __str__(self) -> str:
        return self.name


class OrganisationUserObjectPermission(UserObjectPermissionBase):
    """Guardian object permission of one user on one organisation (direct foreign key)."""

    content_object = models.ForeignKey(Organisation, on_delete=models.CASCADE)


class OrganisationGroupObjectPermission(GroupObjectPermissionBase):
    """Guardian object permission of one group on one organisation (direct foreign key)."""

    content_object = models.ForeignKey(Organisation, on_delete=models.CASCADE)


class Membership(models.Model):
    """Ties a customer user to exactly one organisation, as its admin or a viewer."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Customer admin"
        VIEWER = "viewer", "Customer viewer"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedManager(organisation="organisation")

    class Meta:
        ordering = ["organisation", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()}, {self.organisation})"

    def clean(self) -> None:
        if self.user_id and self.user.is_staff:
            raise ValidationError({"user": "Staff accounts cannot belong to a customer organisation."})
