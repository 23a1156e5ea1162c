from django.contrib import admin
from guardian.admin import ReinforcedGuardedModelAdmin

from assyst.admin_site import site
from governance.tenancy.models import Membership, Organisation
from governance.tenancy.policies import can_view_contact_details, can_view_customer_data

HIDDEN = "hidden: needs an approved support grant"


@admin.register(Organisation, site=site)
class OrganisationAdmin(ReinforcedGuardedModelAdmin):
    """Organisations. Contact details show only to those the policy allows (C02)."""

    list_display = ("name", "slug", "status", "data_protection_role", "contact")
    list_filter = ("status", "data_protection_role")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at",)

    @admin.display(description="primary contact")
    def contact(self, obj: Organisation) -> str:
        if not can_view_contact_details(self._request.user, obj):
            return HIDDEN
        return f"{obj.primary_contact_name} <{obj.primary_contact_email}>" if obj.primary_contact_email else "-"

    def get_queryset(self, request):
        self._request = request
        return super().get_queryset(request)

    def get_fields(self, request, obj=None):
        fields = ["name", "slug", "status", "data_protection_role"]
        if obj is None or can_view_contact_details(request.user, obj):
            fields += ["primary_contact_name", "primary_contact_email"]
        return [*fields, "created_at"]

    def get_prepopulated_fields(self, request, obj=None):
        return self.prepopulated_fields if self.has_change_permission(request, obj) else {}


@admin.register(Membership, site=site)
class MembershipAdmin(admin.ModelAdmin):
    """Which customer user belongs to which organisation, and as what."""

    list_display = ("user", "organisation", "role", "created_at")
    list_filter = ("role", "organisation")
    search_fields = ("user__username", "organisation__name")
    list_select_related = ("user", "organisation")
    autocomplete_fields = ("user", "organisation")
    readonly_fields = ("created_at",)


__all__ = ["HIDDEN", "can_view_customer_data"]
