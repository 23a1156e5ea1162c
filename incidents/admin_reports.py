"""Admin for evidence, RCAs and report requests (C16, C19, C20).

Every change goes through incidents.evidence / incidents.reports: the forms run the
same checks as the services (so errors show on the form), save_model calls the
service, and actions turn a service's ValidationError into a message.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import content_disposition_header
from django.utils.safestring import mark_safe

from assyst.admin_site import site
from governance.tenancy.models import Organisation
from incidents import evidence as evidence_services
from incidents import reports
from incidents.models import Evidence, ReportRequest, RootCauseAnalysis
from incidents.workdays import uk_date


def _error_text(exc: Exception) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def _copy_into(target, source) -> None:
    """The admin keeps its own instance; give it the row the service created."""
    target.__dict__.update({k: v for k, v in source.__dict__.items() if k != "_state"})
    target._state.adding = False
    target._state.db = source._state.db


# --- evidence -------------------------------------------------------------------------------


class EvidenceAddForm(forms.ModelForm):
    uploaded_file = forms.FileField(label="File", help_text="PDF, PNG, JPEG or text; stored encrypted.")
    share_with = forms.ModelMultipleChoiceField(
        queryset=None,  # set per form: the scoped manager needs the request's scope
        required=False,
        help_text="Only organisations the incident affects (any organisation for a general incident).",
    )

    class Meta:
        model = Evidence
        fields = ("incident", "title")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["share_with"].queryset = Organisation.objects.order_by("name")

    def clean(self):
        cleaned = super().clean()
        incident = cleaned.get("incident")
        try:
            if incident is not None:
                evidence_services.evidence_check_sharing(incident=incident, organisations=cleaned.get("share_with", []))
            if cleaned.get("uploaded_file") is not None:
                evidence_services.evidence_check_file(cleaned["uploaded_file"])
        except ValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        return cleaned


class EvidenceShareForm(forms.ModelForm):
    shared_with = forms.ModelMultipleChoiceField(
        queryset=None,  # set per form: the scoped manager needs the request's scope
        required=False,
        widget=admin.widgets.FilteredSelectMultiple("organisations", is_stacked=False),
    )

    class Meta:
        model = Evidence
        fields = ("shared_with",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["shared_with"].queryset = Organisation.objects.order_by("name")

    def clean_shared_with(self):
        organisations = self.cleaned_data["shared_with"]
        try:
            evidence_services.evidence_check_sharing(incident=self.instance.incident, organisations=organisations)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["share_with"]) from exc
        return organisations


@admin.register(Evidence, site=site)
class EvidenceAdmin(admin.ModelAdmin):
    """Evidence files: upload (encrypted at rest), share with affected organisations, download (audited)."""

    list_display = ("title", "incident", "content_type", "size", "shared", "uploaded_by", "uploaded_at")
    list_filter = ("content_type",)
    list_select_related = ("incident", "uploaded_by")
    search_fields = ("title", "incident__title")
    readonly_fields = (
        "incident",
        "title",
        "original_name",
        "content_type",
        "size",
        "sha256",
        "uploaded_by",
        "uploaded_at",
        "download",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("shared_with")

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = EvidenceShareForm if obj is not None else EvidenceAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("incident", "title", "uploaded_file", "share_with")
        return (*self.readonly_fields, "shared_with")

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # evidence is kept; unshare instead

    @admin.display(description="shared with")
    def shared(self, obj: Evidence) -> str:
        return ", ".join(o.name for o in obj.shared_with.all()) or "-"

    @admin.display(description="download")
    def download(self, obj: Evidence) -> str:
        if obj.pk is None:
            return "-"
        url = reverse("admin:incidents_evidence_download", args=[obj.pk])
        return format_html('<a href="{}">Download {}</a> (audited)', url, obj.original_name)

    def save_model(self, request, obj, form, change):
        if change:
            evidence_services.evidence_share(
                evidence=obj, acting_user=request.user, organisations=form.cleaned_data["shared_with"]
            )
            return
        created = evidence_services.evidence_add(
            incident=form.cleaned_data["incident"],
            acting_user=request.user,
            title=form.cleaned_data["title"],
            uploaded_file=form.cleaned_data["uploaded_file"],
            share_with=form.cleaned_data["share_with"],
        )
        _copy_into(obj, created)

    def save_related(self, request, form, formsets, change):
        pass  # sharing is set by the service, with its checks and audit event

    def get_urls(self):
        return [
            path(
                "<int:pk>/download/",
                self.admin_site.admin_view(self.download_view),
                name="incidents_evidence_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request, pk: int):
        evidence = get_object_or_404(Evidence, pk=pk)
        data, filename, content_type = evidence_services.evidence_open(evidence=evidence, user=request.user)
        response = HttpResponse(data, content_type=content_type)
        response["Content-Disposition"] = content_disposition_header(True, filename)
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, no-store"
        return response


# --- RCA ------------------------------------------------------------------------------------


class RCAForm(forms.ModelForm):
    class Meta:
        model = RootCauseAnalysis
        fields = ("incident", "body_markdown")
        widgets = {"body_markdown": forms.Textarea(attrs={"rows": 24, "cols": 100})}


@admin.register(RootCauseAnalysis, site=site)
class RootCauseAnalysisAdmin(admin.ModelAdmin):
    """RCAs: written in Markdown, previewed as the customer will see it, published, PDF."""

    form = RCAForm
    list_display = ("incident", "author", "published_at", "updated_at")
    list_filter = (("published_at", admin.EmptyFieldListFilter),)
    list_select_related = ("incident", "author")
    actions = ("publish_selected",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("incident", "body_markdown")
        return ("incident", "author", "published_at", "pdf", "body_markdown", "preview")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("incident", "author", "published_at", "pdf", "preview")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="preview (as customers see it)")
    def preview(self, obj: RootCauseAnalysis) -> str:
        # Sanitised by nh3 in rca_html: safe to mark so.
        return mark_safe(f'<div class="rca-preview">{reports.rca_html(obj)}</div>')  # noqa: S308

    @admin.display(description="PDF")
    def pdf(self, obj: RootCauseAnalysis) -> str:
        return format_html('<a href="{}">Download PDF</a>', reverse("admin:incidents_rca_pdf", args=[obj.pk]))

    def save_model(self, request, obj, form, change):
        saved = reports.rca_save(
            incident=obj.incident, acting_user=request.user, body_markdown=form.cleaned_data["body_markdown"]
        )
        _copy_into(obj, saved)

    @admin.action(description="Publish selected RCAs to customers", permissions=["change"])
    def publish_selected(self, request, queryset):
        for rca in queryset:
            try:
                reports.rca_publish(rca=rca, acting_user=request.user)
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, f"{rca}: {_error_text(exc)}", messages.ERROR)
            else:
                self.message_user(request, f"{rca} published; open RCA requests delivered.", messages.SUCCESS)

    def get_urls(self):
        return [
            path("<int:pk>/rca.pdf", self.admin_site.admin_view(self.pdf_view), name="incidents_rca_pdf"),
            *super().get_urls(),
        ]

    def pdf_view(self, request, pk: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        rca = get_object_or_404(RootCauseAnalysis.objects.select_related("incident"), pk=pk)
        response = HttpResponse(reports.rca_pdf(rca), content_type="application/pdf")
        response["Content-Disposition"] = content_disposition_header(True, f"rca-incident-{rca.incident_id}.pdf")
        response["X-Content-Type-Options"] = "nosniff"
        return response


# --- report requests ------------------------------------------------------------------------


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "Overdue (past the 7-day limit)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(delivered_at__isnull=True, due_limit__lt=uk_date(timezone.now()))
        return queryset


@admin.register(ReportRequest, site=site)
class ReportRequestAdmin(admin.ModelAdmin):
    """Customers' requests for the complete report or the RCA, with their due dates."""

    list_display = (
        "incident",
        "organisation",
        "kind",
        "requested_at",
        "due_target",
        "due_limit",
        "overdue",
        "delivered_at",
        "reminder_sent_at",
    )
    list_filter = ("kind", ("delivered_at", admin.EmptyFieldListFilter), OverdueFilter)
    list_select_related = ("incident", "organisation")
    actions = ("deliver_selected",)
    date_hierarchy = "requested_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # customers request in the portal

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="overdue", boolean=True)
    def overdue(self, obj: ReportRequest) -> bool:
        return reports.report_request_is_overdue(obj)

    def save_model(self, request, obj, form, change):
        pass  # every field is read-only; delivery goes through the action

    @admin.action(description="Mark selected reports delivered", permissions=["change"])
    def deliver_selected(self, request, queryset):
        for report_request in queryset:
            try:
                reports.report_request_deliver(request=report_request, acting_user=request.user)
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, f"{report_request}: {_error_text(exc)}", messages.ERROR)
            else:
                self.message_user(request, f"{report_request} delivered.", messages.SUCCESS)
