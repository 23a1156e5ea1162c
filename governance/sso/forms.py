"""Forms of single sign-on: they validate input only; `services.sso_configuration_update` applies the rules."""

from __future__ import annotations

from django import forms

from governance.sso.models import SigningAlgorithm, SSOConfiguration


class StartForm(forms.Form):
    """The sign-in page: find the organisation by work email (its domain) or by sign-in name."""

    email = forms.EmailField(label="Work email", required=False, max_length=254)
    organisation = forms.SlugField(
        label="Or your organisation's sign-in name",
        required=False,
        max_length=80,
        help_text="Your administrator can tell you; it is the last part of your sign-in link.",
    )

    def clean(self):
        cleaned = super().clean()
        if not self.errors and not (cleaned.get("email") or cleaned.get("organisation")):
            raise forms.ValidationError("Give your work email or your organisation's sign-in name.")
        return cleaned


class ConfigurationForm(forms.Form):
    """A customer admin's single sign-on settings (email domains are staff-only, in the admin)."""

    enabled = forms.BooleanField(label="Offer single sign-on", required=False)
    issuer = forms.URLField(
        label="Issuer URL",
        max_length=300,
        assume_scheme="https",
        widget=forms.TextInput(attrs={"inputmode": "url", "size": 60}),
        help_text="From your provider, e.g. https://login.microsoftonline.com/TENANT-ID/v2.0 or "
        "https://accounts.google.com. Its /.well-known/openid-configuration must be reachable.",
    )
    client_id = forms.CharField(label="Client ID", max_length=255)
    client_secret = forms.CharField(
        label="Client secret",
        max_length=500,
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current secret.",
    )
    signing_algorithm = forms.ChoiceField(
        label="ID token signing algorithm", choices=SigningAlgorithm.choices, initial=SigningAlgorithm.RS256
    )
    jit_membership = forms.BooleanField(
        label="Create a viewer account on first sign-in",
        required=False,
        help_text="People your provider vouches for (verified email) get a customer viewer account here. "
        "Off: only people you have added can sign in.",
    )
    enforce_sso = forms.BooleanField(
        label="Require single sign-on",
        required=False,
        help_text="Passwords stop working for everyone in your organisation. Sign in once with single "
        "sign-on first. Assyst staff can switch this off if your provider fails.",
    )

    @classmethod
    def initial_for(cls, config: SSOConfiguration | None) -> dict:
        if config is None:
            return {}
        return {
            "enabled": config.enabled,
            "issuer": config.issuer,
            "client_id": config.client_id,
            "signing_algorithm": config.signing_algorithm,
            "jit_membership": config.jit_membership,
            "enforce_sso": config.enforce_sso,
        }
