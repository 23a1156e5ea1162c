"""Admin for incidents, affected organisations, timeline and corrective actions.

Thin: every change goes through `incidents.services`. The incident page itself is
read-only; its buttons open small pages (post an update, add an organisation, add or
decide a corrective action, close) that call one service each. A service's
ValidationError becomes form errors or an error message, its PermissionDenied a 403.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AdminDateWidget, AdminSplitDateTime, FilteredSelectMultiple
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from assyst.admin_site import site
from governance.access.admin_support import time_left
from governance.access.models import User
from governance.access.roles import INCIDENT_MANAGER
from governance.tenancy.models import DataProtectionRole, Organisation
from incidents import deadlines, services
from incidents.models import AffectedOrganisation, CorrectiveAction, Incident, IncidentUpdate

CHANGE = "incidents.change_incident"
CLOSE = "incidents.close_incident"
# Customer contact details are never needed on these pages: not even loaded (or decrypted).
ORGANISATION_CONTACT = ("organisation__primary_contact_name", "organisation__primary_contact_email")


def _when(at: datetime | None) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if at else "-"


def _deadline_state(affected: AffectedOrganisation, now: datetime) -> str:
    """'notified ...', 'MISSED', '3 h 12 min left' or 'no deadline'."""
    if affected.notified_at is not None:
        return f"notified {_when(affected.notified_at)}"
    if affected.deadline_at is None:
        return "no deadline (not a personal-data breach)"
    return time_left(affected.deadline_at, now, past="MISSED")


def _escalation(affected: AffectedOrganisation) -> str:
    if affected.missed_at is not None:
        return f"missed ({_when(affected.missed_at)})"
    return f"{affected.escalated_percent} %" if affected.escalated_percent else "-"


def _lines(text: str) -> list[str]:
    return [part.strip() for line in text.splitlines() for part in line.split(",") if part.strip()]


def _service_errors(form: forms.Form, error: ValidationError, field_map: dict[str, str] | None = None) -> None:
    """Put a service's ValidationError on the form: on its fields where the form has them."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, errors in error.error_dict.items():
        field = (field_map or {}).get(name, name)
        form.add_error(field if field in form.fields else None, errors)


def _staff():
    return User.objects.filter(is_active=True, is_staff=True).order_by("username")


# --- forms -----------------------------------------------------------------------------------------


