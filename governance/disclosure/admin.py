"""Triage of vulnerability reports in the staff admin (C11).

Thin: reports arrive only through the public form; every change is a service call
(`report_transition`, `report_link_incident`) from the two pages below, and a
service's ValidationError becomes form errors. The reporter's contact address is
shown only to security officers (`policies.can(user, "view_contact")`).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from assyst.admin_site import site
from governance.core.forms import add_service_errors
from governance.disclosure import policies, services
from governance.disclosure.forms import LinkIncidentForm, TransitionForm
from governance.disclosure.models import ReportEvent, VulnerabilityReport
from incidents.workdays import uk_date


def _may(request, action: policies.Action) -> bool:
    """Asked once per request (group lookups cost queries), then remembered for every row."""
    cache = request.__dict__.setdefault("_disclosure_may", {})
    if action not in cache:
        cache[action] = policies.can(request.user, action)
    return cache[action]


class ReportEventInline(admin.TabularInline):
    model = ReportEvent
    fields = ("at", "acting_user", "from_status", "to_status", "note")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "triage step"
    verbose_name_plural = "triage history"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("acting_user")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ResponseStateFilter(admin.SimpleListFilter):
    title = "first response"
    parameter_name = "response"

    def lookups(self, request, model_admin):
        return [("waiting", "Awaiting first response"), ("overdue", "Past the target"), ("responded", "Responded")]

    def queryset(self, request, queryset):
        today = uk_date(timezone.now())
        if self.value() == "waiting":
            return queryset.filter(first_response_at__isnull=True)
        if self.value() == "overdue":
            return queryset.filter(first_response_at__isnull=True, first_response_due__lt=today)
        if self.value() == "responded":
            return queryset.filter(first_response_at__isnull=False)
        return queryset


@admin.register(VulnerabilityReport, site=site)
class VulnerabilityReportAdmin(admin.ModelAdmin):
    list_display = (
        "reference",
        "summary",
        "affected_product",
        "status",
        "severity",
        "received_at",
        "first_response_due",
        "response",
        "original_link",
        "incident_link",
    )
    list_filter = ("status", ResponseStateFilter, "cvss_severity")
    list_select_related = ("duplicate_of", "incident")
    search_fields = ("reference", "summary", "affected_product")
    date_hierarchy = "received_at"
    inlines = [ReportEventInline]
    change_form_template = "admin/disclosure/vulnerabilityreport/change_form.html"

    report_fields = (
        "reference",
        "summary",
        "affected_product",
        "steps_to_reproduce",
        "impact",
        "cvss_vector",
        "cvss_base_score",
        "cvss_severity",
    )
    triage_fields = (
        "status",
        "received_at",
        "first_response_due",
        "response",
        "first_response_at",
        "reminded_at",
        "overdue_notified_at",
        "original_link",
        "incident_link",
    )

    # --- permissions: reports come from the public form; changes only through the services

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_fieldsets(self, request, obj=None):
        reporter = ("reporter_contact",) if _may(request, "view_contact") else ("reporter_contact_hidden",)
        return (
            ("Report", {"fields": self.report_fields}),
            ("Reporter", {"fields": reporter}),
            ("Triage", {"fields": self.triage_fields}),
        )

    def get_readonly_fields(self, request, obj=None):
        return [f for _, opts in self.get_fieldsets(request, obj) for f in opts["fields"]]

    # --- columns and read-only fields (none of them queries per row)

    @admin.display(description="CVSS", ordering="cvss_base_score")
    def severity(self, obj: VulnerabilityReport) -> str:
        return f"{obj.cvss_base_score} {obj.cvss_severity}" if obj.cvss_vector else "-"

    @admin.display(description="first response")
    def response(self, obj: VulnerabilityReport) -> str:
        return services.response_state(obj)

    @admin.display(description="duplicate of")
    def original_link(self, obj: VulnerabilityReport) -> str:
        if obj.duplicate_of_id is None:
            return "-"
        url = reverse("admin:disclosure_vulnerabilityreport_change", args=[obj.duplicate_of_id])
        return format_html('<a href="{}">{}</a>', url, obj.duplicate_of.reference)

    @admin.display(description="incident")
    def incident_link(self, obj: VulnerabilityReport) -> str:
        if obj.incident_id is None:
            return "-"
        url = reverse("admin:incidents_incident_change", args=[obj.incident_id])
        return format_html('<a href="{}">#{} {}</a>', url, obj.incident_id, obj.incident.title)

    @admin.display(description="contact email")
    def reporter_contact(self, obj: VulnerabilityReport) -> str:
        return obj.contact_email or "none given (anonymous)"

    @admin.display(description="contact email")
    def reporter_contact_hidden(self, obj: VulnerabilityReport) -> str:
        return "shown to security officers only" if obj.contact_email else "none given (anonymous)"

    # --- the transition and incident pages

    def get_urls(self):
        return [
            path(
                "<path:object_id>/transition/",
                self.admin_site.admin_view(self.transition_view),
                name="disclosure_vulnerabilityreport_transition",
            ),
            path(
                "<path:object_id>/incident/",
                self.admin_site.admin_view(self.incident_view),
                name="disclosure_vulnerabilityreport_incident",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        extra = {}
        if obj is not None and _may(request, "triage"):
            extra = {"may_transition": bool(services.allowed_transitions(obj)), "may_link_incident": True}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def _triage_target(self, request, object_id: str) -> VulnerabilityReport:
        if not _may(request, "triage"):
            raise PermissionDenied("Only a security officer can triage vulnerability reports.")
        obj = self.get_object(request, unquote(object_id))
        if obj is None or not self.has_view_permission(request, obj):
            raise Http404("No such vulnerability report.")
        return obj

    def _page(self, request, obj, form, title: str, button: str):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": str(obj),
            "opts": self.opts,
            "original": obj,
            "form": form,
            "button": button,
            "change_url": reverse("admin:disclosure_vulnerabilityreport_change", args=[obj.pk]),
            "response": services.response_state(obj),
        }
        return TemplateResponse(request, "admin/disclosure/vulnerabilityreport/action.html", context)

    def transition_view(self, request, object_id: str):
        obj = self._triage_target(request, object_id)
        form = TransitionForm(request.POST or None, report=obj)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                services.report_transition(
                    report=obj,
                    acting_user=request.user,
                    to_status=data["to_status"],
                    note=data["note"],
                    duplicate_of=data["duplicate_of"],
                )
            except ValidationError as e:
                add_service_errors(form, e)
            else:
                label = VulnerabilityReport.Status(data["to_status"]).label.lower()
                self.message_user(request, f"{obj.reference} is now {label}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:disclosure_vulnerabilityreport_change", args=[obj.pk]))
        return self._page(request, obj, form, "Change the status of a vulnerability report", "Change status")

    def incident_view(self, request, object_id: str):
        obj = self._triage_target(request, object_id)
        form = LinkIncidentForm(request.POST or None, initial={"incident": obj.incident_id})
        if request.method == "POST" and form.is_valid():
            incident = form.cleaned_data["incident"]
            try:
                services.report_link_incident(
                    report=obj, acting_user=request.user, incident=incident, note=form.cleaned_data["note"]
                )
            except ValidationError as e:
                add_service_errors(form, e)
            else:
                done = f"linked to incident #{incident.pk}" if incident else "no longer linked to an incident"
                self.message_user(request, f"{obj.reference} is {done}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:disclosure_vulnerabilityreport_change", args=[obj.pk]))
        return self._page(request, obj, form, "Link a vulnerability report to an incident", "Save link")
