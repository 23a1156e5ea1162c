"""Admin for support-access requests, grants and the access log (C02-C04).

Thin: every change goes through `governance.access.services`. A service's
ValidationError becomes form errors, its PermissionDenied a 403 or a form error;
nothing here writes a model directly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from assyst.admin_site import site
from governance.access import services
from governance.access.models import AccessLogEntry, DataScope, ReasonType, SupportAccessRequest, SupportGrant
from governance.core.admin import ReadOnlyAdmin, ServiceCreatedAdmin
from governance.tenancy.models import Organisation

Status = SupportAccessRequest.Status


# --- helpers --------------------------------------------------------------------------------------


def time_left(until: datetime, now: datetime, *, past: str = "expired") -> str:
    """'3 h 12 min left', '12 min left' or `past` once `until` is reached."""
    seconds = int((until - now).total_seconds())
    if seconds <= 0:
        return past
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes} min left"
    return f"{minutes} min left" if minutes else "less than a minute left"


def _when(at: datetime | None) -> str:
    return f"{timezone.localtime(at):%Y-%m-%d %H:%M} UTC" if at else "-"


def _scope_labels(scope: list[str]) -> str:
    return ", ".join(DataScope(s).label for s in scope if s in DataScope.values) or "-"


def _add_service_errors(form: forms.Form, error: ValidationError, field_map: dict[str, str] | None = None) -> None:
    """Put a service's ValidationError on the form: its fields where the form has them."""
    field_map = field_map or {}
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, errors in error.error_dict.items():
        field = field_map.get(name, name)
        form.add_error(field if field in form.fields else None, errors)


def _is_internal_approver(request) -> bool:
    """Asked once per request (it costs a query), then remembered for every row."""
    if not hasattr(request, "_support_is_internal_approver"):
        request._support_is_internal_approver = services.is_internal_approver(request.user)
    return request._support_is_internal_approver


# --- requests -------------------------------------------------------------------------------------


class SupportRequestAddForm(forms.Form):
    """A support engineer's request. Saving it is `services.support_request_create`.

    The service validates and creates in one step, so it runs at the end of `clean()`:
    its ValidationError lands on this form's fields. The admin wraps the whole POST in
    one transaction, so nothing is left behind if anything later fails.
    """

    organisation = forms.ModelChoiceField(queryset=Organisation.objects.none())
    reason_type = forms.ChoiceField(choices=ReasonType.choices)
    ticket_reference = forms.CharField(max_length=100, label="Ticket")
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 60}))
    scope = forms.MultipleChoiceField(
        choices=DataScope.choices, widget=forms.CheckboxSelectMultiple, label="Data needed"
    )
    requested_start = forms.SplitDateTimeField(
        label="Start", widget=AdminSplitDateTime, initial=timezone.now, help_text="UTC."
    )
    duration_hours = forms.IntegerField(label="Duration (hours)", min_value=1, initial=4)
    named_staff = forms.ModelMultipleChoiceField(
        queryset=services.eligible_staff().none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="Only support engineers on the roster can be named (need-to-know).",
        error_messages={"invalid_choice": "Only active support engineers can be named; %(value)s is not one."},
    )

    # Service error keys that have a differently named field here.
    FIELD_MAP = {"requested_duration": "duration_hours"}
    requester = None  # set by SupportAccessRequestAdmin.get_form

    def __init__(self, *args, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance or SupportAccessRequest()
        self.fields["organisation"].queryset = Organisation.objects.filter(status=Organisation.Status.ACTIVE)
        self.fields["named_staff"].queryset = services.eligible_staff()
        self.fields["named_staff"].help_text += f" At most {services.max_named_staff()}."

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.instance = services.support_request_create(
                organisation=cleaned["organisation"],
                requester=self.requester,
                reason_type=cleaned["reason_type"],
                ticket_reference=cleaned["ticket_reference"],
                justification=cleaned["justification"],
                scope=cleaned["scope"],
                requested_start=cleaned["requested_start"],
                requested_duration=timedelta(hours=cleaned["duration_hours"]),
                named_staff=cleaned["named_staff"],
            )
        except ValidationError as e:
            _add_service_errors(self, e, self.FIELD_MAP)
        except PermissionDenied as e:
            self.add_error(None, str(e))
        return cleaned

    # The admin's add view calls these; the service has already saved everything.
    def save(self, commit: bool = True) -> SupportAccessRequest:
        return self.instance

    def save_m2m(self) -> None:
        pass


class DecideForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("deny", "Deny")], widget=forms.RadioSelect, label="Internal decision"
    )
    reason = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text="Required to deny."
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("decision") == "deny" and not cleaned.get("reason", "").strip():
            self.add_error("reason", "Say why the request is denied.")
        return cleaned


class RevokeForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


@admin.register(SupportAccessRequest, site=site)
class SupportAccessRequestAdmin(ServiceCreatedAdmin):
    """Requests: added by support engineers, decided internally by security officers.

    Read-only once made: the decide and cancel pages are the only ways to change one.
    """

    add_form = SupportRequestAddForm
    add_form_user_attr = "requester"

    list_display = (
        "organisation",
        "ticket_reference",
        "requester",
        "status",
        "internal_decision",
        "customer_decision",
        "deadline",
        "named",
        "created_at",
    )
    list_filter = ("status", "organisation", "reason_type")
    list_select_related = ("organisation", "requester")
    search_fields = ("ticket_reference",)
    add_fields = (
        "organisation",
        "reason_type",
        "ticket_reference",
        "justification",
        "scope",
        "requested_start",
        "duration_hours",
        "named_staff",
    )
    detail_fieldsets = (
        (
            "Request",
            {
                "fields": (
                    "organisation",
                    "reason_type",
                    "ticket_reference",
                    "requester",
                    "justification",
                    "scope_display",
                    "window",
                    "named",
                    "created_at",
                )
            },
        ),
        ("Status", {"fields": ("status", "deadline", "closed_at", "grant_link")}),
        (
            "Internal approval",
            {"fields": ("internal_decision", "internal_decided_by", "internal_decided_at", "internal_reason")},
        ),
        (
            "Customer consent",
            {"fields": ("customer_decision", "customer_decided_by", "customer_decided_at", "customer_reason")},
        ),
    )
    change_form_template = "admin/access/supportaccessrequest/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("named_staff")

    # --- permissions: add through the service, never change or delete directly

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @staticmethod
    def may_decide(request) -> bool:
        return request.user.has_perm("access.decide_internal")

    @staticmethod
    def may_cancel(request, obj: SupportAccessRequest) -> bool:
        return obj.requester_id == request.user.pk or _is_internal_approver(request)

    # --- columns and read-only fields

    @admin.display(description="decision deadline", ordering="decision_deadline")
    def deadline(self, obj: SupportAccessRequest) -> str:
        if obj.status != Status.PENDING:
            return _when(obj.decision_deadline)
        return f"{_when(obj.decision_deadline)} ({time_left(obj.decision_deadline, timezone.now())})"

    @admin.display(description="named staff")
    def named(self, obj: SupportAccessRequest) -> str:
        return ", ".join(u.username for u in obj.named_staff.all()) or "-"

    @admin.display(description="data needed")
    def scope_display(self, obj: SupportAccessRequest) -> str:
        return _scope_labels(obj.scope)

    @admin.display(description="requested window")
    def window(self, obj: SupportAccessRequest) -> str:
        hours = obj.requested_duration.total_seconds() / 3600
        return f"{_when(obj.requested_start)} for {hours:g} h (until {_when(obj.requested_end)})"

    @admin.display(description="grant")
    def grant_link(self, obj: SupportAccessRequest) -> str:
        grant = SupportGrant.objects.filter(request=obj).first()
        if grant is None:
            return "none (issued once both decisions approve)"
        url = reverse("admin:access_supportgrant_change", args=[grant.pk])
        return format_html('<a href="{}">Grant #{}</a> ({})', url, grant.pk, grant.state(timezone.now()))

    # --- the decide and cancel pages

    def get_urls(self):
        return [
            path(
                "<path:object_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="access_supportaccessrequest_decide",
            ),
            path(
                "<path:object_id>/cancel/",
                self.admin_site.admin_view(require_POST(self.cancel_view)),
                name="access_supportaccessrequest_cancel",
            ),
            *super().get_urls(),
        ]

    def _get_or_404(self, request, object_id: str) -> SupportAccessRequest:
        obj = self.get_object(request, unquote(object_id))
        if obj is None or not self.has_view_permission(request, obj):
            raise Http404("No such support-access request.")
        return obj

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        extra = {}
        if obj is not None and obj.status == Status.PENDING:
            extra = {
                "may_decide": obj.internal_decision == SupportAccessRequest.Decision.PENDING
                and self.may_decide(request),
                "may_cancel": self.may_cancel(request, obj),
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def decide_view(self, request, object_id: str):
        if not self.may_decide(request):
            raise PermissionDenied("Only a security officer can give the internal approval.")
        obj = self._get_or_404(request, object_id)
        change_url = reverse("admin:access_supportaccessrequest_change", args=[obj.pk])
        form = DecideForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            approve = form.cleaned_data["decision"] == "approve"
            try:
                services.support_request_decide_internal(
                    request=obj, acting_user=request.user, approve=approve, reason=form.cleaned_data["reason"]
                )
            except ValidationError as e:
                _add_service_errors(form, e)
            except PermissionDenied as e:
                form.add_error(None, str(e))
            else:
                done = "approved; the customer's consent is still needed" if approve else "denied"
                obj.refresh_from_db()
                if obj.status == Status.APPROVED:
                    done = "approved; both decisions are in and the grant is issued"
                self.message_user(request, f"Internal decision recorded: {done}.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Decide on a support-access request",
            "subtitle": str(obj),
            "opts": self.opts,
            "original": obj,
            "form": form,
            "change_url": change_url,
            "self_involved": obj.requester_id == request.user.pk
            or any(u.pk == request.user.pk for u in obj.named_staff.all()),
            "scope_labels": _scope_labels(obj.scope),
            "window": self.window(obj),
            "deadline": self.deadline(obj),
        }
        return TemplateResponse(request, "admin/access/supportaccessrequest/decide.html", context)

    def cancel_view(self, request, object_id: str):
        obj = self._get_or_404(request, object_id)
        if not self.may_cancel(request, obj):
            raise PermissionDenied("Only the requester or a security officer can cancel a request.")
        try:
            services.support_request_cancel(request=obj, acting_user=request.user)
        except ValidationError as e:
            self.message_user(request, " ".join(e.messages), messages.ERROR)
        else:
            self.message_user(request, "The request is cancelled.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:access_supportaccessrequest_change", args=[obj.pk]))


