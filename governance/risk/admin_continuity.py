"""Admin for business continuity plans and exercises (C23) and the yearly overall risk
review (C26)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from assyst.admin_site import site
from governance.core.admin import ServiceCreatedAdmin
from governance.core.forms import ServiceAddForm
from governance.risk import continuity, reviews
from governance.risk.admin_base import AuditHistoryMixin, ServiceFormAdmin, ServiceModelForm
from governance.risk.models import ContinuityExercise, ContinuityPlan, ContinuityPlanVersion, OverallRiskReview
from incidents.reports import markdown_to_safe_html

# --- continuity plans ----------------------------------------------------------------------------


class PlanForm(ServiceModelForm):
    document = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16, "cols": 90}),
        required=False,
        help_text="The plan (Markdown). A changed text is saved as a new version; old versions are kept.",
    )
    change_note = forms.CharField(max_length=300, required=False, help_text="What changed in this version.")
    reviewed = forms.BooleanField(
        required=False, label="Reviewed today", help_text="Counts as this year's review: next review in 12 months."
    )

    class Meta:
        model = ContinuityPlan
        fields = ("operation", "title", "owner", "rto_hours", "rpo_hours", "escalation_contacts", "next_review_on")
        widgets = {"escalation_contacts": forms.Textarea(attrs={"rows": 4, "cols": 70})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "next_review_on" in self.fields:  # absent for view-only users
            self.fields["next_review_on"].required = False
            self.fields["owner"].queryset = self.fields["owner"].queryset.filter(is_staff=True, is_active=True)
        if self.instance.pk and not self.is_bound:
            latest = self.instance.versions.order_by("-number").first()
            self.initial["document"] = latest.document if latest else ""

    def run_service(self) -> ContinuityPlan:
        data = {f: self.cleaned_data[f] for f in continuity.PLAN_FIELDS if f in self.cleaned_data}
        if data.get("next_review_on") is None:
            data.pop("next_review_on", None)
        return continuity.continuity_plan_save(
            acting_user=self.acting_user,
            plan=None if self.instance._state.adding else self.instance,
            document=self.cleaned_data.get("document", ""),
            change_note=self.cleaned_data.get("change_note", ""),
            reviewed=self.cleaned_data.get("reviewed", False),
            **data,
        )


class VersionInline(admin.TabularInline):
    model = ContinuityPlanVersion
    fields = ("number", "created_at", "created_by", "change_note")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ExerciseInline(admin.TabularInline):
    model = ContinuityExercise
    fields = ("held_on", "kind", "result", "scenario", "improvements")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ContinuityPlan, site=site)
class ContinuityPlanAdmin(AuditHistoryMixin, ServiceFormAdmin):
    form = PlanForm
    inlines = [VersionInline, ExerciseInline]
    list_display = (
        "title",
        "operation",
        "owner",
        "rto_hours",
        "rpo_hours",
        "current_version",
        "next_review_on",
        "last_exercised_on",
        "flags",
    )
    list_select_related = ("owner",)
    readonly_fields = ("current_version", "last_reviewed_on", "last_exercised_on", "flags")
    fieldsets = (
        (None, {"fields": ("operation", "title", "owner", ("rto_hours", "rpo_hours"))}),
        ("Escalation contacts (encrypted)", {"fields": ("escalation_contacts",)}),
        ("Plan document", {"fields": ("current_version", "document", "change_note")}),
        ("Review", {"fields": ("reviewed", "last_reviewed_on", "next_review_on", "last_exercised_on", "flags")}),
    )

    @admin.display(description="attention")
    def flags(self, obj: ContinuityPlan) -> str:
        if obj.pk is None:
            return "-"
        found = continuity.plan_flags(obj, today=timezone.localdate())
        return "; ".join(found) if found else "ok"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ContinuityPlanVersion, site=site)
class ContinuityPlanVersionAdmin(admin.ModelAdmin):
    """Old versions of plan documents, read-only."""

    list_display = ("plan", "number", "created_at", "created_by", "change_note")
    list_select_related = ("plan", "created_by")
    readonly_fields = ("plan", "number", "rendered", "document", "change_note", "created_by", "created_at")

    @admin.display(description="plan as written")
    def rendered(self, obj: ContinuityPlanVersion) -> str:
        # The same sanitised Markdown as RCAs: no script, no style, safe links.
        return mark_safe(markdown_to_safe_html(obj.document))  # noqa: S308 - nh3-sanitised

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ExerciseAddForm(ServiceAddForm):
    plan = forms.ModelChoiceField(queryset=ContinuityPlan.objects.order_by("operation"))
    held_on = forms.DateField(widget=AdminDateWidget)
    kind = forms.ChoiceField(choices=ContinuityExercise.Kind.choices)
    scenario = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 70}))
    result = forms.ChoiceField(choices=ContinuityExercise.Result.choices)
    improvements = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 70}), help_text="One per line."
    )

    def create(self, **cleaned):
        return continuity.continuity_exercise_record(acting_user=self.acting_user, **cleaned)


@admin.register(ContinuityExercise, site=site)
class ContinuityExerciseAdmin(ServiceCreatedAdmin):
    """Exercises and tests of continuity plans; recorded once, then read-only."""

    add_form = ExerciseAddForm
    add_form_user_attr = "acting_user"
    list_display = ("plan", "held_on", "kind", "result", "recorded_by")
    list_filter = ("kind", "result")
    list_select_related = ("plan", "recorded_by")
    date_hierarchy = "held_on"
    detail_fieldsets = [
        (
            None,
            {"fields": ("plan", "held_on", "kind", "scenario", "result", "improvements", "recorded_by", "created_at")},
        )
    ]


# --- the overall yearly review -----------------------------------------------------------------


class StartForm(ServiceAddForm):
    copy_previous = forms.BooleanField(
        required=False, initial=True, label="Start from a copy of last year's", help_text="Summary and decisions."
    )

    def create(self, **cleaned):
        return reviews.overall_review_start(acting_user=self.acting_user, **cleaned)


class OverallEditForm(ServiceModelForm):
    class Meta:
        model = OverallRiskReview
        fields = ("summary", "decisions")

    def run_service(self) -> OverallRiskReview:
        return reviews.overall_review_update(
            review=self.instance,
            acting_user=self.acting_user,
            summary=self.cleaned_data["summary"],
            decisions=self.cleaned_data["decisions"],
        )


def _diff_list(items: list, fmt) -> str:
    if not items:
        return "none"
    return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((fmt(i),) for i in items)))


@admin.register(OverallRiskReview, site=site)
class OverallRiskReviewAdmin(AuditHistoryMixin, ServiceFormAdmin):
    """The yearly review: opened as a draft (optionally a copy of last year's), shows what
    changed since the previous one, signed by a security officer, then frozen."""

    form = OverallEditForm
    change_form_template = "admin/risk/overallriskreview/change_form.html"
    list_display = ("title", "status", "period_start", "period_end", "signed_by", "signed_at", "counts")
    list_select_related = ("signed_by",)
    record = ("title", "status", "previous", "period_start", "period_end", "created_by", "signed_by", "signed_at")
    shown = ("new_risks", "closed_risks", "rescored_risks", "expired_acceptances")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            return type("StartForm", (StartForm,), {"acting_user": request.user})
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ("copy_previous",)})]
        return [
            (None, {"fields": self.record}),
            ("Conclusions", {"fields": ("summary", "decisions")}),
            ("What changed since the previous review (from the audit trail)", {"fields": self.shown}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.status == OverallRiskReview.Status.SIGNED:
            return (*self.record, "summary", "decisions", *self.shown)
        return (*self.record, *self.shown)

    @admin.display(description="changes")
    def counts(self, obj: OverallRiskReview) -> str:
        c = (obj.differences or {}).get("counts", {})
        return (
            f"{c.get('new', 0)} new, {c.get('closed', 0)} closed, {c.get('rescored', 0)} re-scored, "
            f"{c.get('expired_acceptances', 0)} expired acceptances"
        )

    @admin.display(description="new risks")
    def new_risks(self, obj) -> str:
        return _diff_list(obj.differences.get("new", []), lambda r: f"{r['code']} {r['title']} ({r['residual']})")

    @admin.display(description="closed risks")
    def closed_risks(self, obj) -> str:
        return _diff_list(obj.differences.get("closed", []), lambda r: f"{r['code']} {r['title']}")

    @admin.display(description="re-scored risks")
    def rescored_risks(self, obj) -> str:
        return _diff_list(
            obj.differences.get("rescored", []),
            lambda r: (
                f"{r['code']} {r['title']}: inherent {r['inherent'][0]} -> {r['inherent'][1]}, "
                f"residual {r['residual'][0]} -> {r['residual'][1]}"
            ),
        )

    @admin.display(description="expired acceptances")
    def expired_acceptances(self, obj) -> str:
        return _diff_list(
            obj.differences.get("expired_acceptances", []), lambda r: f"{r['code']} {r['title']} ({r['expires_on']})"
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.status == OverallRiskReview.Status.SIGNED:
            return False
        return super().has_change_permission(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        may_sign = bool(
            obj
            and obj.status == OverallRiskReview.Status.DRAFT
            and request.user.has_perm("risk.sign_overallriskreview")
        )
        return super().change_view(request, object_id, form_url, {"may_sign": may_sign, **(extra_context or {})})

    def get_urls(self):
        return [
            path(
                "<path:object_id>/sign/", self.admin_site.admin_view(self.sign_view), name="risk_overallriskreview_sign"
            ),
            *super().get_urls(),
        ]

    def sign_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        try:
            reviews.overall_review_sign(review=obj, acting_user=request.user)
        except PermissionDenied:
            raise
        except ValidationError as e:
            self.message_user(request, " ".join(e.messages), messages.ERROR)
        else:
            self.message_user(request, f"{obj} signed.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:risk_overallriskreview_change", args=[obj.pk]))