class IncidentAddForm(forms.Form):
    """A new incident. Saving it is `services.incident_create`, run at the end of clean()
    so its ValidationError lands on these fields (the admin wraps the POST in a transaction)."""

    title = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Incident.Kind.choices, widget=forms.RadioSelect)
    severity = forms.ChoiceField(choices=Incident.Severity.choices, initial=Incident.Severity.MINOR)
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), help_text="In words fit for the affected customers."
    )
    organisations = forms.ModelMultipleChoiceField(
        queryset=Organisation.objects.none(),
        required=False,
        widget=FilteredSelectMultiple("organisations", is_stacked=False),
        help_text="Required for a specific incident. Each gets its role (controller or processor) "
        "from the organisation; change it afterwards with 'Add an affected organisation' if needed.",
    )
    detected_at = forms.SplitDateTimeField(widget=AdminSplitDateTime, help_text="UTC.")
    aware_at = forms.SplitDateTimeField(
        widget=AdminSplitDateTime, label="Aware at", help_text="UTC. Starts the breach-notice clock."
    )
    personal_data_breach = forms.BooleanField(required=False)
    data_categories = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text="One per line or comma."
    )
    approx_people = forms.IntegerField(required=False, min_value=0)
    approx_records = forms.IntegerField(required=False, min_value=0)
    affected_components = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text="One per line or comma."
    )
    incident_manager = forms.ModelChoiceField(queryset=User.objects.none(), required=False)
    sensitive_details = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        help_text="Internal only; encrypted at rest and shown to incident managers only.",
    )

    acting_user: User | None = None  # set by IncidentAdmin.get_form

    def __init__(self, *args, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance or Incident()
        self.fields["organisations"].queryset = Organisation.objects.filter(status=Organisation.Status.ACTIVE)
        managers = _staff().filter(groups__name=INCIDENT_MANAGER)
        self.fields["incident_manager"].queryset = managers
        if self.acting_user is not None and not self.is_bound:
            self.fields["incident_manager"].initial = self.acting_user.pk

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.instance = services.incident_create(
                acting_user=self.acting_user,
                title=cleaned["title"],
                description=cleaned["description"],
                kind=cleaned["kind"],
                severity=cleaned["severity"],
                detected_at=cleaned["detected_at"],
                aware_at=cleaned["aware_at"],
                personal_data_breach=cleaned["personal_data_breach"],
                data_categories=_lines(cleaned["data_categories"]),
                approx_people=cleaned["approx_people"],
                approx_records=cleaned["approx_records"],
                affected_components=_lines(cleaned["affected_components"]),
                organisations=cleaned["organisations"],
                sensitive_details=cleaned["sensitive_details"],
                incident_manager=cleaned["incident_manager"],
            )
        except ValidationError as e:
            _service_errors(self, e)
        return cleaned

    # The admin's add view calls these; the service has already saved everything.
    def save(self, commit: bool = True) -> Incident:
        return self.instance

    def save_m2m(self) -> None:
        pass


class UpdateForm(forms.Form):
    visibility = forms.ChoiceField(choices=IncidentUpdate.Visibility.choices, widget=forms.RadioSelect)
    status = forms.ChoiceField(choices=Incident.Status.choices)
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 5, "cols": 80}))
    actions_for_customers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="What customers should do (or that nothing is needed). Required on a public update.",
    )
    late_reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        label="Reasons for the delay",
        help_text="Required when the notice deadline has passed (GDPR Art. 33(1)).",
    )


class OrganisationAddForm(forms.Form):
    organisation = forms.ModelChoiceField(queryset=Organisation.objects.none())
    role = forms.ChoiceField(
        choices=[("", "From the organisation"), *DataProtectionRole.choices],
        required=False,
        help_text="Our data-protection role for this organisation; sets its notice deadline.",
    )

    def __init__(self, *args, incident: Incident, **kwargs):
        super().__init__(*args, **kwargs)
        affected = AffectedOrganisation.objects.with_scopes_disabled().filter(incident=incident).values("organisation")
        self.fields["organisation"].queryset = Organisation.objects.filter(status=Organisation.Status.ACTIVE).exclude(
            pk__in=affected
        )


class ActionAddForm(forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}))
    owner = forms.ModelChoiceField(queryset=User.objects.none())
    due_date = forms.DateField(widget=AdminDateWidget)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = _staff()


class ActionDecideForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("done", "Done"), ("accept", "Formally accept as open")], widget=forms.RadioSelect
    )
    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Required to accept an action as open: why the remaining risk is acceptable.",
    )


# --- incidents -------------------------------------------------------------------------------------


