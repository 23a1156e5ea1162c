"""Admin for termination, clean-up runs, certificates and the backup register.

Thin: every change goes through `services` or `backups`; a service's ValidationError or
PermissionDenied becomes a message. Evidence pages are read-only.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import path
from django.utils import timezone

from assyst.admin_site import site
from governance.core.admin import ReadOnlyAdmin
from governance.retention import services, views
from governance.retention.backups import policy_misses
from governance.retention.cadence import cleanup_interval_months, last_completed_run, next_cleanup_date
from governance.retention.models import BackupPolicyCheck, BackupRecord, CleanupRun, DeletionCertificate, Termination
from governance.tenancy.models import Organisation


def _error_text(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)


class TerminationRequestForm(forms.Form):
    """A security officer's termination request; saving it is `services.termination_request`."""

    organisation = forms.ModelChoiceField(queryset=Organisation._base_manager.none())
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 60}))
    requester = None  # set by TerminationAdmin.get_form

    def __init__(self, *args, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance or Termination()
        self.fields["organisation"].queryset = Organisation._base_manager.filter(status=Organisation.Status.ACTIVE)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.instance = services.termination_request(
                organisation=cleaned["organisation"], acting_user=self.requester, reason=cleaned["reason"]
            )
        except (ValidationError, PermissionDenied) as e:
            self.add_error(None, _error_text(e))
        return cleaned

    def save(self, commit: bool = True) -> Termination:
        return self.instance

    def save_m2m(self) -> None:
        pass


@admin.register(Termination, site=site)
class TerminationAdmin(admin.ModelAdmin):
    """Terminations: requested here (or by the customer admin), confirmed by another officer."""

    list_display = (
        "organisation_name",
        "status",
        "requested_by_repr",
        "requested_via",
        "requested_at",
        "confirmed_by_repr",
        "confirmed_at",
        "scheduled_cleanup",
        "purge_finished_at",
        "backups_clear",
    )
    list_select_related = ("certificate",)
    list_filter = ("status", "requested_via")
    search_fields = ("organisation_name",)
    actions = ("confirm_selected", "cancel_selected")
    change_list_template = "admin/retention/termination/change_list.html"
    detail_fields = (
        "organisation_name",
        "organisation_pk",
        "status",
        "reason",
        "requested_via",
        "requested_by_repr",
        "requested_at",
        "confirmed_by_repr",
        "confirmed_at",
        "scheduled_cleanup",
        "purge_started_at",
        "purge_finished_at",
        "purge_counts",
        "backups_clear",
        "cleanup_run",
    )

    def has_change_permission(self, request, obj=None) -> bool:
        # The change page is a read-only view; the actions are the only way to change one.
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_fields(self, request, obj=None):
        return ("organisation", "reason") if obj is None else self.detail_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.detail_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            return type("TerminationRequestForm", (TerminationRequestForm,), {"requester": request.user})
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        if obj.pk is None:
            raise PermissionDenied("Terminations are requested only through the retention service.")

    def save_related(self, request, form, formsets, change) -> None:
        pass

    @admin.display(description="scheduled clean-up")
    def scheduled_cleanup(self, obj: Termination) -> str:
        if obj.status in (Termination.Status.CONFIRMED, Termination.Status.PURGING):
            return f"{next_cleanup_date():%Y-%m-%d}"
        return "-"

    @admin.display(description="data gone from backups")
    def backups_clear(self, obj: Termination) -> str:
        """Purge date + RETENTION_BACKUP_DAYS, marked done once passed (C22)."""
        cert = getattr(obj, "certificate", None) if obj.status == Termination.Status.PURGED else None
        if cert is None:
            return "-"
        done = " (done)" if cert.backups_clear_at <= timezone.now() else ""
        return f"{cert.backups_clear_at:%Y-%m-%d}{done}"

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "next_cleanup": next_cleanup_date(),
            "interval_months": cleanup_interval_months(),
            "last_run": last_completed_run(),
        }
        return super().changelist_view(request, extra_context)

    @admin.action(description="Confirm termination (second security officer)")
    def confirm_selected(self, request, queryset):
        for termination in queryset:
            try:
                services.termination_confirm(termination=termination, acting_user=request.user)
            except (ValidationError, PermissionDenied) as e:
                self.message_user(request, f"{termination.organisation_name}: {_error_text(e)}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{termination.organisation_name} terminated; its data goes at the clean-up on "
                    f"{next_cleanup_date():%Y-%m-%d}.",
                    messages.SUCCESS,
                )

    @admin.action(description="Cancel termination request")
    def cancel_selected(self, request, queryset):
        for termination in queryset:
            try:
                services.termination_cancel(termination=termination, acting_user=request.user, reason="Cancelled")
            except (ValidationError, PermissionDenied) as e:
                self.message_user(request, f"{termination.organisation_name}: {_error_text(e)}", messages.ERROR)


@admin.register(CleanupRun, site=site)
class CleanupRunAdmin(ReadOnlyAdmin):
    """Evidence that clean-up runs happened: read-only."""

    list_display = ("started_at", "finished_at", "status", "organisations")
    list_filter = ("status",)


@admin.register(DeletionCertificate, site=site)
class DeletionCertificateAdmin(ReadOnlyAdmin):
    """Deletion certificates, and when each purged organisation's data leaves the backups (C22)."""

    list_display = (
        "organisation_name",
        "purge_finished_at",
        "backups_clear_at",
        "backups_cleared",
        "digest",
        "emailed_at",
    )

    @admin.display(boolean=True, description="gone from backups")
    def backups_cleared(self, obj: DeletionCertificate) -> bool:
        return obj.backups_clear_at <= timezone.now()


@admin.register(BackupRecord, site=site)
class BackupRecordAdmin(ReadOnlyAdmin):
    """The backup register (C24): read-only here; external tools report runs to the API."""

    list_display = ("finished_at", "kind", "source", "status", "encrypted", "location", "size_bytes", "expires_at")
    list_filter = ("kind", "status", "encrypted", "location")
    date_hierarchy = "finished_at"

    def get_urls(self):
        # Machine endpoint, outside admin_view on purpose: authenticated by its bearer token.
        return [path("report/", views.backup_report, name="retention_backup_report"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        for miss in policy_misses():
            self.message_user(request, f"Backup policy: {miss}", messages.WARNING)
        return super().changelist_view(request, extra_context)


@admin.register(BackupPolicyCheck, site=site)
class BackupPolicyCheckAdmin(ReadOnlyAdmin):
    list_display = ("checked_at", "passed", "alerted", "misses")

    @admin.display(boolean=True)
    def passed(self, obj: BackupPolicyCheck) -> bool:
        return obj.passed
