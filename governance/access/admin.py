from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group

from assyst.admin_site import site
from governance.access.models import User
from governance.tenancy.admin import HIDDEN

PERSONAL_FIELDS = ("first_name", "last_name", "email")


@admin.register(User, site=site)
class StaffUserAdmin(UserAdmin):
    """Staff and customer accounts. Customers' names and emails never show here."""

    list_display = ("username", "display_name", "is_staff", "is_active", "organisation", "last_login")
    list_filter = ("is_staff", "is_active", "groups")
    search_fields = ("username",)
    list_select_related = ("membership__organisation",)
    ordering = ("username",)

    @staticmethod
    def _may_see_personal_data(obj: User | None) -> bool:
        # Customers' personal data is read only on the customer-data page, under a grant,
        # where every read is logged; never here (C02).
        return obj is None or getattr(obj, "membership", None) is None

    @admin.display(description="name")
    def display_name(self, obj: User) -> str:
        if not self._may_see_personal_data(obj):
            return HIDDEN
        return obj.get_full_name() or "-"

    @admin.display(description="organisation")
    def organisation(self, obj: User) -> str:
        membership = getattr(obj, "membership", None)
        return str(membership.organisation) if membership else "staff"

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if self._may_see_personal_data(obj):
            return fieldsets
        return [
            (name, {**opts, "fields": tuple(f for f in opts["fields"] if f not in PERSONAL_FIELDS)})
            for name, opts in fieldsets
        ]


site.register(Group, GroupAdmin)

# Registered from their own modules to keep this one small.
from governance.access import admin_reviews, admin_support  # noqa: E402, F401
