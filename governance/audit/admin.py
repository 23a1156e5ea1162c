from django.contrib import admin

from assyst.admin_site import site
from governance.audit.models import AuditEvent


@admin.register(AuditEvent, site=site)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only view of the trail, with filters; nobody can add, change or delete."""

    list_display = (
        "id",
        "created_at",
        "action",
        "actor_repr",
        "object_type",
        "object_repr",
        "organisation_id",
        "ip_address",
    )
    list_filter = ("action", "object_type", ("created_at", admin.DateFieldListFilter))
    search_fields = ("actor_repr", "object_repr", "object_id", "action")
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
