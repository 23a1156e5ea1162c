"""The staff admin: Django admin behind a second factor (django-otp TOTP)."""

from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite


class StaffLoginForm(OTPAdminAuthenticationForm):
    """Username, password and TOTP code on one form.

    django-otp 1.7 insists on an explicit device choice, which the admin form only
    offers after a failed first submit. A staff member with exactly one confirmed
    device (the usual case) gets that device; with several, the choice stays theirs.
    Unconfirmed devices are never accepted.
    """

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is not None and not getattr(device, "confirmed", False):
            device = None  # django-otp would accept a token from an unconfirmed device
        if device is None and not self.cleaned_data.get("otp_device"):
            devices = list(devices_for_user(user, confirmed=True, for_verify=True))
            if len(devices) == 1:
                device = devices[0]
        return device


class StaffAdminSite(OTPAdminSite):
    site_header = "Assyst governance portal"
    site_title = "Assyst staff"
    index_title = "Staff administration"
    login_form = StaffLoginForm
    site_url = None  # the customer portal is not for staff accounts

    def index(self, request, extra_context=None):
        # The staff dashboard: what needs this person now (governance/trust/dashboard.py).
        from governance.trust.dashboard import dashboard_context

        return super().index(request, {**dashboard_context(request), **(extra_context or {})})

    def get_urls(self):
        # The trust report (HTML, PDF, JSON) lives inside the OTP-protected admin.
        from governance.trust.admin_views import trust_urls

        return trust_urls(self) + super().get_urls()

    def has_permission(self, request) -> bool:
        # Customer accounts never use the staff admin, even if someone ticks "staff status".
        return super().has_permission(request) and getattr(request, "organisation", None) is None


site = StaffAdminSite(name="admin")
