from django.contrib import admin

from assyst.admin_site import site
from governance.core.admin import ReadOnlyAdmin
from governance.orgsecurity.models import OrganisationSecurityPolicy, UserSessionRevocation


@admin.register(OrganisationSecurityPolicy, site=site)
class OrganisationSecurityPolicyAdmin(ReadOnlyAdmin):
    """What each customer turned on (C28). Only the customer's admin changes it, in the portal;
    staff see it here, e.g. to explain a refused request. Changes are in the audit trail."""

    list_display = ("organisation", "two_factor", "allowlist_size", "idle_timeout_minutes", "session_lifetime_hours")
    list_filter = ("two_factor",)
    list_select_related = ("organisation",)
    search_fields = ("organisation__name",)

    @admin.display(description="allowed ranges")
    def allowlist_size(self, obj: OrganisationSecurityPolicy) -> int:
        return len(obj.ip_allowlist)


@admin.register(UserSessionRevocation, site=site)
class UserSessionRevocationAdmin(ReadOnlyAdmin):
    list_display = ("user", "organisation", "revoked_at")
    list_select_related = ("user", "organisation")
