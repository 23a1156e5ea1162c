"""The public report form and the admin triage forms (C11)."""

from __future__ import annotations

from django import forms

from governance.disclosure import services
from governance.disclosure.models import VulnerabilityReport
from incidents.models import Incident

Status = VulnerabilityReport.Status

# Field limits: a report needs room for steps, but the form is public and unauthenticated.
SUMMARY_MAX = 200
PRODUCT_MAX = 200
STEPS_MAX = 10_000
IMPACT_MAX = 5_000
CVSS_MAX = 200
EMAIL_MAX = 254
HONEYPOT_FIELD = "website"


class ReportForm(forms.Form):
    summary = forms.CharField(max_length=SUMMARY_MAX, help_text="One line: what is wrong and where.", strip=True)
    affected_product = forms.CharField(
        max_length=PRODUCT_MAX, label="Affected product", help_text="Product, URL or component, and version if known."
    )
    steps_to_reproduce = forms.CharField(
        max_length=STEPS_MAX,
        label="Steps to reproduce",
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=f"At most {STEPS_MAX:,} characters. Please do not include real customers' data.",
    )
    impact = forms.CharField(
        max_length=IMPACT_MAX,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=f"What could an attacker do? At most {IMPACT_MAX:,} characters.",
    )
    cvss_vector = forms.CharField(
        max_length=CVSS_MAX,
        required=False,
        label="CVSS v3.1 vector (optional)",
        help_text="For example CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    )
    contact_email = forms.EmailField(
        required=False,
        max_length=EMAIL_MAX,
        label="Your email (optional)",
        help_text="Only if you want an acknowledgement and updates. Stored encrypted; seen only by our security team.",
    )
    # Spam trap: hidden from people, filled in by bots. A filled-in trap discards the report.
    website = forms.CharField(
        required=False,
        max_length=200,
        label="Leave this field empty",
        widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}),
    )

    def clean_cvss_vector(self) -> str:
        vector = self.cleaned_data["cvss_vector"]
        if not vector:
            return ""
        self.cvss = services.cvss_parse(vector)
        return self.cvss.vector

    @property
    def is_spam(self) -> bool:
        return bool(self.cleaned_data.get(HONEYPOT_FIELD)) if hasattr(self, "cleaned_data") else False

    @property
    def visible_fields_list(self):
        return [f for f in self if f.name != HONEYPOT_FIELD]


class TransitionForm(forms.Form):
    to_status = forms.ChoiceField(label="New status")
    duplicate_of = forms.ModelChoiceField(
        queryset=VulnerabilityReport.objects.none(),
        required=False,
        label="Original report",
        help_text="Required for a duplicate.",
    )
    note = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text="Required for not applicable."
    )

    def __init__(self, *args, report: VulnerabilityReport, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to_status"].choices = [(s, Status(s).label) for s in services.allowed_transitions(report)]
        self.fields["duplicate_of"].queryset = (
            VulnerabilityReport.objects.exclude(pk=report.pk).exclude(status=Status.DUPLICATE).order_by("-received_at")
        )


class LinkIncidentForm(forms.Form):
    incident = forms.ModelChoiceField(
        queryset=Incident.objects.none(), required=False, help_text="Empty removes the link."
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["incident"].queryset = Incident.objects.order_by("-created_at")
