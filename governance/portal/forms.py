"""Forms of the customer portal: they validate input only; services apply the rules."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from governance.access import services
from governance.access.models import AccessLogEntry, DataScope, ReasonType, SupportGrant, User
from governance.tenancy.models import Organisation
from governance.tenancy.services import CONTACT_NAME_MAX_LENGTH

REASON_MAX_LENGTH = 2000


def apply_service_error(form: forms.Form, error: ValidationError, field_map: dict[str, str] | None = None) -> None:
    """Show a service's ValidationError on the form: on its field when the form has one."""
    field_map = field_map or {}
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for key, messages in error.message_dict.items():
        field = field_map.get(key, key)
        form.add_error(field if field in form.fields and key != NON_FIELD_ERRORS else None, messages)


class PortalAuthenticationForm(AuthenticationForm):
    """Password sign-in; refused where the user's organisation requires single sign-on (C28)."""

    def confirm_login_allowed(self, user) -> None:
        super().confirm_login_allowed(user)
        from governance.sso.policy import password_login_allowed
        from governance.sso.services import sso_password_login_refused

        if not password_login_allowed(user):
            sso_password_login_refused(user=user)
            raise ValidationError(
                "Your organisation requires single sign-on: use “Sign in with single sign-on” below.",
                code="sso_required",
            )


def staff_label(user: User) -> str:
    """How staff are named to customers: full name and login (staff names are not customer data)."""
    full = user.get_full_name()
    return f"{full} ({user.username})" if full else user.username


class ApproveForm(forms.Form):
    """A customer admin's consent to one support-access request."""

    reason = forms.CharField(
        required=False,
        max_length=REASON_MAX_LENGTH,
        label="Note (optional)",
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class DenyForm(forms.Form):
    """A customer admin's refusal of one support-access request: the reason is required."""

    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        label="Reason for denying",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Shown to Assyst staff.",
        error_messages={"required": "Say why you deny this request."},
    )


class RevokeForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        label="Reason for revoking",
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Say why you revoke this grant."},
    )


class _StaffChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        return staff_label(obj)


class _GrantChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: SupportGrant) -> str:
        # Not str(grant): that reads the organisation, one query per option.
        return f"#{obj.pk}, from {obj.starts_at:%Y-%m-%d %H:%M} UTC"


class AccessLogFilterForm(forms.Form):
    """GET filters of the access log and its CSV export; every field is optional."""

    staff = _StaffChoice(queryset=User.objects.none(), required=False, empty_label="Anyone")
    grant = _GrantChoice(queryset=SupportGrant.objects.none(), required=False, empty_label="Any grant")
    scope = forms.ChoiceField(choices=[("", "Any scope"), *DataScope.choices], required=False)
    date_from = forms.DateField(
        required=False, label="From (UTC)", widget=forms.DateInput(attrs={"type": "date"}), help_text="YYYY-MM-DD"
    )
    date_to = forms.DateField(
        required=False,
        label="To (UTC, inclusive)",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="YYYY-MM-DD",
    )

    def __init__(self, *args, organisation: Organisation, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Choices come only from this organisation's own log and grants (explicit filter
        # on top of the tenant scope); an id from elsewhere is "not a valid choice".
        logged_staff = AccessLogEntry.objects.filter(organisation=organisation).values("staff")
        self.fields["staff"].queryset = User.objects.filter(pk__in=logged_staff).order_by("username")
        self.fields["grant"].queryset = SupportGrant.objects.filter(organisation=organisation).order_by("-starts_at")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date must not be before the start date.")
        return cleaned

    def apply(self, queryset):
        """Filter `queryset` (of AccessLogEntry) by the valid input."""
        data = self.cleaned_data
        if data.get("staff"):
            queryset = queryset.filter(staff=data["staff"])
        if data.get("grant"):
            queryset = queryset.filter(grant=data["grant"])
        if data.get("scope"):
            queryset = queryset.filter(scope=data["scope"])
        if data.get("date_from"):
            queryset = queryset.filter(at__gte=_utc_midnight(data["date_from"]))
        if data.get("date_to"):
            queryset = queryset.filter(at__lt=_utc_midnight(data["date_to"]) + timedelta(days=1))
        return queryset


def _utc_midnight(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class PolicyForm(forms.Form):
    """The organisation's own limits on support access (bounds come from the service)."""

    max_grant_hours = forms.IntegerField(
        label="Longest grant (hours)",
        min_value=1,
        max_value=services.MAX_GRANT_HOURS_LIMIT,
        help_text=f"Between 1 and {services.MAX_GRANT_HOURS_LIMIT} hours.",
    )
    decision_timeout_hours = forms.IntegerField(
        label="Time to decide (hours)",
        min_value=services.DECISION_TIMEOUT_LIMITS[0],
        max_value=services.DECISION_TIMEOUT_LIMITS[1],
        help_text=(
            f"Between {services.DECISION_TIMEOUT_LIMITS[0]} and {services.DECISION_TIMEOUT_LIMITS[1]} hours; "
            "undecided requests then expire."
        ),
    )
    accepted_reason_types = forms.MultipleChoiceField(
        label="Reasons you accept",
        choices=ReasonType.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Requests for other reasons are refused before they reach you. Keep at least one.",
    )

    def clean_accepted_reason_types(self) -> list[str]:
        chosen = self.cleaned_data["accepted_reason_types"]
        if not chosen:
            raise ValidationError("Accept at least one reason type (refusing all would block incident response).")
        return chosen


class ContactForm(forms.Form):
    name = forms.CharField(label="Primary contact name", max_length=CONTACT_NAME_MAX_LENGTH)
    email = forms.EmailField(label="Primary contact email", help_text="Incident and support-access notices go here.")
