from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
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