# --- grants ---------------------------------------------------------------------------------------


class GrantStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("scheduled", "Scheduled"), ("active", "Active"), ("ended", "Ended"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        now = timezone.now()
        live = Q(revoked_at__isnull=True)
        conditions = {
            "scheduled": live & Q(starts_at__gt=now),
            "active": live & Q(starts_at__lte=now, ends_at__gt=now),
            "ended": live & Q(ends_at__lte=now),
            "revoked": Q(revoked_at__isnull=False),
        }
        condition = conditions.get(self.value())
        return queryset.filter(condition) if condition is not None else queryset


@admin.register(SupportGrant, site=site)
class SupportGrantAdmin(admin.ModelAdmin):
    """Grants are issued by the service when both decisions approve; here they are
    listed and revoked (security officer or a named staff member), never edited."""

    list_display = ("__str__", "organisation", "staff_list", "scope_display", "starts_at", "ends_at", "state", "left")
    list_filter = ("organisation", GrantStateFilter)
    list_select_related = ("organisation",)
    fieldsets = (
        (
            "Grant",
            {
                "fields": (
                    "organisation",
                    "request_link",
                    "staff_list",
                    "scope_display",
                    "starts_at",
                    "ends_at",
                    "state",
                    "left",
                    "customer_data",
                )
            },
        ),
        ("Revocation", {"fields": ("revoked_at", "revoked_by", "revoke_reason", "permissions_removed_at")}),
    )
    change_form_template = "admin/access/supportgrant/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("staff")

    def get_readonly_fields(self, request, obj=None):
        return [f for _, opts in self.fieldsets for f in opts["fields"]]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @staticmethod
    def _named(request, grant: SupportGrant) -> bool:
        # From the prefetched staff: no query per row.
        return any(u.pk == request.user.pk for u in grant.staff.all())

    def may_revoke(self, request, grant: SupportGrant) -> bool:
        """services.can_revoke for staff, from the prefetch (no query per row)."""
        return _is_internal_approver(request) or (request.user.is_staff and self._named(request, grant))

    # --- columns and read-only fields

    @admin.display(description="staff")
    def staff_list(self, obj: SupportGrant) -> str:
        return ", ".join(u.username for u in obj.staff.all()) or "-"

    @admin.display(description="scope")
    def scope_display(self, obj: SupportGrant) -> str:
        return _scope_labels(obj.scope)

    @admin.display(description="state")
    def state(self, obj: SupportGrant) -> str:
        return obj.state(timezone.now())

    @admin.display(description="time left")
    def left(self, obj: SupportGrant) -> str:
        now = timezone.now()
        return time_left(obj.ends_at, now, past="ended") if obj.is_active(now) else "-"

    @admin.display(description="request")
    def request_link(self, obj: SupportGrant) -> str:
        url = reverse("admin:access_supportaccessrequest_change", args=[obj.request_id])
        return format_html('<a href="{}">{}</a>', url, obj.request)

    @admin.display(description="customer data")
    def customer_data(self, obj: SupportGrant) -> str:
        # Filled in per request by change_view: only the named staff get the link.
        return "only the named staff can open it, while the grant is active"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        extra = {}
        if obj is not None:
            now = timezone.now()
            live = obj.revoked_at is None and obj.ends_at > now
            extra["may_revoke"] = live and self.may_revoke(request, obj)
            if obj.is_active(now) and self._named(request, obj):
                extra["customer_data_url"] = reverse("admin:tenancy_organisation_data", args=[obj.organisation_id])
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    # --- the revoke page

    def get_urls(self):
        return [
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name="access_supportgrant_revoke",
            ),
            *super().get_urls(),
        ]

    def revoke_view(self, request, object_id: str):
        grant = self.get_object(request, unquote(object_id))
        if grant is None or not self.has_view_permission(request, grant):
            raise Http404("No such grant.")
        if not self.may_revoke(request, grant):
            raise PermissionDenied("Only a security officer or a staff member named on the grant can revoke it.")
        change_url = reverse("admin:access_supportgrant_change", args=[grant.pk])
        form = RevokeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.grant_revoke(grant=grant, acting_user=request.user, reason=form.cleaned_data["reason"])
            except ValidationError as e:
                _add_service_errors(form, e)
            else:
                self.message_user(request, f"{grant} is revoked: access has ended.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Revoke a support grant",
            "subtitle": str(grant),
            "opts": self.opts,
            "original": grant,
            "form": form,
            "change_url": change_url,
            "staff": self.staff_list(grant),
            "scope_labels": _scope_labels(grant.scope),
            "state": grant.state(timezone.now()),
        }
        return TemplateResponse(request, "admin/access/supportgrant/revoke.html", context)


# --- the access log -------------------------------------------------------------------------------


@admin.register(AccessLogEntry, site=site)
class AccessLogEntryAdmin(ReadOnlyAdmin):
    """What staff read or changed under a grant: evidence, read-only."""

    list_display = ("at", "organisation", "staff", "action", "scope", "object_repr", "ticket_reference", "grant_link")
    list_filter = ("organisation", "scope", "action")
    list_select_related = ("organisation", "staff")
    date_hierarchy = "at"
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="grant", ordering="grant")
    def grant_link(self, obj: AccessLogEntry) -> str:
        url = reverse("admin:access_supportgrant_change", args=[obj.grant_id])
        return format_html('<a href="{}">#{}</a>', url, obj.grant_id)
