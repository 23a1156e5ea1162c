from django.contrib import admin

from assyst.admin_site import site
from governance.audit.models import AuditEvent
from governance.core.admin import ReadOnlyAdmin


@admin.register(AuditEvent, site=site)
class AuditEventAdmin(ReadOnlyAdmin):
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
