"""Admin for the notices themselves: open breach-notice deadlines (C12, C13) and the
outbox every notice goes through (C15), with the requeue action for failed rows."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from assyst.admin_site import site
from governance.access.admin_support import time_left
from governance.core.admin import ReadOnlyAdmin
from incidents import deadlines, outbox
from incidents.admin import ORGANISATION_CONTACT, _escalation, _when
from incidents.models import AffectedOrganisation, Notification

# --- open notice deadlines -------------------------------------------------------------------------


class MissedFilter(admin.SimpleListFilter):
    title = "missed"
    parameter_name = "missed"

    def lookups(self, request, model_admin):
        return [("yes", "Missed"), ("no", "Still running")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "yes":
            return queryset.filter(deadline_at__lte=now)
        if self.value() == "no":
            return queryset.filter(deadline_at__gt=now)
        return queryset


@admin.register(AffectedOrganisation, site=site)
class OpenNoticeDeadlineAdmin(ReadOnlyAdmin):
    """Open notice deadlines (C12, C13): outstanding breach notices, soonest deadline first."""

    list_display = ("incident_link", "organisation", "role", "deadline", "left", "escalation")
    list_filter = ("role", MissedFilter)
    ordering = ("deadline_at", "pk")
    list_per_page = 100

    def get_queryset(self, request):
        return (
            deadlines.open_deadlines()
            .select_related("incident", "organisation")
            .defer("incident__sensitive_details", *ORGANISATION_CONTACT)
            .order_by(*self.ordering)
        )

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Open notice deadlines", **(extra_context or {})})

    @admin.display(description="incident", ordering="incident")
    def incident_link(self, obj: AffectedOrganisation) -> str:
        url = reverse("admin:incidents_incident_change", args=[obj.incident_id])
        return format_html('<a href="{}">{}</a>', url, obj.incident)

    @admin.display(description="deadline", ordering="deadline_at")
    def deadline(self, obj: AffectedOrganisation) -> str:
        return _when(obj.deadline_at)

    @admin.display(description="time left", ordering="deadline_at")
    def left(self, obj: AffectedOrganisation) -> str:
        return time_left(obj.deadline_at, timezone.now(), past="MISSED")

    @admin.display(description="escalation")
    def escalation(self, obj: AffectedOrganisation) -> str:
        return _escalation(obj)


# --- the outbox ------------------------------------------------------------------------------------


@admin.register(Notification, site=site)
class NotificationAdmin(ReadOnlyAdmin):
    """Customer notices in the outbox: delivery state only. Recipient and body are
    customer personal data, so they are neither shown nor loaded here."""

    fields = (
        "incident",
        "update",
        "organisation",
        "subject",
        "status",
        "attempts",
        "next_attempt_at",
        "lease_until",
        "sent_at",
        "message_id",
        "last_error",
        "created_at",
    )
    list_display = (
        "created_at",
        "organisation",
        "subject",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "message_id",
        "last_error",
    )
    list_filter = ("status",)
    list_select_related = ("organisation",)
    list_per_page = 100
    show_full_result_count = False
    actions = ["requeue"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("recipient", "body", *ORGANISATION_CONTACT)

    def has_requeue_permission(self, request) -> bool:
        return request.user.has_perm("incidents.requeue_notification")

    @admin.action(description="Send the selected failed notices again", permissions=["requeue"])
    def requeue(self, request, queryset):
        try:
            count = outbox.notifications_requeue(notifications=queryset, acting_user=request.user)
        except PermissionDenied as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        skipped = queryset.count() - count
        text = f"{count} failed notice(s) queued again."
        if skipped:
            text += f" {skipped} selected notice(s) had not failed and were left as they are."
        self.message_user(request, text, messages.SUCCESS if count else messages.WARNING)

    def get_readonly_fields(self, request, obj=None):
        return self.fields
