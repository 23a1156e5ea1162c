"""Admin for law-enforcement requests (C27).

Thin: every change is a call to `governance.legal.services`; a ValidationError becomes
form errors, PermissionDenied a 403 (wrong role) or a form error (a rule about people,
such as the second reviewer). Requests are never edited directly.
"""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AdminDateWidget, AdminSplitDateTime
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import content_disposition_header
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from assyst.admin_site import site
from governance.access.admin_support import time_left
from governance.core.admin import ServiceCreatedAdmin
from governance.legal import services
from governance.legal.models import (
    CustomerNotice,
    DataKind,
    Decision,
    Instrument,
    LegalDocument,
    LegalRequest,
    NonDisclosureOrder,
)
from governance.tenancy.models import Organisation

Status = LegalRequest.Status
YES_NO = [("yes", "Yes"), ("no", "No")]


def _when(at: datetime | None) -> str:
    return f"{timezone.localtime(at):%Y-%m-%d %H:%M} UTC" if at else "-"


def _add_service_errors(form: forms.Form, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, errors in error.error_dict.items():
        form.add_error(name if name in form.fields else None, errors)


def _yes_no(label: str) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label=label, choices=YES_NO, coerce=lambda v: v == "yes", widget=forms.RadioSelect, empty_value=None
    )


# --- forms: each one's `run` calls exactly one service ------------------------------------------


class RequestAddForm(forms.Form):
    agency = forms.CharField(max_length=200)
    jurisdiction_country = forms.CharField(
        max_length=2, label="Jurisdiction (country)", help_text="ISO 3166-1 code, e.g. GB, US, DE."
    )
    jurisdiction_detail = forms.CharField(max_length=200, required=False, label="Jurisdiction (detail)")
    instrument = forms.ChoiceField(choices=Instrument.choices)
    received_at = forms.SplitDateTimeField(widget=AdminSplitDateTime, initial=timezone.now, help_text="UTC.")
    response_deadline = forms.SplitDateTimeField(widget=AdminSplitDateTime, help_text="UTC.")
    organisations = forms.ModelMultipleChoiceField(queryset=Organisation.objects.none())
    data_kinds = forms.MultipleChoiceField(
        choices=DataKind.choices, widget=forms.CheckboxSelectMultiple, label="Data asked for"
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 5, "cols": 70}), help_text="Stored encrypted.")

    acting_user = None  # set by LegalRequestAdmin.get_form

    def __init__(self, *args, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance or LegalRequest()
        self.fields["organisations"].queryset = Organisation.objects.order_by("name")

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.instance = services.legal_request_create(acting_user=self.acting_user, **cleaned)
        except ValidationError as e:
            _add_service_errors(self, e)
        except PermissionDenied as e:
            self.add_error(None, str(e))
        return cleaned

    # The admin's add view calls these; the service has already saved everything.
    def save(self, commit: bool = True) -> LegalRequest:
        return self.instance

    def save_m2m(self) -> None:
        pass


class ReviewForm(forms.Form):
    legal_process = _yes_no("Issued under applicable legal process?")
    valid_and_binding = _yes_no("Valid and binding?")
    within_jurisdiction = _yes_no("Within the agency's jurisdiction?")
    scope_not_overbroad = _yes_no("Scope no broader than necessary?")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 70}))

    def run(self, obj: LegalRequest, user) -> str:
        services.checklist_complete(request=obj, acting_user=user, **self.cleaned_data)
        return "Review recorded."


class DecideForm(forms.Form):
    outcome = forms.ChoiceField(choices=Decision.Outcome.choices, widget=forms.RadioSelect)
    objection_text = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 5, "cols": 70}), help_text="Required to object."
    )
    objected_on = forms.DateField(
        required=False, widget=AdminDateWidget, label="Objection date", help_text="Required to object."
    )
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 70}))

    def run(self, obj: LegalRequest, user) -> str:
        decision = services.legal_request_decide(request=obj, acting_user=user, **self.cleaned_data)
        return f"Decision recorded: {decision.get_outcome_display().lower()}."


