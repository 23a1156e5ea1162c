"""Admin for risk acceptances (the owner's sign-off, with the risk's state kept) and the
reviews of single risks with their reminders (C26)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from assyst.admin_site import site
from governance.core.admin import ReadOnlyAdmin, ServiceCreatedAdmin
from governance.core.forms import ServiceAddForm
from governance.risk import reviews, selectors, services
from governance.risk.admin_base import scale_choices
from governance.risk.matrix import matrix_active
from governance.risk.models import ReviewReminder, Risk, RiskAcceptance, RiskReview

# --- acceptances ---------------------------------------------------------------------------------


class AcceptanceAddForm(ServiceAddForm):
    risk = forms.ModelChoiceField(queryset=Risk.objects.none())
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 70}))
    expires_on = forms.DateField(widget=AdminDateWidget, help_text="The acceptance ends on this day; at most a year.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["risk"].queryset = Risk.objects.filter(status=Risk.Status.OPEN).order_by("code")

    def create(self, **cleaned):
        return services.risk_accept(acting_user=self.acting_user, **cleaned)


@admin.register(RiskAcceptance, site=site)
class RiskAcceptanceAdmin(ServiceCreatedAdmin):
    """The owner's sign-off of residual risk, with the risk's state kept as it was."""

    add_form = AcceptanceAddForm
    add_form_user_attr = "acting_user"
    list_display = ("risk", "accepted_by", "accepted_at", "expires_on", "status")
    list_filter = ("status",)
    list_select_related = ("risk", "accepted_by")
    search_fields = ("risk__code", "risk__title")
    actions = ["revoke"]
    detail_fieldsets = [
        (
            None,
            {
                "fields": (
                    "risk",
                    "accepted_by",
                    "accepted_at",
                    "reason",
                    "expires_on",
                    "status",
                    "ended_at",
                    "ended_by",
                    "snapshot_table",
                )
            },
        )
    ]

    @admin.display(description="risk as accepted")
    def snapshot_table(self, obj: RiskAcceptance) -> str:
        snap = dict(obj.snapshot)
        controls = snap.pop("controls", [])
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", ((k, v) for k, v in snap.items()))
        ctl = format_html_join(", ", "{} {} ({})", ((c["code"], c["name"], c["status"]) for c in controls))
        return format_html("<table>{}<tr><th>controls</th><td>{}</td></tr></table>", rows, ctl or "-")

    @admin.action(description="Revoke the selected acceptances (the risks reopen)")
    def revoke(self, request, queryset):
        for acceptance in queryset:
            try:
                services.acceptance_revoke(
                    acceptance=acceptance, acting_user=request.user, reason="Revoked in the admin."
                )
            except (ValidationError, PermissionDenied) as e:
                self.message_user(
                    request, f"{acceptance}: {'; '.join(getattr(e, 'messages', [str(e)]))}", messages.ERROR
                )
            else:
                self.message_user(request, f"{acceptance} revoked; {acceptance.risk.code} is open again.")

    def has_revoke_permission(self, request) -> bool:
        return self.has_view_permission(request)


# --- reviews of single risks ------------------------------------------------------------------


class ReviewAddForm(ServiceAddForm):
    risk = forms.ModelChoiceField(queryset=Risk.objects.none())
    reviewed_on = forms.DateField(widget=AdminDateWidget, initial=timezone.localdate)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 70}))
    residual_likelihood = forms.TypedChoiceField(
        coerce=int, required=False, empty_value=None, label="New residual likelihood"
    )
    residual_impact = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="New residual impact")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["risk"].queryset = Risk.objects.filter(status__in=selectors.LIVE).order_by("next_review_on")
        matrix = matrix_active()
        blank = [("", "unchanged")]
        self.fields["residual_likelihood"].choices = blank + scale_choices(matrix.likelihood_labels)
        self.fields["residual_impact"].choices = blank + scale_choices(matrix.impact_labels)

    def create(self, **cleaned):
        return reviews.risk_review_record(acting_user=self.acting_user, **cleaned)


@admin.register(RiskReview, site=site)
class RiskReviewAdmin(ServiceCreatedAdmin):
    """Reviews of single risks; recording one moves the risk's next review date."""

    add_form = ReviewAddForm
    add_form_user_attr = "acting_user"
    list_display = (
        "risk",
        "reviewed_on",
        "reviewed_by",
        "residual_level_before",
        "residual_level_after",
        "next_review_on",
    )
    list_select_related = ("risk", "reviewed_by")
    search_fields = ("risk__code", "risk__title")
    date_hierarchy = "reviewed_on"
    detail_fieldsets = [
        (
            None,
            {
                "fields": (
                    "risk",
                    "reviewed_on",
                    "reviewed_by",
                    "notes",
                    "residual_level_before",
                    "residual_level_after",
                    "next_review_on",
                    "created_at",
                )
            },
        )
    ]

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        return initial


@admin.register(ReviewReminder, site=site)
class ReviewReminderAdmin(ReadOnlyAdmin):
    """Every review reminder sent (evidence that owners were told on time)."""

    list_display = ("risk", "kind", "due_on", "sent_at", "recipients")
    list_filter = ("kind",)
    list_select_related = ("risk",)
    date_hierarchy = "sent_at"
