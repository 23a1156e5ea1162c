from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from guardian.admin import ReinforcedGuardedModelAdmin

from assyst.admin_site import site
from governance.tenancy.models import Membership, Organisation

HIDDEN = "hidden: customer data (needs an approved support grant)"
CONTACT_FIELDS = ("primary_contact_name", "primary_contact_email")


@admin.register(Organisation, site=site)
class OrganisationAdmin(ReinforcedGuardedModelAdmin):
    """Organisations. Customer personal data never shows here: staff read it only on the
    customer-data page, under an active support grant, and every read is logged (C02)."""

    list_display = ("name", "slug", "status", "data_protection_role", "customer_data")
    list_filter = ("status", "data_protection_role")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at",)

    @admin.display(description="customer data")
    def customer_data(self, obj: Organisation) -> str:
        return format_html(
            '<a href="{}">open under a grant</a>', reverse("admin:tenancy_organisation_data", args=[obj.pk])
        )

    def get_fields(self, request, obj=None):
        fields = ["name", "slug", "status", "data_protection_role"]
        if obj is None:  # the contact is written once at onboarding, then owned by the customer
            fields += list(CONTACT_FIELDS)
        return [*fields, "created_at"]

    def get_prepopulated_fields(self, request, obj=None):
        return self.prepopulated_fields if obj is None else {}

    def get_urls(self):
        return [
            path(
                "<int:pk>/customer-data/",
                self.admin_site.admin_view(self.customer_data_view),
                name="tenancy_organisation_data",
            ),
            *super().get_urls(),
        ]

    def customer_data_view(self, request, pk: int):
        from governance.access.models import DataScope
        from governance.access.services import access_log_record, active_grant_for

        organisation = get_object_or_404(Organisation, pk=pk)
        grants = {scope: active_grant_for(request.user, organisation, scope) for scope in DataScope.values}
        if not any(grants.values()):
            raise PermissionDenied("No active support grant covers this organisation's data.")
        context = {
            **self.admin_site.each_context(request),
            "title": f"Customer data of {organisation}",
            "organisation": organisation,
            "grants": {k: v for k, v in grants.items() if v},
            "now": timezone.now(),
            "opts": self.model._meta,
        }
        if grants[DataScope.PROFILE]:
            access_log_record(
                user=request.user,
                organisation=organisation,
                scope=DataScope.PROFILE,
                objects=[organisation],
                path=request.path,
            )
            context["profile"] = organisation
        if grants[DataScope.PEOPLE]:
            members = list(Membership.objects.filter(organisation=organisation).select_related("user"))
            access_log_record(
                user=request.user, organisation=organisation, scope=DataScope.PEOPLE, objects=members, path=request.path
            )
            context["members"] = members
        return TemplateResponse(request, "admin/tenancy/organisation/customer_data.html", context)


@admin.register(Membership, site=site)
class MembershipAdmin(admin.ModelAdmin):
    """Which customer user belongs to which organisation, and as what."""

    list_display = ("user", "organisation", "role", "created_at")
    list_filter = ("role", "organisation")
    search_fields = ("user__username", "organisation__name")
    list_select_related = ("user", "organisation")
    autocomplete_fields = ("user", "organisation")
    readonly_fields = ("created_at",)
