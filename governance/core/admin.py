from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from assyst.admin_site import site
from governance.core.models import JobRun


class ReadOnlyAdmin(admin.ModelAdmin):
    """Evidence pages: every field shown, nobody adds, changes or deletes."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ServiceCreatedAdmin(admin.ModelAdmin):
    """An admin whose add form creates the object through a service (the form calls it in
    `clean()`, so service errors land on its fields) and whose objects are read-only after.

    Subclasses set `add_form` (a `governance.core.forms.ServiceAddForm`, or a plain Form with a
    `save()` returning the created object),
    `add_form_user_attr` (the attribute the form reads the acting user from),
    `detail_fieldsets`, and optionally `add_fields` (default: every field of the form).
    """

    add_form: type
    add_form_user_attr: str
    add_fields: tuple[str, ...] | None = None
    detail_fieldsets: list = []

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": self.add_fields or tuple(self.add_form.base_fields)})]
        return self.detail_fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return [f for _, opts in self.detail_fieldsets for f in opts["fields"]]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            return type(self.add_form.__name__, (self.add_form,), {self.add_form_user_attr: request.user})
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        # The service saved everything in the form's clean(); the model path never does.
        if obj.pk is None:
            raise PermissionDenied(
                f"{self.model._meta.verbose_name_plural.capitalize()} are created only through their service."
            )

    def save_related(self, request, form, formsets, change) -> None:
        pass


@admin.register(JobRun, site=site)
class JobRunAdmin(ReadOnlyAdmin):
    """Evidence that periodic jobs ran: read-only."""

    list_display = ("task", "started_at", "finished_at", "outcome", "counts", "worker")
    list_filter = ("outcome", "task")
    date_hierarchy = "started_at"
    list_per_page = 100
    show_full_result_count = False


# Login lockouts (C10): staff unlock a username+IP pair by deleting its attempt record.
site.register(AccessAttempt, AccessAttemptAdmin)


@admin.register(TOTPDevice, site=site)
class StaffTOTPDeviceAdmin(TOTPDeviceAdmin):
    """Second-factor devices: listed and revocable; seeds are never shown in the admin
    (OTP_ADMIN_HIDE_SENSITIVE_DATA). New devices come from `manage.py totp_enrol`."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
