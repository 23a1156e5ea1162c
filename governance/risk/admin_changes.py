"""Admin for change records (C26): edit while draft, then one page per step (submit,
assess, approve, reject, implement, review), each calling its service. A refused step
shows the service's message on the page (e.g. a major change without an assessment)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from assyst.admin_site import site
from governance.risk import changes
from governance.risk.admin_base import AuditHistoryMixin, ServiceFormAdmin, ServiceModelForm, add_service_errors
from governance.risk.models import Change, Risk

Status = Change.Status
EDITABLE = (Status.DRAFT, Status.ASSESSMENT)


class ChangeForm(ServiceModelForm):
    class Meta:
        model = Change
        fields = changes.CHANGE_FIELDS

    def run_service(self) -> Change:
        data = {f: self.cleaned_data[f] for f in changes.CHANGE_FIELDS if f in self.cleaned_data}
        if self.instance._state.adding:
            return changes.change_create(acting_user=self.acting_user, **data)
        if not data:
            return self.instance
        return changes.change_update(change=self.instance, acting_user=self.acting_user, **data)


# --- step forms: each `run` calls one service ------------------------------------------------------


class NoteForm(forms.Form):
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 70}))


class SubmitForm(forms.Form):
    def run(self, change: Change, user) -> str:
        changes.change_submit(change=change, acting_user=user)
        return f"{change.code} submitted for assessment."


class AssessForm(forms.Form):
    summary = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "cols": 70}))
    risks = forms.ModelMultipleChoiceField(
        queryset=Risk.objects.none(),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 12}),
        help_text="The risks this change creates or changes (register new ones first).",
    )
    complete = forms.BooleanField(required=False, initial=True, label="Assessment complete")

    def __init__(self, *args, change: Change, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["risks"].queryset = Risk.objects.exclude(status=Risk.Status.CLOSED).order_by("code")
        assessment = getattr(change, "assessment", None)
        if assessment is not None and not self.is_bound:
            self.initial.update(summary=assessment.summary, risks=list(assessment.risks.all()))

    def run(self, change: Change, user) -> str:
        assessment = changes.change_assess(change=change, acting_user=user, **self.cleaned_data)
        state = "completed" if assessment.is_complete else "saved as draft"
        return f"Risk assessment of {change.code} {state}."


class ApproveForm(NoteForm):
    def run(self, change: Change, user) -> str:
        changes.change_approve(change=change, acting_user=user, note=self.cleaned_data["note"])
        return f"{change.code} approved."


class RejectForm(NoteForm):
    def run(self, change: Change, user) -> str:
        changes.change_reject(change=change, acting_user=user, note=self.cleaned_data["note"])
        return f"{change.code} rejected."


class ImplementForm(forms.Form):
    def run(self, change: Change, user) -> str:
        changes.change_implement(change=change, acting_user=user)
        return f"{change.code} marked implemented."


class ReviewForm(NoteForm):
    def run(self, change: Change, user) -> str:
        changes.change_review(change=change, acting_user=user, note=self.cleaned_data["note"])
        return f"Post-implementation review of {change.code} recorded."


# step: (form, title, button, statuses where offered, permission needed)
STEPS = {
    "submit": (SubmitForm, "Submit for assessment", "Submit", (Status.DRAFT,), "risk.change_change"),
    "assess": (AssessForm, "Risk assessment", "Save the assessment", EDITABLE, "risk.add_riskassessment"),
    "approve": (ApproveForm, "Approve", "Approve the change", (Status.ASSESSMENT,), "risk.approve_change"),
    "reject": (RejectForm, "Reject", "Reject the change", EDITABLE, "risk.approve_change"),
    "implement": (ImplementForm, "Mark implemented", "Mark implemented", (Status.APPROVED,), "risk.change_change"),
    "review": (
        ReviewForm,
        "Post-implementation review",
        "Record the review",
        (Status.IMPLEMENTED,),
        "risk.change_change",
    ),
}


@admin.register(Change, site=site)
class ChangeAdmin(AuditHistoryMixin, ServiceFormAdmin):
    form = ChangeForm
    change_form_template = "admin/risk/change/change_form.html"
    list_display = ("code", "title", "change_type", "status", "requester", "planned_start", "assessed", "approver")
    list_filter = ("change_type", "status")
    list_select_related = ("requester", "approver", "assessment")
    search_fields = ("code", "title")
    date_hierarchy = "planned_start"
    list_per_page = 50
    record_fields = (
        "code",
        "change_type",
        "status",
        "requester",
        "assessment_summary",
        "approver",
        "decided_at",
        "decision_note",
        "implemented_at",
        "reviewed_at",
        "review_note",
        "created_at",
    )

    def get_fieldsets(self, request, obj=None):
        criteria = ("affects_customer_data", "affects_security_controls", "expects_downtime", "pre_approved_routine")
        main = [
            (None, {"fields": ("title", "description")}),
            ("Type criteria (major if any of the first three)", {"fields": criteria}),
            ("Window and rollback", {"fields": ("planned_start", "planned_end", "rollback_plan")}),
        ]
        if obj is None:
            return main
        return [("Record", {"fields": self.record_fields}), *main]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.status not in EDITABLE:
            return (*self.record_fields, *changes.CHANGE_FIELDS)
        return self.record_fields

    @admin.display(description="assessed", boolean=True)
    def assessed(self, obj: Change) -> bool:
        assessment = getattr(obj, "assessment", None)
        return bool(assessment and assessment.completed_at)

    @admin.display(description="risk assessment")
    def assessment_summary(self, obj: Change) -> str:
        assessment = getattr(obj, "assessment", None)
        if assessment is None:
            return "None yet" + (" (required before approval: major change)" if obj.change_type == "major" else "")
        risks = format_html_join(", ", "{}", ((str(r),) for r in assessment.risks.order_by("code")))
        state = f"completed {assessment.completed_at:%Y-%m-%d %H:%M} UTC" if assessment.completed_at else "draft"
        return format_html(
            "<div>{} by {}</div><div>{}</div><div>Risks: {}</div>",
            state,
            assessment.assessor.get_username(),
            assessment.summary,
            risks or "none",
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # A draft is edited by its requester (or an approver), not by every risk owner.
        allowed = super().has_change_permission(request, obj)
        return allowed and (
            obj is None or obj.requester_id == request.user.pk or request.user.has_perm("risk.approve_change")
        )

    # --- step pages ------------------------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "<path:object_id>/step/<str:step>/",
                self.admin_site.admin_view(self.step_view),
                name="risk_change_step",
            ),
            *super().get_urls(),
        ]

    def steps_for(self, request, obj: Change) -> list[tuple[str, str]]:
        return [
            (name, title)
            for name, (_, title, _, statuses, perm) in STEPS.items()
            if obj.status in statuses and request.user.has_perm(perm)
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        extra = {"steps": self.steps_for(request, obj)} if obj is not None else {}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def step_view(self, request, object_id, step):
        if step not in STEPS:
            raise Http404
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        form_class, title, submit, _, perm = STEPS[step]
        if not request.user.has_perm(perm):
            raise PermissionDenied
        kwargs = {"change": obj} if form_class is AssessForm else {}
        change_url = reverse("admin:risk_change_change", args=[obj.pk])
        wants_json = request.headers.get("Accept", "").startswith("application/json")
        if request.method == "POST":
            form = form_class(request.POST, **kwargs)
            if form.is_valid():
                try:
                    message = form.run(obj, request.user)
                except ValidationError as e:
                    add_service_errors(form, e)
                except PermissionDenied as e:
                    form.add_error(None, str(e))
                else:
                    if wants_json:
                        obj.refresh_from_db()
                        return JsonResponse({"code": obj.code, "status": obj.status, "message": message})
                    self.message_user(request, message, messages.SUCCESS)
                    return HttpResponseRedirect(change_url)
            if wants_json:
                # The same refusal as on the page, for scripts and the API (400, never 500).
                errors = [str(m) for field_errors in form.errors.values() for m in field_errors]
                return JsonResponse({"code": obj.code, "status": obj.status, "errors": errors}, status=400)
        else:
            form = form_class(**kwargs)
        problems = changes.change_approval_problems(obj, request.user) if step == "approve" else []
        context = {
            **self.admin_site.each_context(request),
            "title": f"{title}: {obj.code}",
            "opts": self.opts,
            "original": obj,
            "form": form,
            "submit": submit,
            "change_url": change_url,
            "problems": problems,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/risk/change/step.html", context)
