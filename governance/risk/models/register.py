"""The risk register: the risk matrix (data, versioned), risks, controls, acceptances."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

SCALE = [MinValueValidator(1), MaxValueValidator(9)]


class RiskMatrix(models.Model):
    """A likelihood x impact matrix defined as data: axis labels, named levels with colours
    and review intervals, and the grid mapping each cell to a level.

    Matrices are never edited once published: a change is a new version, and every risk
    keeps the version it was scored with, so old scores keep their meaning.
    """

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    is_active = models.BooleanField(default=False, db_index=True)
    likelihood_labels = models.JSONField(help_text='Lowest first, e.g. ["Rare", ..., "Almost certain"].')
    impact_labels = models.JSONField(help_text='Lowest first, e.g. ["Negligible", ..., "Severe"].')
    # [{"key": "low", "name": "Low", "colour": "#2e7d32", "review_months": 12}, ...], lowest first.
    levels = models.JSONField()
    # grid[likelihood - 1][impact - 1] = level key
    grid = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="risk_matrix_name_version"),
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="risk_matrix_one_active"),
        ]
        verbose_name_plural = "risk matrices"

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def size(self) -> tuple[int, int]:
        return len(self.likelihood_labels), len(self.impact_labels)

    def level_key(self, likelihood: int, impact: int) -> str:
        return self.grid[likelihood - 1][impact - 1]

    def level(self, key: str) -> dict:
        for level in self.levels:
            if level["key"] == key:
                return level
        return {"key": key, "name": key or "-", "colour": "#9e9e9e", "review_months": 12}

    def rank(self, key: str) -> int:
        """1 for the lowest level; used to sort and compare levels."""
        keys = [lv["key"] for lv in self.levels]
        return keys.index(key) + 1 if key in keys else 0


class Category(models.TextChoices):
    SECURITY = "security", "Information security"
    PRIVACY = "privacy", "Privacy and personal data"
    OPERATIONAL = "operational", "Operational"
    SUPPLIER = "supplier", "Supplier and third party"
    LEGAL = "legal", "Legal and compliance"
    PEOPLE = "people", "People"


class Control(models.Model):
    """A control that reduces one or more risks, with its implementation status and evidence."""

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        IMPLEMENTED = "implemented", "Implemented"
        TESTED = "tested", "Tested"

    code = models.CharField(max_length=30, unique=True, help_text="Stable reference, e.g. CTL-007.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="risk_controls"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLANNED, db_index=True)
    evidence = models.TextField(blank=True, help_text="Where the evidence is: document, ticket, test report.")
    last_tested_on = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Risk(models.Model):
    """One risk: what could happen to which assets, its inherent and residual scores on the
    matrix it was scored with, its treatment, owner and review dates.

    Levels are derived (never typed in): the services compute them from the matrix.
    """

    class Treatment(models.TextChoices):
        MITIGATE = "mitigate", "Mitigate"
        ACCEPT = "accept", "Accept"
        TRANSFER = "transfer", "Transfer"
        AVOID = "avoid", "Avoid"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACCEPTED = "accepted", "Accepted (signed off)"
        CLOSED = "closed", "Closed"

    code = models.CharField(max_length=30, unique=True, help_text="Stable reference, e.g. RSK-012.")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.SECURITY)
    # Owned by a person, or by a team (a staff group); exactly one of the two.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="owned_risks"
    )
    owner_team = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.PROTECT, related_name="owned_risks", verbose_name="team"
    )
    assets = models.TextField(blank=True, verbose_name="affected assets or services")
    threat = models.TextField(blank=True)
    vulnerability = models.TextField(blank=True)
    matrix = models.ForeignKey(RiskMatrix, on_delete=models.PROTECT, related_name="risks")
    inherent_likelihood = models.PositiveSmallIntegerField(validators=SCALE)
    inherent_impact = models.PositiveSmallIntegerField(validators=SCALE)
    inherent_level = models.CharField(max_length=30, editable=False, db_index=True)
    controls = models.ManyToManyField(Control, blank=True, related_name="risks")
    residual_likelihood = models.PositiveSmallIntegerField(validators=SCALE)
    residual_impact = models.PositiveSmallIntegerField(validators=SCALE)
    residual_level = models.CharField(max_length=30, editable=False, db_index=True)
    residual_rank = models.PositiveSmallIntegerField(default=0, editable=False, db_index=True)
    treatment = models.CharField(max_length=16, choices=Treatment.choices, default=Treatment.MITIGATE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    last_reviewed_on = models.DateField(null=True, blank=True)
    next_review_on = models.DateField(db_index=True)
    created_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-residual_rank", "code"]
        permissions = [("manage_all_risks", "Can change and import any risk, not only own ones (security officer)")]
        constraints = [
            models.CheckConstraint(
                condition=Q(owner__isnull=False, owner_team__isnull=True)
                | Q(owner__isnull=True, owner_team__isnull=False),
                name="risk_owner_person_or_team",
                violation_error_message="A risk is owned by exactly one person or one team.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.title}"

    @property
    def owner_display(self) -> str:
        if self.owner_id:
            return self.owner.get_full_name() or self.owner.get_username()
        return f"team: {self.owner_team.name}" if self.owner_team_id else "-"


class RiskAcceptance(models.Model):
    """The owner's sign-off of a risk's residual level, with a reason and an expiry.

    `snapshot` keeps the risk as it was at that moment (scores, levels, controls and their
    status), so the sign-off still says what was accepted after the risk changes.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    risk = models.ForeignKey(Risk, on_delete=models.PROTECT, related_name="acceptances")
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    accepted_at = models.DateTimeField()
    reason = models.TextField()
    expires_on = models.DateField(db_index=True)
    snapshot = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-accepted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["risk"], condition=Q(status="active"), name="risk_acceptance_one_active_per_risk"
            )
        ]

    def __str__(self) -> str:
        return f"Acceptance of {self.risk.code} until {self.expires_on:%Y-%m-%d}"