class ClosedFilter(admin.SimpleListFilter):
    title = "closed"
    parameter_name = "closed"

    def lookups(self, request, model_admin):
        return [("no", "Open"), ("yes", "Closed")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(closed_at__isnull=self.value() == "no")
        return queryset


@admin.register(Incident, site=site)
class IncidentAdmin(admin.ModelAdmin):
    """Incidents: created through the add form, then changed only through the pages behind
    the buttons of the (read-only) incident page."""

    list_display = (
        "__str__",
        "kind",
        "severity",
        "status",
        "personal_data_breach",
        "next_deadline",
        "incident_manager",
        "aware_at",
        "closed_at",
    )
    list_filter = ("kind", "severity", "status", "personal_data_breach", ClosedFilter)
    list_select_related = ("incident_manager",)
    search_fields = ("title",)
    add_fields = (
        "title",
        "kind",
        "severity",
        "description",
        "organisations",
        "detected_at",
        "aware_at",
        "personal_data_breach",
        "data_categories",
        "approx_people",
        "approx_records",
        "affected_components",
        "incident_manager",
        "sensitive_details",
    )
    detail_fieldsets = (
        (
            "Incident",
            {
                "fields": (
                    "title",
                    "kind",
                    "severity",
                    "status",
                    "description",
                    "incident_manager",
                    "created_by",
                    "created_at",
                    "closed_at",
                )
            },
        ),
        (
            "Breach",
            {
                "fields": (
                    "personal_data_breach",
                    "categories",
                    "approx_people",
                    "approx_records",
                    "components",
                    "detected_at",
                    "aware_at",
                )
            },
        ),
    )
    sensitive_fieldset = ("Sensitive details (encrypted, incident managers only)", {"fields": ("sensitive_details",)})
    change_form_template = "admin/incidents/incident/change_form.html"

    # --- who may do what

    @staticmethod
    def may_see_sensitive(request) -> bool:
        """Incident managers (who run incidents) only; auditors and the DPO never."""
        return request.user.has_perm(CHANGE)

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # changes only through the service pages

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        next_deadline = (
            deadlines.open_deadlines().filter(incident=OuterRef("pk")).order_by("deadline_at").values("deadline_at")
        )
        qs = super().get_queryset(request).annotate(next_deadline_at=Subquery(next_deadline[:1]))
        if not self.may_see_sensitive(request):
            qs = qs.defer("sensitive_details")  # never even decrypted for them
        return qs

    # --- columns and read-only fields

    @admin.display(description="next notice deadline", ordering="next_deadline_at")
    def next_deadline(self, obj: Incident) -> str:
        at = getattr(obj, "next_deadline_at", None)
        if at is None:
            return "-"
        return f"{_when(at)} ({time_left(at, timezone.now(), past='MISSED')})"

    @admin.display(description="data categories")
    def categories(self, obj: Incident) -> str:
        return ", ".join(obj.data_categories) or "-"

    @admin.display(description="affected components")
    def components(self, obj: Incident) -> str:
        return ", ".join(obj.affected_components) or "-"

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": self.add_fields})]
        if self.may_see_sensitive(request):
            return [*self.detail_fieldsets, self.sensitive_fieldset]
        return self.detail_fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return [f for _, opts in self.get_fieldsets(request, obj) for f in opts["fields"]]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            return type("IncidentAddForm", (IncidentAddForm,), {"acting_user": request.user})
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        # Saved by services.incident_create in the form's clean(); never here.
        if obj.pk is None:
            raise PermissionDenied("Incidents are created only through the incident service.")

    def save_related(self, request, form, formsets, change) -> None:
        pass

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        extra = {}
        if obj is not None and self.has_view_permission(request, obj):
            now = timezone.now()
            affected = list(
                AffectedOrganisation.objects.with_scopes_disabled()
                .filter(incident=obj)
                .select_related("organisation")
                .defer(*ORGANISATION_CONTACT)
                .order_by("deadline_at", "organisation__name")
            )
            for a in affected:
                a.state = _deadline_state(a, now)
                a.escalation = _escalation(a)
            may_change = request.user.has_perm(CHANGE) and not obj.is_closed
            extra = {
                "updates": obj.updates.select_related("created_by"),
                "affected": affected,
                "corrective_actions": obj.corrective_actions.select_related("owner", "decided_by"),
                "may_change": may_change,
                "may_close": request.user.has_perm(CLOSE) and not obj.is_closed,
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    # --- the pages behind the buttons

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/update/", view(self.update_view), name="incidents_incident_update"),
            path(
                "<path:object_id>/organisation/", view(self.organisation_view), name="incidents_incident_organisation"
            ),
            path("<path:object_id>/action/", view(self.action_add_view), name="incidents_incident_action"),
            path(
                "<path:object_id>/action/<int:action_id>/decide/",
                view(self.action_decide_view),
                name="incidents_incident_action_decide",
            ),
            path("<path:object_id>/close/", view(require_POST(self.close_view)), name="incidents_incident_close"),
            *super().get_urls(),
        ]

    def _load(self, request, object_id: str, perm: str = CHANGE) -> Incident:
        incident = self.get_object(request, unquote(object_id))
        if incident is None or not self.has_view_permission(request, incident):
            raise Http404("No such incident.")
        if not request.user.has_perm(perm):
            raise PermissionDenied("You cannot change incidents.")
        return incident

    def _page(self, request, incident: Incident, *, title: str, form: forms.Form, **context):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": str(incident),
            "opts": self.opts,
            "original": incident,
            "form": form,
            "media": self.media + form.media,
            "change_url": reverse("admin:incidents_incident_change", args=[incident.pk]),
            **context,
        }
        return TemplateResponse(request, "admin/incidents/incident/action_form.html", context)

    def _done(self, request, incident: Incident, message: str):
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:incidents_incident_change", args=[incident.pk]))

    def update_view(self, request, object_id: str):
        incident = self._load(request, object_id)
        form = UpdateForm(request.POST or None, initial={"status": incident.status})
        if request.method == "POST" and form.is_valid():
            try:
                update = services.incident_update_post(incident=incident, acting_user=request.user, **form.cleaned_data)
            except ValidationError as e:
                _service_errors(form, e)
            else:
                sent = update.notifications.count()
                notices = f" {sent} notice(s) queued for the affected organisations." if sent else ""
                return self._done(request, incident, f"Update posted ({update.get_visibility_display()}).{notices}")
        now = timezone.now()
        overdue = [
            a
            for a in deadlines.open_deadlines().filter(incident=incident).select_related("organisation")
            if a.deadline_at <= now
        ]
        return self._page(request, incident, title="Post an update", form=form, overdue=overdue)

    def organisation_view(self, request, object_id: str):
        incident = self._load(request, object_id)
        form = OrganisationAddForm(request.POST or None, incident=incident)
        if request.method == "POST" and form.is_valid():
            try:
                affected = services.incident_organisation_add(
                    incident=incident,
                    organisation=form.cleaned_data["organisation"],
                    acting_user=request.user,
                    role=form.cleaned_data["role"] or None,
                )
            except ValidationError as e:
                _service_errors(form, e)
            else:
                return self._done(request, incident, f"{affected.organisation} added as {affected.get_role_display()}.")
        return self._page(request, incident, title="Add an affected organisation", form=form)

    def action_add_view(self, request, object_id: str):
        incident = self._load(request, object_id)
        form = ActionAddForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                action = services.corrective_action_add(
                    incident=incident, acting_user=request.user, **form.cleaned_data
                )
            except ValidationError as e:
                _service_errors(form, e)
            else:
                return self._done(request, incident, f"Corrective action added: {action}.")
        return self._page(request, incident, title="Add a corrective action", form=form)

    def action_decide_view(self, request, object_id: str, action_id: int):
        incident = self._load(request, object_id)
        action = CorrectiveAction.objects.filter(incident=incident, pk=action_id).first()
        if action is None:
            raise Http404("No such corrective action.")
        form = ActionDecideForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.corrective_action_decide(
                    action=action,
                    acting_user=request.user,
                    done=form.cleaned_data["decision"] == "done",
                    reason=form.cleaned_data["reason"],
                )
            except ValidationError as e:
                _service_errors(form, e, {"accepted_reason": "reason"})
            else:
                return self._done(request, incident, f"{action}: {action.get_status_display().lower()}.")
        return self._page(request, incident, title=f"Decide on the corrective action: {action}", form=form)

    def close_view(self, request, object_id: str):
        incident = self._load(request, object_id, perm=CLOSE)
        try:
            services.incident_close(incident=incident, acting_user=request.user)
        except ValidationError as e:
            self.message_user(request, " ".join(e.messages), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:incidents_incident_change", args=[incident.pk]))
        return self._done(request, incident, f"{incident} is closed.")


# Registered from their own module to keep this one small.
from incidents import admin_notices, admin_reports, admin_status  # noqa: E402, F401
