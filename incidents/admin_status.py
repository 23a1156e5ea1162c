"""Admin for the status page: component groups, components, scheduled maintenance, and
subscriptions (read-only subscriber list; webhooks made here by staff) (C14, C15).

Declarative; every save goes through incidents.status.services, which records status
changes in the components' history and refreshes the public page on commit. Nothing is
deleted here: a component's history is public record.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models

from assyst.admin_site import site
from incidents.models import (
    Component,
    ComponentGroup,
    ComponentStatusChange,
    ScheduledMaintenance,
    StatusSubscriber,
    StatusWebhook,
)
from incidents.status import services, subscriptions


class _ServiceAdmin(admin.ModelAdmin):
    def has_delete_permission(self, request, obj=None):
        return False

    def _call(self, request, fn, **kwargs) -> bool:
        try:
            fn(acting_user=request.user, **kwargs)
        except (ValidationError, PermissionDenied) as exc:
            text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            self.message_user(request, text, messages.ERROR)
            return False
        return True


@admin.register(ComponentGroup, site=site)
class ComponentGroupAdmin(_ServiceAdmin):
    list_display = ("name", "position", "updated_at")
    fields = ("name", "description", "position")

    def save_model(self, request, obj, form, change):
        self._call(request, services.component_group_save, group=obj)


class StatusChangeInline(admin.TabularInline):
    model = ComponentStatusChange
    fields = ("at", "previous_status", "status", "incident_update", "maintenance_update", "created_by")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-at",)
    max_num = 0
    verbose_name_plural = "status history"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("incident_update__incident", "maintenance_update", "created_by")
        )


@admin.register(Component, site=site)
class ComponentAdmin(_ServiceAdmin):
    list_display = ("name", "group", "status", "position", "updated_at")
    list_filter = ("status", "group")
    list_select_related = ("group",)
    fields = ("name", "description", "group", "position", "status", "showcase", "only_show_if_degraded", "start_date")
    inlines = [StatusChangeInline]

    def save_model(self, request, obj, form, change):
        self._call(request, services.component_save, component=obj)


class MaintenanceForm(forms.ModelForm):
    update_body = forms.CharField(
        label="Public update",
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="Shown on the status page; required when the status changes.",
    )
    component_status = forms.ChoiceField(
        choices=[("", "leave component statuses as they are"), *Component._meta.get_field("status").choices],
        required=False,
        help_text="Set every component of this maintenance to this status (e.g. under maintenance, then operational).",
    )

    class Meta:
        model = ScheduledMaintenance
        fields = ("name", "scheduled_for", "scheduled_until", "components", "status")

    def clean(self):
        data = super().clean()
        start, end = data.get("scheduled_for"), data.get("scheduled_until")
        if start and end and end <= start:
            self.add_error("scheduled_until", "The maintenance must end after it starts.")
        return data


@admin.register(ScheduledMaintenance, site=site)
class ScheduledMaintenanceAdmin(_ServiceAdmin):
    form = MaintenanceForm
    list_display = ("name", "status", "scheduled_for", "scheduled_until")
    list_filter = ("status",)
    filter_horizontal = ("components",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "scheduled_for", "scheduled_until", "components", "update_body")
        return ("name", "scheduled_for", "scheduled_until", "status", "update_body", "component_status")

    def get_readonly_fields(self, request, obj=None):
        return ("name", "scheduled_for", "scheduled_until") if obj else ()

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            self._call(
                request,
                services.maintenance_create,
                name=obj.name,
                scheduled_for=obj.scheduled_for,
                scheduled_until=obj.scheduled_until,
                components=data.get("components") or [],
                body=data.get("update_body", ""),
            )
            created = ScheduledMaintenance.objects.filter(name=obj.name).order_by("-pk").first()
            if created is not None:
                obj.pk, obj._state.adding = created.pk, False
            return
        status = data["status"]
        statuses = {c.pk: data["component_status"] for c in obj.components.all()} if data["component_status"] else None
        previous = ScheduledMaintenance.objects.values_list("status", flat=True).get(pk=obj.pk)
        obj.status = previous  # the service changes it, with its update
        if status != previous or data.get("update_body") or statuses:
            self._call(
                request,
                services.maintenance_update_post,
                maintenance=obj,
                status=status,
                body=data.get("update_body") or f"Status: {ScheduledMaintenance.Status(status).label}.",
                component_statuses=statuses,
            )

    def save_related(self, request, form, formsets, change):
        pass  # components are set by the service


# --- subscriptions (C14, C15) ------------------------------------------------------------------


@admin.register(StatusSubscriber, site=site)
class StatusSubscriberAdmin(admin.ModelAdmin):
    """Read-only: subscribers manage themselves (double opt-in, one-click unsubscribe)."""

    list_display = ("__str__", "masked_email", "confirmed_at", "chosen_components", "created_at")
    list_filter = (("confirmed_at", admin.EmptyFieldListFilter),)
    fields = ("masked_email", "confirmed_at", "confirm_expires_at", "components", "created_at")
    readonly_fields = fields

    @admin.display(description="email")
    def masked_email(self, obj) -> str:
        """Subscribers are members of the public: staff see enough to recognise a domain."""
        local, _, domain = (obj.email or "").partition("@")
        return f"{local[:1]}***@{domain}" if domain else "-"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("components")

    @admin.display(description="components")
    def chosen_components(self, obj):
        return ", ".join(c.name for c in obj.components.all()) or "all"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _https_formfield(db_field, **kwargs):
    # The admin re-derives this form with `url` read-only on the change page; the model's
    # URLField then needs the scheme too (Django 6 makes https the default).
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class StatusWebhookForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https", help_text="https only.")

    class Meta:
        model = StatusWebhook
        fields = ("url", "description", "components")
        formfield_callback = _https_formfield


@admin.register(StatusWebhook, site=site)
class StatusWebhookAdmin(_ServiceAdmin):
    """Staff register endpoints (the secret is shown once, after saving); a webhook
    disabled after repeated failures is shown here and can be re-enabled."""

    form = StatusWebhookForm
    list_display = ("__str__", "url", "active", "consecutive_failures", "last_success_at", "disabled_at")
    list_filter = (("disabled_at", admin.EmptyFieldListFilter),)
    filter_horizontal = ("components",)
    actions = ["enable"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("url", "description", "components")
        return (
            "url",
            "description",
            "components",
            "consecutive_failures",
            "last_success_at",
            "last_failure_at",
            "disabled_at",
            "disabled_reason",
            "created_by",
            "created_at",
        )

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj else ()

    @admin.display(boolean=True, description="active")
    def active(self, obj):
        return obj.is_active

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            webhook, secret = subscriptions.webhook_create(
                acting_user=request.user,
                url=obj.url,
                description=obj.description,
                components=form.cleaned_data.get("components") or [],
            )
        except (ValidationError, PermissionDenied) as exc:
            text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            self.message_user(request, text, messages.ERROR)
            return
        obj.pk, obj._state.adding = webhook.pk, False
        self.message_user(
            request,
            f"Signing secret (shown only now, copy it to the receiver): {secret}. Verify "
            f"{subscriptions.SIGNATURE_HEADER} = sha256=HMAC-SHA256(secret, "
            f'"<{subscriptions.TIMESTAMP_HEADER}>." + body).',
            messages.WARNING,
        )

    def save_related(self, request, form, formsets, change):
        pass  # components are set by the service

    @admin.action(description="Re-enable the selected webhooks")
    def enable(self, request, queryset):
        for webhook in queryset.exclude(disabled_at=None):
            self._call(request, subscriptions.webhook_enable, webhook=webhook)
