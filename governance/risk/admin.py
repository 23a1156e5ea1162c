"""Admin for the risk register (C26): risks with heat maps, import/export and history;
controls; the matrix; acceptances; per-risk reviews and their reminders.

Thin: every save is a service call (forms in admin_base); ValidationError lands on the form.
Change records, overall reviews and continuity plans are in the sibling admin modules.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from import_export.admin import ImportExportMixin
from import_export.formats.base_formats import CSV, XLSX

from assyst.admin_site import site
from governance.core.admin import ServiceCreatedAdmin
from governance.core.forms import ServiceAddForm
from governance.risk import selectors, services
from governance.risk.admin_base import (
    AuditHistoryMixin,
    ServiceFormAdmin,
    ServiceModelForm,
    level_pill,
    scale_choices,
)
from governance.risk.matrix import matrix_active, matrix_publish
from governance.risk.models import Control, Risk, RiskMatrix
from governance.risk.resources import ControlResource, RiskResource


class RegisterImportExportMixin(ImportExportMixin):
    """CSV and XLSX only; import needs add and change permission, export view permission
    (django-import-export would otherwise let anyone with admin access import)."""

    formats = [CSV, XLSX]

    def has_import_permission(self, request) -> bool:
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def generate_log_entries(self, result, request):
        pass  # every imported row is already in the audit trail, with its changes


# --- risks -----------------------------------------------------------------------------------


class RiskForm(ServiceModelForm):
    class Meta:
        model = Risk
        fields = (
            "code",
            "title",
            "description",
            "category",
            "owner",
            "owner_team",
            "assets",
            "threat",
            "vulnerability",
            "inherent_likelihood",
            "inherent_impact",
            "controls",
            "residual_likelihood",
            "residual_impact",
            "treatment",
            "status",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "title" not in self.fields:
            return  # view-only: every field is read-only
        matrix = matrix_active()
        for name in services.SCORE_FIELDS:
            labels = matrix.likelihood_labels if name.endswith("likelihood") else matrix.impact_labels
            self.fields[name] = forms.TypedChoiceField(
                choices=scale_choices(labels), coerce=int, label=self.fields[name].label.capitalize()
            )
        self.fields["code"].required = False
        self.fields["code"].help_text = "Left blank, the next RSK-nnn is used."
        statuses = [Risk.Status.OPEN, Risk.Status.CLOSED]
        if self.instance.pk and self.instance.status == Risk.Status.ACCEPTED:
            statuses.insert(1, Risk.Status.ACCEPTED)
        self.fields["status"].choices = [(s.value, s.label) for s in statuses]
        if "owner" in self.fields:
            self.fields["owner"].queryset = self.fields["owner"].queryset.filter(is_staff=True, is_active=True)

    def run_service(self) -> Risk:
        data = {f: self.cleaned_data[f] for f in services.RISK_FIELDS if f in self.cleaned_data}
        controls = self.cleaned_data.get("controls", [])
        if self.instance.pk is None or self.instance._state.adding:
            return services.risk_create(acting_user=self.acting_user, controls=controls, **data)
        return services.risk_update(risk=self.instance, acting_user=self.acting_user, controls=controls, **data)


class ReviewDueFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue"), ("30", "Due within 30 days"), ("later", "Later")]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        live = queryset.filter(status__in=selectors.LIVE)
        if self.value() == "overdue":
            return live.filter(next_review_on__lt=today)
        if self.value() == "30":
            return live.filter(next_review_on__gte=today, next_review_on__lte=today + timedelta(days=30))
        if self.value() == "later":
            return live.filter(next_review_on__gt=today + timedelta(days=30))
        return queryset


@admin.register(Risk, site=site)
class RiskAdmin(AuditHistoryMixin, RegisterImportExportMixin, ServiceFormAdmin):
    form = RiskForm
    resource_classes = [RiskResource]
    change_list_template = "admin/risk/risk/change_list.html"
    change_form_template = "admin/risk/risk/change_form.html"
    list_display = (
        "code",
        "title",
        "owner_column",
        "category",
        "inherent",
        "residual",
        "treatment",
        "status",
        "next_review",
    )
    list_display_links = ("code", "title")
    list_filter = ("status", ReviewDueFilter, "residual_level", "inherent_level", "category", "treatment")
    list_select_related = ("owner", "owner_team", "matrix")
    search_fields = ("code", "title")
    list_per_page = 50
    autocomplete_fields = ()
    filter_horizontal = ("controls",)
    readonly_fields = (
        "levels",
        "matrix",
        "last_reviewed_on",
        "next_review_on",
        "created_at",
        "updated_at",
        "closed_at",
        "acceptance_list",
        "review_list",
    )
    fieldsets = (
        (None, {"fields": ("code", "title", "description", "category", ("owner", "owner_team"))}),
        ("Context", {"fields": ("assets", "threat", "vulnerability")}),
        (
            "Scores",
            {
                "fields": (
                    ("inherent_likelihood", "inherent_impact"),
                    "controls",
                    ("residual_likelihood", "residual_impact"),
                    "levels",
                    "matrix",
                )
            },
        ),
        ("Treatment and review", {"fields": ("treatment", "status", "last_reviewed_on", "next_review_on")}),
        ("Sign-off and reviews", {"fields": ("acceptance_list", "review_list")}),
        ("Record", {"fields": ("created_at", "updated_at", "closed_at")}),
    )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.fieldsets[:4]
        return self.fieldsets

    @admin.display(description="owner", ordering="owner__username")
    def owner_column(self, obj: Risk) -> str:
        return obj.owner_display

    @admin.display(description="inherent", ordering="inherent_level")
    def inherent(self, obj: Risk) -> str:
        return level_pill(obj.matrix, obj.inherent_level)

    @admin.display(description="residual", ordering="residual_rank")
    def residual(self, obj: Risk) -> str:
        return level_pill(obj.matrix, obj.residual_level)

    @admin.display(description="next review", ordering="next_review_on")
    def next_review(self, obj: Risk) -> str:
        today = timezone.localdate()
        if obj.status != Risk.Status.CLOSED and obj.next_review_on < today:
            return format_html('<strong class="errornote-inline">{} (overdue)</strong>', obj.next_review_on)
        return str(obj.next_review_on)

    @admin.display(description="levels")
    def levels(self, obj: Risk) -> str:
        if obj.pk is None:
            return "-"
        return format_html(
            "inherent {} &middot; residual {}",
            level_pill(obj.matrix, obj.inherent_level),
            level_pill(obj.matrix, obj.residual_level),
        )

    @admin.display(description="reviews")
    def review_list(self, obj: Risk) -> str:
        rows = obj.reviews.select_related("reviewed_by").order_by("-reviewed_on", "-id")[:20]
        if not rows:
            return "None yet"
        return format_html_join(
            "",
            "<div>{} by {}: {} ({} &rarr; {})</div>",
            (
                (r.reviewed_on, r.reviewed_by.get_username(), r.notes, r.residual_level_before, r.residual_level_after)
                for r in rows
            ),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = {}
        if obj is not None and obj.status != Risk.Status.CLOSED:
            extra["may_review"] = request.user.has_perm("risk.add_riskreview")
            extra["may_accept"] = (
                obj.status == Risk.Status.OPEN
                and request.user.has_perm("risk.add_riskacceptance")
                and services.risk_may_change(request.user, obj)
            )
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    @admin.display(description="acceptances")
    def acceptance_list(self, obj: Risk) -> str:
        rows = obj.acceptances.select_related("accepted_by").order_by("-accepted_at")
        if not rows:
            return "None"
        return format_html_join(
            "",
            "<div>{} by {} until {} ({})</div>",
            (
                (f"{a.accepted_at:%Y-%m-%d}", a.accepted_by.get_username(), a.expires_on, a.get_status_display())
                for a in rows
            ),
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # risks are closed, never deleted (history and reviews point at them)

    def get_changeform_initial_data(self, request):
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}

    def has_change_permission(self, request, obj=None) -> bool:
        # Risk owners change their own (or their team's) risks and read the others.
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or services.risk_may_change(request.user, obj))

    def has_import_permission(self, request) -> bool:
        # An import can touch every risk in the register.
        return super().has_import_permission(request) and request.user.has_perm("risk.manage_all_risks")

    def changelist_view(self, request, extra_context=None):
        extra = {"heatmaps": [selectors.heat_map("inherent"), selectors.heat_map("residual")]}
        return super().changelist_view(request, {**extra, **(extra_context or {})})


# --- controls ----------------------------------------------------------------------------------


class ControlForm(ServiceModelForm):
    class Meta:
        model = Control
        fields = ("code", "name", "description", "owner", "status", "evidence", "last_tested_on")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "code" in self.fields:
            self.fields["code"].required = False
            self.fields["code"].help_text = "Left blank, the next CTL-nnn is used."

    def run_service(self) -> Control:
        data = {f: self.cleaned_data[f] for f in services.CONTROL_FIELDS if f in self.cleaned_data}
        control = None if self.instance._state.adding else self.instance
        return services.control_save(acting_user=self.acting_user, control=control, **data)


@admin.register(Control, site=site)
class ControlAdmin(AuditHistoryMixin, RegisterImportExportMixin, ServiceFormAdmin):
    form = ControlForm
    resource_classes = [ControlResource]
    list_display = ("code", "name", "owner", "status", "last_tested_on", "risk_count")
    list_filter = ("status",)
    list_select_related = ("owner",)
    search_fields = ("code", "name")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_risks=Count("risks"))

    @admin.display(description="risks", ordering="n_risks")
    def risk_count(self, obj: Control) -> int:
        return obj.n_risks

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- the matrix ----------------------------------------------------------------------------------


class MatrixPublishForm(ServiceAddForm):
    name = forms.CharField(max_length=100)
    likelihood_labels = forms.JSONField(help_text='Lowest first: ["Rare", "Unlikely", ...].')
    impact_labels = forms.JSONField(help_text='Lowest first: ["Negligible", "Minor", ...].')
    levels = forms.JSONField(
        help_text='Lowest first: [{"key": "low", "name": "Low", "colour": "#2e7d32", "review_months": 12}, ...]; '
        "review_months at most 12."
    )
    grid = forms.JSONField(help_text="One row per likelihood (lowest first), one level key per impact.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        active = matrix_active()
        for name in self.fields:
            self.fields[name].initial = getattr(active, name)

    def create(self, **cleaned):
        return matrix_publish(acting_user=self.acting_user, **cleaned)


@admin.register(RiskMatrix, site=site)
class RiskMatrixAdmin(ServiceCreatedAdmin):
    """Matrices are published as new versions and never edited; risks keep theirs."""

    add_form = MatrixPublishForm
    add_form_user_attr = "acting_user"
    list_display = ("__str__", "is_active", "created_at", "created_by", "risk_count")
    detail_fieldsets = [(None, {"fields": ("name", "version", "is_active", "created_at", "created_by", "table")})]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by").annotate(n=Count("risks"))

    @admin.display(description="risks scored with it")
    def risk_count(self, obj) -> int:
        return obj.n

    @admin.display(description="matrix")
    def table(self, obj: RiskMatrix) -> str:
        header = format_html_join("", "<th>{}</th>", ((label,) for label in obj.impact_labels))
        body = format_html_join(
            "",
            "<tr><th>{}</th>{}</tr>",
            (
                (
                    obj.likelihood_labels[li - 1],
                    format_html_join(
                        "",
                        "<td>{}</td>",
                        ((level_pill(obj, obj.level_key(li, im)),) for im in range(1, len(obj.impact_labels) + 1)),
                    ),
                )
                for li in range(len(obj.likelihood_labels), 0, -1)
            ),
        )
        reviews_ = format_html_join(
            ", ", "{}: every {} months", ((lv["name"], lv["review_months"]) for lv in obj.levels)
        )
        return format_html(
            "<table><thead><tr><th>Likelihood \\ impact</th>{}</tr></thead><tbody>{}</tbody></table><p>Reviews: {}</p>",
            header,
            body,
            reviews_,
        )


from governance.risk import admin_changes, admin_continuity, admin_reviews  # noqa: E402, F401  (register their admins)
