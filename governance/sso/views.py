"""Single sign-on in the customer portal (C28): pick the organisation, go to its provider, come back.

The request and callback views are mozilla-django-oidc's, given the organisation's
provider per request instead of one from settings. The state (with its nonce and PKCE
verifier) is bound to the organisation in the session, used once, and the callback only
ever matches users of that organisation.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.decorators.http import require_http_methods
from django_scopes import scopes_disabled
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from governance.access.services import is_customer_admin
from governance.orgsecurity.enforcement import keep_current_session
from governance.portal.access import customer_required
from governance.portal.forms import apply_service_error
from governance.sso.backends import OrganisationOIDCBackend, SSORefused
from governance.sso.discovery import ProviderError, provider_metadata, supports_pkce_s256
from governance.sso.forms import ConfigurationForm, StartForm
from governance.sso.models import SSOConfiguration, SSOIdentity
from governance.sso.policy import SESSION_SSO_ORGANISATION
from governance.sso.services import (
    sso_configuration_for,
    sso_configuration_update,
    sso_identity_unlink,
    sso_login_refused,
)
from governance.tenancy.models import Organisation
from governance.tenancy.selectors import get_for_user

logger = logging.getLogger(__name__)
BACKEND_PATH = "governance.sso.backends.OrganisationOIDCBackend"
SCOPES = "openid email profile"


def _active_configs():
    return SSOConfiguration.objects.select_related("organisation").filter(
        enabled=True, organisation__status=Organisation.Status.ACTIVE
    )


def _refused(request, message: str, *, status: int, organisation: Organisation | None = None):
    return render(request, "portal/sso/refused.html", {"message": message, "organisation": organisation}, status=status)


@require_http_methods(["GET", "POST"])
def sso_start(request):
    """Where "Sign in with single sign-on" leads: find the organisation, then go to its provider."""
    form = StartForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            email, slug = form.cleaned_data["email"], form.cleaned_data["organisation"]
            domain = email.rsplit("@", 1)[-1].lower() if email else None
            with scopes_disabled():
                if slug:
                    config = _active_configs().filter(organisation__slug=slug).first()
                else:
                    # JSON `contains` is not available on SQLite; few organisations set domains.
                    with_domains = _active_configs().exclude(email_domains=[])
                    config = next((c for c in with_domains if domain in c.email_domains), None)
            if config is not None:
                url = reverse("sso:begin", kwargs={"slug": config.organisation.slug})
                next_url = request.POST.get("next")
                return redirect(f"{url}?{urlencode({'next': next_url})}" if next_url else url)
            form.add_error(None, "Single sign-on is not set up for that. Sign in with your password instead.")
        status = 400
    response = render(
        request, "portal/sso/start.html", {"form": form, "next": request.GET.get("next", "")}, status=status
    )
    _allow_form_redirect_to_providers(response)
    return response


def _allow_form_redirect_to_providers(response) -> None:
    """This page's form ends at the provider (form -> begin -> provider): browsers check the
    whole redirect chain against `form-action`, and 'self' alone blocks it. Providers are
    https (loopback http only where allowed), and which one is known only after the post."""
    sources = ["https:"]  # added to 'self'
    if settings.SSO_ALLOW_LOOPBACK_HTTP:
        sources += ["http://127.0.0.1:*", "http://localhost:*"]
    response._csp_update = {"form-action": sources}


class OrganisationAuthenticationRequestView(OIDCAuthenticationRequestView):
    """mozilla-django-oidc's request view for one organisation's provider (state, nonce, PKCE S256)."""

    def __init__(self, *, config: SSOConfiguration, metadata: dict, **kwargs) -> None:
        View.__init__(self, **kwargs)  # the base __init__ reads one provider from settings
        self.config, self.metadata = config, metadata
        self.OIDC_OP_AUTH_ENDPOINT = metadata["authorization_endpoint"]
        self.OIDC_RP_CLIENT_ID = config.client_id

    def get_settings(self, attr, *args):
        per_provider = {
            "OIDC_RP_SCOPES": SCOPES,
            "OIDC_USE_NONCE": True,
            "OIDC_USE_PKCE": supports_pkce_s256(self.metadata),
            "OIDC_PKCE_CODE_CHALLENGE_METHOD": "S256",
            "OIDC_AUTHENTICATION_CALLBACK_URL": "sso:callback",
            "OIDC_AUTH_REQUEST_EXTRA_PARAMS": {},
        }
        if attr in per_provider:
            return per_provider[attr]
        return import_from_settings(attr, *args)


@require_http_methods(["GET"])
def sso_begin(request, slug: str):
    """Send the browser to the organisation's provider; 404 alike for unknown, disabled or closed."""
    with scopes_disabled():
        config = _active_configs().filter(organisation__slug=slug).first()
    if config is None:
        raise Http404("No single sign-on here.")
    try:
        metadata = provider_metadata(config.issuer)
    except ProviderError as exc:
        # Logged, not audited: nobody has signed in yet, and anonymous requests must not
        # be able to write to the append-only trail at will.
        logger.warning("single sign-on of organisation %s: %s", config.organisation_id, exc)
        return _refused(
            request,
            "Your organisation's sign-in provider could not be reached. Try again later.",
            status=502,
            organisation=config.organisation,
        )
    view = OrganisationAuthenticationRequestView(config=config, metadata=metadata)
    view.setup(request)
    response = view.get(request)
    state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
    # Bind the state to this organisation: the callback matches users of it only.
    request.session["oidc_states"][state]["organisation_id"] = config.organisation_id
    request.session.modified = True
    return response


