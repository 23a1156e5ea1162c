"""Service accounts and their tokens in the admin (security officers).

A token's secret is shown once, on the page after it is issued, and never again: only
its hash is kept. Revoking is an action (audited), never a delete.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.utils import timezone

from assyst.admin_site import site
from governance.access.roles import ROLE_NAMES, SECURITY_OFFICER
from governance.api import scopes as api_scopes
from governance.api import services
from governance.api.models import ApiToken, ServiceAccount
from governance.core.admin import ServiceCreatedAdmin


def _service_errors(form: forms.Form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errs in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errs)
    else:
        form.add_error(None, error)


class ServiceAccountAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    description = forms.CharField(max_length=200, help_text="Which integration acts as this account.")
    role = forms.ChoiceField(
        choices=[(r, r) for r in ROLE_NAMES if r != SECURITY_OFFICER],
        help_text="Its permissions cap every token of this account.",
    )
    acting_user = None

    def __init__(self, *args, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance or ServiceAccount()

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            try:
                self.instance = services.service_account_create(acting_user=self.acting_user, **cleaned)
            except ValidationError as e:
                _service_errors(self, e)
        return cleaned

    def save(self, commit: bool = True):
        return self.instance

    def save_m2m(self):
        pass


@admin.register(ServiceAccount, site=site)
class ServiceAccountAdmin(ServiceCreatedAdmin):
    add_form = ServiceAccountAddForm
    add_form_user_attr = "acting_user"
    list_display = ("user", "description", "roles", "created_by", "created_at")
    list_select_related = ("user", "created_by")
    detail_fieldsets = [(None, {"fields": ("user", "description", "roles", "created_by", "created_at")})]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("user__groups")

    @admin.display(description="role")
    def roles(self, obj: ServiceAccount) -> str:
        return ", ".join(g.name for g in obj.user.groups.all()) or "-"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class TokenAddForm(forms.Form):
    service_account = forms.ModelChoiceField(queryset=ServiceAccount.objects.select_related("user"))
    name = forms.CharField(max_length=100, help_text="What uses this token, e.g. 'Alertmanager (prod)'.")
    scopes = forms.MultipleChoiceField(
        choices=api_scopes.choices(api_scopes.STAFF_SCOPES), widget=forms.CheckboxSelectMultiple
    )
    expires_at = forms.DateTimeField(help_text="UTC, e.g. 2027-06-30 00:00.")
    rate_limit_per_minute = forms.IntegerField(
        required=False, min_value=1, max_value=10_000, help_text="Empty: the default."
    )
    acting_user = None

    def __init__(self, *args, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance or ApiToken()
        self.secret = None
        self.fields["expires_at"].initial = (timezone.now() + timedelta(days=90)).replace(microsecond=0)

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            try:
                self.instance, self.secret = services.token_issue(acting_user=self.acting_user, **cleaned)
            except ValidationError as e:
                _service_errors(self, e)
        return cleaned

    def save(self, commit: bool = True):
        return self.instance

    def save_m2m(self):
        pass


class RevokeForm(forms.Form):
    reason = forms.CharField(max_length=200)


@admin.register(ApiToken, site=site)
class ApiTokenAdmin(ServiceCreatedAdmin):
    add_form = TokenAddForm
    add_form_user_attr = "acting_user"
    list_display = (
        "name",
        "prefix",
        "kind",
        "user",
        "organisation",
        "scope_list",
        "expires_at",
        "last_used_at",
        "state",
    )
    list_filter = ("kind",)
    list_select_related = ("user", "organisation")
    search_fields = ("name", "prefix")
    detail_fieldsets = [
        (
            None,
            {
                "fields": (
                    "name",
                    "prefix",
                    "kind",
                    "user",
                    "organisation",
                    "scopes",
                    "expires_at",
                    "rate_limit_per_minute",
                    "created_by",
                    "created_at",
                    "last_used_at",
                )
            },
        ),
        ("Revocation", {"fields": ("revoked_at", "revoked_by", "revoke_reason")}),
    ]
    actions = ["revoke"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .defer("organisation__primary_contact_name", "organisation__primary_contact_email")
        )

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="state")
    def state(self, obj: ApiToken) -> str:
        return obj.state()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def response_add(self, request, obj, post_url_continue=None):
        # The one and only time the secret is shown.
        form_secret = getattr(request, "_api_token_secret", None)
        return TemplateResponse(
            request,
            "api/admin/token_issued.html",
            {
                **self.admin_site.each_context(request),
                "title": "API token issued",
                "token": obj,
                "secret": form_secret,
                "opts": self.opts,
            },
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:

            def clean(form, _orig=form_class.clean):
                cleaned = _orig(form)
                request._api_token_secret = getattr(form, "secret", None)
                return cleaned

            form_class = type(form_class.__name__, (form_class,), {"clean": clean})
        return form_class

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        if "apply" in request.POST:
            form = RevokeForm(request.POST)
            if form.is_valid():
                done = 0
                for token in queryset:
                    try:
                        services.token_revoke(token=token, acting_user=request.user, reason=form.cleaned_data["reason"])
                        done += 1
                    except (ValidationError, PermissionDenied) as e:
                        self.message_user(
                            request,
                            f"{token}: {'; '.join(e.messages) if hasattr(e, 'messages') else e}",
                            messages.ERROR,
                        )
                self.message_user(request, f"Revoked {done} token(s).", messages.SUCCESS)
                return None
        else:
            form = RevokeForm()
        return TemplateResponse(
            request,
            "api/admin/token_revoke.html",
            {
                **self.admin_site.each_context(request),
                "title": "Revoke API tokens",
                "tokens": queryset,
                "form": form,
                "opts": self.opts,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )
