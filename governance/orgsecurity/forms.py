"""Forms of the organisation security pages: they validate input; services apply the rules."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.db.models import Q, QuerySet

from governance.orgsecurity.models import OrganisationSecurityPolicy
from governance.orgsecurity.netaddr import parse_allowlist
from governance.orgsecurity.selectors import CATEGORIES, category_filter
from governance.orgsecurity.services import IDLE_MINUTES_RANGE, LIFETIME_HOURS_RANGE


class SecurityPolicyForm(forms.Form):
    two_factor = forms.ChoiceField(
        choices=OrganisationSecurityPolicy.TwoFactor.choices,
        widget=forms.RadioSelect,
        label="Two-factor sign-in",
        help_text="Required: everyone without an authenticator app is led through setting one up at their next "
        "page view, and can open nothing else first.",
    )
    ip_allowlist = forms.CharField(
        required=False,
        label="Allowed network addresses",
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "203.0.113.0/24\n2001:db8:1200::/40"}),
        help_text="IPv4 or IPv6 ranges in CIDR notation, one per line. Empty: any address. "
        "Requests from elsewhere are refused and recorded in your audit log.",
    )
    idle_timeout_minutes = forms.IntegerField(
        required=False,
        min_value=IDLE_MINUTES_RANGE[0],
        max_value=IDLE_MINUTES_RANGE[1],
        label="Sign out after this many minutes without activity",
        help_text="Empty: no limit of your own.",
    )
    session_lifetime_hours = forms.IntegerField(
        required=False,
        min_value=LIFETIME_HOURS_RANGE[0],
        max_value=LIFETIME_HOURS_RANGE[1],
        label="Sign out this many hours after sign-in, whatever the activity",
        help_text="Empty: the portal's own limit (8 hours by default) applies.",
    )

    def clean_ip_allowlist(self) -> list[str]:
        return parse_allowlist(self.cleaned_data.get("ip_allowlist") or "")


class CodeForm(forms.Form):
    token = forms.CharField(
        max_length=32,
        label="Code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}),
        error_messages={"required": "Enter the code."},
    )


class AuditFilterForm(forms.Form):
    """GET filters of the organisation's audit log and its CSV export; every field optional."""

    category = forms.ChoiceField(
        required=False, choices=[("", "Everything"), *((k, v[0]) for k, v in CATEGORIES.items())], label="Kind"
    )
    person = forms.CharField(required=False, max_length=150, label="Person (username contains)")
    date_from = forms.DateField(required=False, label="From (UTC)", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(
        required=False, label="To (UTC, inclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("“From” must not be after “To”.")
        return data

    def apply(self, events: QuerySet) -> QuerySet:
        data = self.cleaned_data
        if data.get("category"):
            events = events.filter(category_filter(data["category"]))
        if data.get("person"):
            events = events.filter(Q(actor_repr__icontains=data["person"]))
        if data.get("date_from"):
            events = events.filter(created_at__gte=datetime.combine(data["date_from"], time.min, tzinfo=UTC))
        if data.get("date_to"):
            end = datetime.combine(data["date_to"], time.min, tzinfo=UTC) + timedelta(days=1)
            events = events.filter(created_at__lt=end)
        return events

    def used_filters(self) -> dict:
        return {k: str(v) for k, v in self.cleaned_data.items() if v}
