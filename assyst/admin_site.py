"""The staff admin: Django admin behind a second factor (django-otp TOTP)."""

from django_otp.admin import OTPAdminSite


class StaffAdminSite(OTPAdminSite):
    site_header = "Assyst governance portal"
    site_title = "Assyst staff"
    index_title = "Staff administration"


site = StaffAdminSite(name="admin")
