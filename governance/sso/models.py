"""Single sign-on (C28): one OpenID Connect provider per organisation, and the identities it vouched for."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django_scopes import ScopedManager

from governance.core.encryption import EncryptedCharField


class SigningAlgorithm(models.TextChoices):
    # Asymmetric only: with HS256 the client secret would double as the token-signing key.
    RS256 = "RS256", "RS256 (RSA)"
    ES256 = "ES256", "ES256 (elliptic curve)"


class SSOConfiguration(models.Model):
    """An organisation's OpenID Connect provider: where its users sign in instead of a password.

    The client secret is stored as AES-256 ciphertext (C06) and never shown again after it
    is entered. `verified_at` is when a sign-in last succeeded with the current issuer and
    client; enforcing single sign-on needs it, so an organisation cannot switch off
    passwords before single sign-on is proven to work.
    """

    organisation = models.OneToOneField(
        "tenancy.Organisation", on_delete=models.CASCADE, related_name="sso_configuration"
    )
    enabled = models.BooleanField(default=False, help_text="Offer single sign-on to this organisation's users.")
    issuer = models.URLField(
        max_length=300,
        help_text="The provider's issuer URL, exactly as in its /.well-known/openid-configuration.",
    )
    client_id = models.CharField(max_length=255)
    client_secret = EncryptedCharField(max_length=500)
    signing_algorithm = models.CharField(max_length=8, choices=SigningAlgorithm.choices, default=SigningAlgorithm.RS256)
    email_domains = models.JSONField(
        default=list,
        blank=True,
        help_text="Email domains that lead to this provider on the sign-in page (set by Assyst staff).",
    )
    jit_membership = models.BooleanField(
        "create viewers on first sign-in",
        default=False,
        help_text="A verified email without an account here becomes a new customer viewer.",
    )
    enforce_sso = models.BooleanField(
        "require single sign-on",
        default=False,
        help_text="Password sign-in is refused for this organisation's users.",
    )
    verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(organisation="organisation")

    class Meta:
        verbose_name = "single sign-on configuration"

    def __str__(self) -> str:
        return f"Single sign-on of {self.organisation}"


class SSOIdentity(models.Model):
    """The provider account (issuer + subject) a portal user signed in with.

    Written on the first single sign-on, when the verified email matched the user (or a
    new viewer was created). Later sign-ins go by subject first, so a provider that hands
    the same email to a different person later cannot take over the first person's account.
    """

    organisation = models.ForeignKey("tenancy.Organisation", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities")
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(organisation="organisation")

    class Meta:
        verbose_name = "single sign-on identity"
        verbose_name_plural = "single sign-on identities"
        constraints = [
            models.UniqueConstraint(fields=["organisation", "issuer", "subject"], name="sso_identity_unique_subject"),
            models.UniqueConstraint(fields=["organisation", "issuer", "user"], name="sso_identity_one_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} via {self.issuer}"