class NoticeForm(forms.Form):
    organisation = forms.ModelChoiceField(queryset=Organisation.objects.none())
    notified_at = forms.SplitDateTimeField(widget=AdminSplitDateTime, initial=timezone.now, help_text="UTC.")
    method = forms.ChoiceField(choices=CustomerNotice.Method.choices)

    def __init__(self, *args, legal_request: LegalRequest, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organisation"].queryset = legal_request.organisations.with_scopes_disabled().order_by("name")

    def run(self, obj: LegalRequest, user) -> str:
        services.customer_notice_record(request=obj, acting_user=user, **self.cleaned_data)
        return f"Notice to {self.cleaned_data['organisation']} recorded."


class OrderForm(forms.Form):
    reference = forms.CharField(max_length=200)
    expires_on = forms.DateField(widget=AdminDateWidget, help_text="Last day the order is in force.")

    def run(self, obj: LegalRequest, user) -> str:
        services.ndo_record(request=obj, acting_user=user, **self.cleaned_data)
        return "Order recorded. It counts once a second legal reviewer signs it off."


class DisclosureForm(forms.Form):
    what = forms.CharField(label="What was disclosed", widget=forms.Textarea(attrs={"rows": 4, "cols": 70}))
    disclosed_to = forms.CharField(max_length=300, label="Disclosed to")
    disclosed_at = forms.SplitDateTimeField(widget=AdminSplitDateTime, initial=timezone.now, help_text="UTC.")

    def run(self, obj: LegalRequest, user) -> str:
        services.disclosure_record(request=obj, acting_user=user, **self.cleaned_data)
        return "Disclosure recorded."


class DocumentForm(forms.Form):
    title = forms.CharField(max_length=200)
    uploaded_file = forms.FileField(label="File", help_text="PDF, PNG, JPEG or text; stored encrypted.")

    def run(self, obj: LegalRequest, user) -> str:
        services.legal_document_add(request=obj, acting_user=user, **self.cleaned_data)
        return "Document stored (encrypted)."


ACTIONS = {
    "review": (ReviewForm, "Review checklist", "Record the review"),
    "decide": (DecideForm, "Decide", "Record the decision"),
    "notify": (NoticeForm, "Record a customer notice", "Record the notice"),
    "order": (OrderForm, "Record a non-disclosure order", "Record the order"),
    "disclose": (DisclosureForm, "Record a disclosure", "Record the disclosure"),
    "document": (DocumentForm, "Add a document", "Upload"),
}


# --- the request admin --------------------------------------------------------------------------


class DeadlineFilter(admin.SimpleListFilter):
    title = "response deadline"
    parameter_name = "deadline"

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue"), ("soon", "Within 2 days"), ("later", "Later")]

    def queryset(self, request, queryset):
        now = timezone.now()
        live = queryset.filter(status__in=[Status.RECEIVED, Status.REVIEWED, Status.DECIDED])
        if self.value() == "overdue":
            return live.filter(response_deadline__lte=now)
        if self.value() == "soon":
            return live.filter(response_deadline__gt=now, response_deadline__lte=now + services.DEADLINE_WARNING)
        if self.value() == "later":
            return live.filter(response_deadline__gt=now + services.DEADLINE_WARNING)
        return queryset


@admin.register(LegalRequest, site=site)
class LegalRequestAdmin(ServiceCreatedAdmin):
    """Legal requests: registered, reviewed, decided, notices, orders and disclosures, all
    through the pages linked from a request; read-only otherwise."""

    add_form = RequestAddForm
    add_form_user_attr = "acting_user"

    list_display = (
        "__str__",
        "agency",
        "jurisdiction",
        "instrument",
        "received_at",
        "deadline",
        "status",
        "outcome",
        "organisation_count",
    )
    list_filter = ("status", DeadlineFilter, "instrument", "jurisdiction_country")
    list_select_related = ("decision",)
    search_fields = ("agency",)
    date_hierarchy = "received_at"
    detail_fieldsets = (
        (
            "Request",
            {
                "fields": (
                    "agency",
                    "jurisdiction",
                    "instrument",
                    "received_at",
                    "deadline",
                    "status",
                    "organisation_list",
                    "kinds",
                    "description",
                    "created_by",
                )
            },
        ),
        ("Documents", {"fields": ("document_list",)}),
        ("Review", {"fields": ("checklist_summary",)}),
        ("Decision", {"fields": ("decision_summary",)}),
        ("Customers", {"fields": ("notice_list",)}),
        ("Non-disclosure orders", {"fields": ("order_list",)}),
        ("Disclosures", {"fields": ("disclosure_list",)}),
    )
    change_form_template = "admin/legal/legalrequest/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_organisations=Count("organisations", distinct=True))

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # --- columns and read-only fields

    @admin.display(description="jurisdiction", ordering="jurisdiction_country")
    def jurisdiction(self, obj: LegalRequest) -> str:
        return (
            f"{obj.jurisdiction_country} ({obj.jurisdiction_detail})"
            if obj.jurisdiction_detail
            else obj.jurisdiction_country
        )

    @admin.display(description="response deadline", ordering="response_deadline")
    def deadline(self, obj: LegalRequest) -> str:
        if not obj.open:
            return _when(obj.response_deadline)
        return f"{_when(obj.response_deadline)} ({time_left(obj.response_deadline, timezone.now(), past='overdue')})"

    @admin.display(description="decision")
    def outcome(self, obj: LegalRequest) -> str:
        try:
            decision = obj.decision
        except Decision.DoesNotExist:
            return "-"
        return decision.get_outcome_display()

    @admin.display(description="organisations", ordering="_organisations")
    def organisation_count(self, obj: LegalRequest) -> int:
        return obj._organisations

    @admin.display(description="organisations")
    def organisation_list(self, obj: LegalRequest) -> str:
        return ", ".join(o.name for o in obj.organisations.with_scopes_disabled().order_by("name")) or "-"

    @admin.display(description="data asked for")
    def kinds(self, obj: LegalRequest) -> str:
        return ", ".join(DataKind(k).label for k in obj.data_kinds if k in DataKind.values) or "-"

    @admin.display(description="documents")
    def document_list(self, obj: LegalRequest) -> str:
        rows = [
            (
                reverse("admin:legal_legalrequest_document", args=[obj.pk, d.pk]),
                d.title,
                d.original_name,
                _when(d.uploaded_at),
            )
            for d in obj.documents.all()
        ]
        if not rows:
            return "none"
        return format_html_join(mark_safe("<br>"), '<a href="{}">{}</a> ({}, {}; download audited)', rows)

    @admin.display(description="checklist")
    def checklist_summary(self, obj: LegalRequest) -> str:
        checklist = getattr(obj, "checklist", None)  # reverse one-to-one: missing -> None
        if checklist is None:
            return "not reviewed yet: no decision can be made before the review"
        answers = [
            (label, "yes" if getattr(checklist, name) else "NO")
            for name, label in (
                ("legal_process", "Issued under applicable legal process"),
                ("valid_and_binding", "Valid and binding"),
                ("within_jurisdiction", "Within the agency's jurisdiction"),
                ("scope_not_overbroad", "Scope no broader than necessary"),
            )
        ]
        body = format_html_join(mark_safe("<br>"), "{}: {}", answers)
        return format_html(
            "{}<br>Reviewed by {} on {}{}",
            body,
            checklist.reviewer,
            _when(checklist.reviewed_at),
            format_html("<br>Notes: {}", checklist.notes) if checklist.notes else "",
        )

    @admin.display(description="decision")
    def decision_summary(self, obj: LegalRequest) -> str:
        try:
            decision = obj.decision
        except Decision.DoesNotExist:
            return "not decided"
        objection = ""
        if decision.outcome == Decision.Outcome.OBJECT:
            objection = format_html("<br>Objection of {}: {}", decision.objected_on, decision.objection_text)
        return format_html(
            "{} by {} on {}{}{}",
            decision.get_outcome_display(),
            decision.decided_by,
            _when(decision.decided_at),
            objection,
            format_html("<br>Notes: {}", decision.notes) if decision.notes else "",
        )

    @admin.display(description="customer notices")
    def notice_list(self, obj: LegalRequest) -> str:
        notices = {n.organisation_id: n for n in obj.notices.select_related("notified_by")}
        rows = []
        for org in obj.organisations.with_scopes_disabled().order_by("name"):
            notice = notices.get(org.pk)
            state = (
                f"told {_when(notice.notified_at)} by {notice.get_method_display().lower()} ({notice.notified_by})"
                if notice
                else "NOT TOLD YET"
            )
            rows.append((org.name, state))
        return format_html_join(mark_safe("<br>"), "{}: {}", rows) if rows else "-"

    @admin.display(description="orders")
    def order_list(self, obj: LegalRequest) -> str:
        today = timezone.localdate()
        rows = []
        for order in obj.nondisclosure_orders.select_related("recorded_by", "signed_off_by"):
            signed = (
                f"signed off by {order.signed_off_by} on {_when(order.signed_off_at)}"
                if order.signed_off_at
                else "awaiting sign-off by a second reviewer"
            )
            state = "in force" if order.in_force(today) else "EXPIRED"
            rows.append((order.reference, order.expires_on, state, order.recorded_by, signed))
        if not rows:
            return "none"
        return format_html_join(mark_safe("<br>"), "{}: until {} ({}), recorded by {}, {}", rows)

    @admin.display(description="disclosures")
    def disclosure_list(self, obj: LegalRequest) -> str:
        rows = [
            (
                _when(d.disclosed_at),
                d.disclosed_to,
                d.disclosed_by,
                d.what,
                " under a non-disclosure order" if d.under_order_id else "",
            )
            for d in obj.disclosures.select_related("disclosed_by")
        ]
        if not rows:
            return "none"
        return format_html_join(mark_safe("<br>"), "{} to {} by {}: {}{}", rows)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"may_act": services.is_legal_counsel(request.user)}
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and extra["may_act"]:
            extra["unsigned_orders"] = [
                o
                for o in obj.nondisclosure_orders.filter(signed_off_at__isnull=True)
                if o.recorded_by_id != request.user.pk
            ]
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    # --- the action pages

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/do/<slug:action>/", view(self.action_view), name="legal_legalrequest_action"),
            path(
                "<path:object_id>/orders/<int:order_id>/sign-off/",
                view(require_POST(self.sign_off_view)),
                name="legal_legalrequest_sign_off",
            ),
            path(
                "<path:object_id>/documents/<int:document_id>/",
                view(self.document_view),
                name="legal_legalrequest_document",
            ),
            *super().get_urls(),
        ]

    def _get_or_404(self, request, object_id: str) -> LegalRequest:
        if not self.has_view_permission(request):
            raise PermissionDenied("You cannot view legal requests.")
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such legal request.")
        return obj

    def action_view(self, request, object_id: str, action: str):
        if action not in ACTIONS:
            raise Http404("No such page.")
        if not services.is_legal_counsel(request.user):
            raise PermissionDenied("Only legal counsel can act on legal requests.")
        obj = self._get_or_404(request, object_id)
        form_class, title, submit = ACTIONS[action]
        kwargs = {"legal_request": obj} if form_class is NoticeForm else {}
        form = form_class(request.POST or None, request.FILES or None, **kwargs)
        change_url = reverse("admin:legal_legalrequest_change", args=[obj.pk])
        if request.method == "POST" and form.is_valid():
            try:
                done = form.run(obj, request.user)
            except ValidationError as e:
                _add_service_errors(form, e)
            except PermissionDenied as e:
                form.add_error(None, str(e))
            else:
                self.message_user(request, done, messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": str(obj),
            "opts": self.opts,
            "original": obj,
            "form": form,
            "submit": submit,
            "change_url": change_url,
            "deadline": self.deadline(obj),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/legal/legalrequest/action.html", context)

    def sign_off_view(self, request, object_id: str, order_id: int):
        if not services.is_legal_counsel(request.user):
            raise PermissionDenied("Only legal counsel can sign off non-disclosure orders.")
        obj = self._get_or_404(request, object_id)
        order = get_object_or_404(NonDisclosureOrder, pk=order_id, request=obj)
        try:
            services.ndo_sign_off(order=order, acting_user=request.user)
        except (ValidationError, PermissionDenied) as e:
            text = " ".join(e.messages) if isinstance(e, ValidationError) else str(e)
            self.message_user(request, text, messages.ERROR)
        else:
            self.message_user(request, f"Order {order.reference} signed off.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:legal_legalrequest_change", args=[obj.pk]))

    def document_view(self, request, object_id: str, document_id: int):
        obj = self._get_or_404(request, object_id)
        document = get_object_or_404(LegalDocument, pk=document_id, request=obj)
        data, filename, content_type = services.legal_document_open(document=document, user=request.user)
        response = HttpResponse(data, content_type=content_type)
        response["Content-Disposition"] = content_disposition_header(True, filename)
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, no-store"
        return response
