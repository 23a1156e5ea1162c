"""Staff view of organisations' single sign-on (C28). Every save goes through the service (audited).

The client secret is write-only: the form never renders it. Email domains (which send a
domain's users to a provider from the sign-in page) are set only here, by staff who have
checked the organisation owns the domain.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError

from assyst.admin_site import site
from governance.portal.forms import apply_service_error
from governance.sso.models import SigningAlgorithm, SSOConfiguration
from governance.sso.services import sso_configuration_update
from governance.tenancy.models import Organisation


class SSOConfigurationForm(forms.Form):
    """Validated and saved by `sso_configuration_update` at the end of `clean()`, so its errors land on fields."""

    organisation = forms.ModelChoiceField(queryset=Organisation.objects.none())
    enabled = forms.BooleanField(required=False)
    issuer = forms.URLField(max_length=300, assume_scheme="https")
    client_id = forms.CharField(max_length=255)
    client_secret = forms.CharField(
        max_length=500,
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only, stored encrypted. Leave empty to keep the current secret.",
    )
    signing_algorithm = forms.ChoiceField(choices=SigningAlgorithm.choices, initial=SigningAlgorithm.RS256)
    email_domains = forms.CharField(
        required=False,
        help_text="Comma-separated, e.g. example.com, example.co.uk. Only domains the organisation owns.",
    )
    jit_membership = forms.BooleanField(label="Create viewers on first sign-in", required=False)
    enforce_sso = forms.BooleanField(label="Require single sign-on", required=False)

    acting_user = None  # set by SSOConfigurationAdmin.get_form

    def __init__(self, *args, instance: SSOConfiguration | None = None, **kwargs):
        self.instance = instance or SSOConfiguration()
        if instance is not None and instance.pk:
            kwargs["initial"] = {
                "organisation": instance.organisation_id,
                "enabled": instance.enabled,
                "issuer": instance.issuer,
                "client_id": instance.client_id,
                "signing_algorithm": instance.signing_algorithm,
                "email_domains": ", ".join(instance.email_domains),
                "jit_membership": instance.jit_membership,
                "enforce_sso": instance.enforce_sso,
                **kwargs.get("initial", {}),
            }
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["organisation"].queryset = Organisation.objects.filter(pk=self.instance.organisation_id)
            self.fields["organisation"].disabled = True
        else:
            self.fields["organisation"].queryset = Organisation.objects.filter(
                status=Organisation.Status.ACTIVE, sso_configuration__isnull=True
            )

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        values = dict(cleaned)
        organisation = values.pop("organisation")
        values["email_domains"] = [d for d in values["email_domains"].split(",") if d.strip()]
        try:
            self.instance = sso_configuration_update(organisation=organisation, acting_user=self.acting_user, **values)
        except ValidationError as exc:
            apply_service_error(self, exc)
        return cleaned

    def save(self, commit: bool = True) -> SSOConfiguration:
        return self.instance


@admin.register(SSOConfiguration, site=site)
class SSOConfigurationAdmin(admin.ModelAdmin):
    list_display = ("organisation", "enabled", "enforce_sso", "jit_membership", "issuer", "verified_at")
    list_filter = ("enabled", "enforce_sso", "jit_membership")
    search_fields = ("organisation__name", "organisation__slug")
    list_select_related = ("organisation",)
    fields = (
        "organisation",
        "enabled",
        "issuer",
        "client_id",
        "client_secret",
        "signing_algorithm",
        "email_domains",
        "jit_membership",
        "enforce_sso",
    )

    def get_form(self, request, obj=None, change=False, **kwargs):
        return type(SSOConfigurationForm.__name__, (SSOConfigurationForm,), {"acting_user": request.user})

    def save_model(self, request, obj, form, change) -> None:
        # The service saved (and audited) in the form's clean(); the model path never does.
        if obj.pk is None:
            raise PermissionDenied("Single sign-on is configured only through its service.")

    def save_related(self, request, form, formsets, change) -> None:
        pass

    def has_delete_permission(self, request, obj=None) -> bool:
        # Switching it off (enabled unticked) keeps the audit trail's object; nothing is deleted.
        return False
