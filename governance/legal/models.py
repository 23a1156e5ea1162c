"""Law-enforcement and government data requests (C27) and what we did about each.

A request is reviewed (checklist), decided (comply, comply in part, object, reject),
customers are told before any disclosure unless a signed-off non-disclosure order
forbids it, and each disclosure is recorded. Rows change only through
`governance.legal.services`; none of these models is tenant-scoped, because legal
requests are staff records and never shown in the customer portal.
"""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from governance.core.encryption import EncryptedCharField, EncryptedTextField

iso_country = RegexValidator(r"^[A-Z]{2}$", "Use the two-letter ISO 3166-1 country code, e.g. GB or US.")


class Instrument(models.TextChoices):
    SUBPOENA = "subpoena", "Subpoena"
    COURT_ORDER = "court_order", "Court order"
    WARRANT = "warrant", "Warrant"
    EMERGENCY = "emergency", "Emergency request"
    OTHER = "other", "Other"


class DataKind(models.TextChoices):
    SUBSCRIBER = "subscriber", "Account and subscriber information"
    CONTENT = "content", "Stored content"
    ACTIVITY = "activity", "Access and activity logs"
    BILLING = "billing", "Billing records"
    OTHER = "other", "Other"


class LegalRequest(models.Model):
    """One demand for customer data from a law-enforcement or government agency."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received (review pending)"
        REVIEWED = "reviewed", "Reviewed (decision pending)"
        DECIDED = "decided", "Decided to comply (disclosure pending)"
        DISCLOSED = "disclosed", "Data disclosed"
        CLOSED = "closed", "Closed (objected or rejected)"

    agency = models.CharField(max_length=200)
    jurisdiction_country = models.CharField("jurisdiction (country)", max_length=2, validators=[iso_country])
    jurisdiction_detail = models.CharField(
        "jurisdiction (detail)", max_length=200, blank=True, help_text="State, court district, etc."
    )
    instrument = models.CharField(max_length=16, choices=Instrument.choices)
    received_at = models.DateTimeField(db_index=True)
    response_deadline = models.DateTimeField(db_index=True)
    organisations = models.ManyToManyField("tenancy.Organisation", related_name="+")
    data_kinds = models.JSONField(default=list)
    description = EncryptedTextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when staff were reminded of the response deadline, so the reminder goes out once.
    deadline_reminded_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["response_deadline"]
        permissions = [("review_legalrequest", "Can review and decide legal requests (legal counsel)")]

    def __str__(self) -> str:
        # No agency or organisation names: this text lands in audit events and emails.
        return f"Legal request #{self.pk} ({self.get_instrument_display().lower()}, {self.jurisdiction_country})"

    @property
    def open(self) -> bool:
        return self.status in (self.Status.RECEIVED, self.Status.REVIEWED, self.Status.DECIDED)


class LegalDocument(models.Model):
    """A document of a request (the order, our objection letter), encrypted at rest."""

    request = models.ForeignKey(LegalRequest, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=200)
    # Path under LEGAL_DOCUMENT_ROOT; the stored bytes are ciphertext.
    stored_name = models.CharField(max_length=300, unique=True)
    original_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded_at"]

    def __str__(self) -> str:
        return self.title


class ReviewChecklist(models.Model):
    """Legal counsel's review of a request; it must be complete before any decision."""

    request = models.OneToOneField(LegalRequest, on_delete=models.CASCADE, related_name="checklist")
    legal_process = models.BooleanField("issued under applicable legal process")
    valid_and_binding = models.BooleanField("valid and binding")
    within_jurisdiction = models.BooleanField("within the agency's jurisdiction")
    scope_not_overbroad = models.BooleanField("scope no broader than necessary")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reviewed_at = models.DateTimeField()
    notes = EncryptedTextField(blank=True)

    def __str__(self) -> str:
        return f"Review of {self.request}"

    @property
    def lawful(self) -> bool:
        return self.legal_process and self.valid_and_binding and self.within_jurisdiction


class Decision(models.Model):
    """What we do about a request. An objection carries its text and date."""

    class Outcome(models.TextChoices):
        COMPLY = "comply", "Comply"
        PARTIAL = "partial", "Comply in part"
        OBJECT = "object", "Object"
        REJECT = "reject", "Reject"

    request = models.OneToOneField(LegalRequest, on_delete=models.CASCADE, related_name="decision")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    objection_text = EncryptedTextField(blank=True)
    objected_on = models.DateField(null=True, blank=True)
    notes = EncryptedTextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.get_outcome_display()}: {self.request}"

    @property
    def allows_disclosure(self) -> bool:
        return self.outcome in (self.Outcome.COMPLY, self.Outcome.PARTIAL)


class CustomerNotice(models.Model):
    """We told one affected organisation about the request (before any disclosure)."""

    class Method(models.TextChoices):
        EMAIL = "email", "Email to the primary contact"
        PHONE = "phone", "Telephone"
        LETTER = "letter", "Letter"
        OTHER = "other", "Other"

    request = models.ForeignKey(LegalRequest, on_delete=models.CASCADE, related_name="notices")
    organisation = models.ForeignKey("tenancy.Organisation", on_delete=models.PROTECT, related_name="+")
    notified_at = models.DateTimeField()
    method = models.CharField(max_length=16, choices=Method.choices)
    notified_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "organisation"], name="legal_one_notice_per_org")]

    def __str__(self) -> str:
        return f"Customer notice #{self.pk} for {self.request}"


class NonDisclosureOrder(models.Model):
    """A court's order forbidding us to tell the customer, until it expires.

    It counts only once a second legal reviewer, not the one who recorded it, signed it off.
    """

    request = models.ForeignKey(LegalRequest, on_delete=models.CASCADE, related_name="nondisclosure_orders")
    reference = models.CharField(max_length=200)
    expires_on = models.DateField(help_text="Last day the order is in force.")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()
    signed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    signed_off_at = models.DateTimeField(null=True, blank=True)
    # Last "expired, customers still not told" reminder (at most one a day).
    expiry_reminded_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-expires_on"]

    def __str__(self) -> str:
        return f"Non-disclosure order #{self.pk} on {self.request}"

    def in_force(self, today: date) -> bool:
        return today <= self.expires_on

    def counts(self, today: date) -> bool:
        """Signed off and in force: it allows disclosure without telling the customer."""
        return self.signed_off_at is not None and self.in_force(today)


class Disclosure(models.Model):
    """Data we handed to the agency: what, when, to whom, by whom."""

    request = models.ForeignKey(LegalRequest, on_delete=models.CASCADE, related_name="disclosures")
    what = EncryptedTextField()
    disclosed_to = EncryptedCharField(max_length=300)
    disclosed_at = models.DateTimeField()
    disclosed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The order that allowed disclosure before every customer was told, if any.
    under_order = models.ForeignKey(
        NonDisclosureOrder, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-disclosed_at"]

    def __str__(self) -> str:
        return f"Disclosure #{self.pk} on {self.request}"
