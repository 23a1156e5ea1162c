from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group

from assyst.admin_site import site
from governance.access.models import User
from governance.tenancy.admin import HIDDEN
from governance.tenancy.policies import can_view_customer_data

PERSONAL_FIELDS = ("first_name", "last_name", "email")


@admin.register(User, site=site)
class StaffUserAdmin(UserAdmin):
    """Staff and customer accounts. A customer's personal data shows only to those the
    tenancy policy allows (their own organisation, or staff with a support grant)."""

    list_display = ("username", "display_name", "is_staff", "is_active", "organisation", "last_login")
    list_filter = ("is_staff", "is_active", "groups")
    search_fields = ("username",)
    list_select_related = ("membership__organisation",)
    ordering = ("username",)

    def _may_see_personal_data(self, request, obj: User | None) -> bool:
        membership = getattr(obj, "membership", None) if obj is not None else None
        return membership is None or can_view_customer_data(request.user, membership.organisation)

    @admin.display(description="name")
    def display_name(self, obj: User) -> str:
        if not self._may_see_personal_data(self._request, obj):
            return HIDDEN
        return obj.get_full_name() or "-"

    @admin.display(description="organisation")
    def organisation(self, obj: User) -> str:
        membership = getattr(obj, "membership", None)
        return str(membership.organisation) if membership else "staff"

    def get_queryset(self, request):
        self._request = request
        return super().get_queryset(request)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if self._may_see_personal_data(request, obj):
            return fieldsets
        return [
            (name, {**opts, "fields": tuple(f for f in opts["fields"] if f not in PERSONAL_FIELDS)})
            for name, opts in fieldsets
        ]


site.register(Group, GroupAdmin)