class SSOCallbackView(OIDCAuthenticationCallbackView):
    """mozilla-django-oidc's callback, with the organisation taken from the state, not the request.

    The state entry is removed before anything else (one use, also on failure); the
    backend is called directly (Django's authenticate() would also offer the code to the
    password backends and count refusals as password failures for django-axes); every
    refusal is audited and shown with its reason.
    """

    def get(self, request):
        state = request.GET.get("state", "")
        states = request.session.get("oidc_states")
        entry = states.pop(state, None) if isinstance(states, dict) and state else None
        if entry is None:
            return _refused(request, "This sign-in link is unknown or was already used. Start again.", status=400)
        request.session.modified = True
        with scopes_disabled():
            config = _active_configs().filter(organisation_id=entry.get("organisation_id")).first()
        if config is None:
            return _refused(request, "Single sign-on is no longer offered for this organisation.", status=403)
        if request.GET.get("error"):
            sso_login_refused(config=config, reason="provider_error")
            return _refused(
                request,
                "Your sign-in provider did not sign you in.",
                status=403,
                organisation=config.organisation,
            )
        try:
            metadata = provider_metadata(config.issuer)
            with scopes_disabled():
                self.user = OrganisationOIDCBackend().authenticate(
                    request,
                    sso_config=config,
                    metadata=metadata,
                    nonce=entry.get("nonce"),
                    code_verifier=entry.get("code_verifier"),
                )
        except ProviderError as exc:
            logger.warning("single sign-on of organisation %s: %s", config.organisation_id, exc)
            sso_login_refused(config=config, reason="provider_unreachable")
            return _refused(
                request,
                "Your organisation's sign-in provider could not be reached. Try again later.",
                status=502,
                organisation=config.organisation,
            )
        except SSORefused as exc:
            sso_login_refused(config=config, reason=exc.reason)
            return _refused(request, exc.message, status=403, organisation=config.organisation)
        self.user.backend = BACKEND_PATH
        response = self.login_success()
        request.session[SESSION_SSO_ORGANISATION] = config.organisation_id
        return response


sso_callback = SSOCallbackView.as_view()


@customer_required
@require_http_methods(["GET", "POST"])
def sso_settings(request):
    """The customer admin's single sign-on settings and linked sign-in accounts; viewers are refused."""
    organisation = request.organisation
    if not is_customer_admin(request.user, organisation):
        raise PermissionDenied("Only a customer admin of your organisation can do this.")
    config = sso_configuration_for(organisation)
    form = ConfigurationForm(initial=ConfigurationForm.initial_for(config))
    status = 200
    if request.method == "POST":
        which = request.POST.get("form")
        if which == "provider":
            form = ConfigurationForm(request.POST)
            if form.is_valid():
                try:
                    sso_configuration_update(organisation=organisation, acting_user=request.user, **form.cleaned_data)
                except ValidationError as exc:
                    apply_service_error(form, exc)
                else:
                    if request.session.get(SESSION_SSO_ORGANISATION) == organisation.pk:
                        keep_current_session(request)  # a single sign-on session may stay; a password one ends
                    messages.success(request, "Your single sign-on settings are saved.")
                    return redirect("sso:settings")
        elif which == "unlink":
            identity = get_for_user(
                SSOIdentity.objects.select_related("user", "organisation"),
                request,
                pk=_int(request.POST.get("identity")),
            )
            sso_identity_unlink(identity=identity, acting_user=request.user)
            messages.success(request, f"{identity.user.get_username()} will be matched by email at the next sign-in.")
            return redirect("sso:settings")
        else:
            messages.error(request, "Unknown form.")
        status = 400
    identities = SSOIdentity.objects.filter(organisation=organisation).select_related("user").order_by("user__username")
    return render(
        request,
        "portal/sso/settings.html",
        {
            "form": form,
            "config": config,
            "identities": identities,
            "redirect_uri": request.build_absolute_uri(reverse("sso:callback")),
            "sign_in_url": request.build_absolute_uri(reverse("sso:begin", kwargs={"slug": organisation.slug})),
        },
        status=status,
    )


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Http404 from None
