"""The OpenID Connect relying party, per organisation, on top of mozilla-django-oidc.

mozilla-django-oidc is configured globally (one provider in settings). Here every
sign-in carries its organisation's configuration instead, and the checks the library
leaves out are added: audience, issuer, `azp`, required claims, a bounded clock
leeway, cached key sets with one refetch on an unknown key id, a userinfo answer only
for the same subject, and no redirects or private addresses on the server-side calls
(`governance.sso.discovery`). Which portal user the verified claims stand for is a
business rule and lives in `services.sso_login_complete`.

Django's `authenticate()` never reaches this backend with a password: it acts only when
called with `sso_config`, which only the callback view does. It is listed in
AUTHENTICATION_BACKENDS so sessions it started resolve their user; permissions stay
with ModelBackend (this one grants none).
"""

from __future__ import annotations

import hmac
from urllib.parse import quote

import jwt
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import absolutify
from requests.auth import HTTPBasicAuth

from governance.sso.discovery import ProviderError, provider_jwks, provider_request, uses_basic_auth
from governance.sso.models import SSOConfiguration

# Clock difference tolerated between us and the provider, in seconds.
CLOCK_LEEWAY_SECONDS = 60
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "sub"]


class SSORefused(Exception):
    """A single sign-on that must not log anybody in; `reason` is a stable code for the audit trail."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class OrganisationOIDCBackend(OIDCAuthenticationBackend):
    def __init__(self, *args, **kwargs) -> None:
        # The base reads one provider from settings here (and fails without it); ours
        # are set per sign-in by `_configure`.
        self.UserModel = get_user_model()
        self.config: SSOConfiguration | None = None
        self.metadata: dict = {}

    def _configure(self, config: SSOConfiguration, metadata: dict) -> None:
        self.config, self.metadata = config, metadata
        self.OIDC_OP_TOKEN_ENDPOINT = metadata["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = metadata.get("userinfo_endpoint")
        self.OIDC_OP_JWKS_ENDPOINT = metadata["jwks_uri"]
        self.OIDC_RP_CLIENT_ID = config.client_id
        self.OIDC_RP_CLIENT_SECRET = config.client_secret
        self.OIDC_RP_SIGN_ALGO = config.signing_algorithm
        self.OIDC_RP_IDP_SIGN_KEY = None

    # --- the flow ------------------------------------------------------------------

    def authenticate(self, request, sso_config: SSOConfiguration | None = None, **kwargs):
        """Exchange the callback's code and return the verified claims' user, or raise SSORefused."""
        if sso_config is None or request is None:
            return None
        from governance.sso.services import sso_login_complete

        claims = self.verified_claims(
            request,
            config=sso_config,
            metadata=kwargs["metadata"],
            nonce=kwargs.get("nonce"),
            code_verifier=kwargs.get("code_verifier"),
        )
        return sso_login_complete(config=sso_config, claims=claims)

    def verified_claims(
        self, request, *, config: SSOConfiguration, metadata: dict, nonce: str | None, code_verifier: str | None
    ) -> dict:
        self._configure(config, metadata)
        self.request = request
        code = request.GET.get("code")
        if not code or not nonce:
            raise SSORefused("state", "This sign-in link is incomplete or was already used. Start again.")
        token_payload = {
            "client_id": self.OIDC_RP_CLIENT_ID,
            "client_secret": self.OIDC_RP_CLIENT_SECRET,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": absolutify(request, reverse("sso:callback")),
        }
        if code_verifier:
            token_payload["code_verifier"] = code_verifier
        token_info = self.get_token(token_payload)
        id_token = token_info.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise SSORefused("token", "Your provider did not return an ID token.")
        claims = self.verify_token(id_token, nonce=nonce)
        if "email" not in claims:
            claims = {**claims, **self._userinfo_for(claims["sub"], token_info.get("access_token"))}
        return claims

    # --- mozilla-django-oidc hooks, tightened -------------------------------------------

    def get_token(self, payload: dict) -> dict:
        data, auth = dict(payload), None
        if uses_basic_auth(self.metadata):
            # RFC 6749 2.3.1: form-encode both parts before Basic encoding.
            auth = HTTPBasicAuth(quote(data.pop("client_id"), safe=""), quote(data.pop("client_secret"), safe=""))
        try:
            response = provider_request(
                "POST", self.OIDC_OP_TOKEN_ENDPOINT, data=data, auth=auth, headers={"Accept": "application/json"}
            )
        except ProviderError as exc:
            raise SSORefused("provider_unreachable", "Your sign-in provider could not be reached.") from exc
        if response.status_code != 200:
            raise SSORefused("token", "Your sign-in provider refused to complete the sign-in. Start again.")
        try:
            return response.json()
        except ValueError as exc:
            raise SSORefused("token", "Your sign-in provider answered something unexpected.") from exc

    def retrieve_matching_jwk(self, token: str) -> jwt.PyJWK:
        """The key named by the token's `kid`; an unknown id refetches the set once (rotation)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise SSORefused("signature", "The sign-in token is malformed.") from exc
        kid, alg = header.get("kid"), header.get("alg")
        if alg != self.OIDC_RP_SIGN_ALGO:  # also "none": refused before any key is fetched
            raise SSORefused("signature", "The sign-in token uses an algorithm this organisation does not accept.")
        for refresh in (False, True):
            try:
                jwks = provider_jwks(self.OIDC_OP_JWKS_ENDPOINT, refresh=refresh)
            except ProviderError as exc:
                raise SSORefused("provider_unreachable", "Your sign-in provider's keys could not be read.") from exc
            candidates = [
                k
                for k in jwks["keys"]
                if isinstance(k, dict)
                and k.get("use", "sig") == "sig"
                and (kid is None or k.get("kid") == kid)
                and k.get("alg", alg) == alg
            ]
            if len(candidates) == 1:
                try:
                    return jwt.PyJWK(candidates[0], algorithm=self.OIDC_RP_SIGN_ALGO)
                except jwt.PyJWTError as exc:
                    raise SSORefused("signature", "Your sign-in provider's key is unusable.") from exc
        raise SSORefused("signature", "The sign-in token is signed with a key your provider does not publish.")

    def _verify_jws(self, payload: str, key) -> dict:
        """Signature, algorithm, issuer, audience, expiry and issue time (the base skips aud and iss)."""
        try:
            alg = jwt.get_unverified_header(payload).get("alg")
        except jwt.PyJWTError as exc:
            raise SSORefused("signature", "The sign-in token is malformed.") from exc
        if alg != self.OIDC_RP_SIGN_ALGO:
            raise SSORefused("signature", "The sign-in token uses an algorithm this organisation does not accept.")
        try:
            claims = jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=self.metadata["issuer"],
                leeway=CLOCK_LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.InvalidAudienceError as exc:
            raise SSORefused("audience", "The sign-in token was issued for another application.") from exc
        except jwt.InvalidIssuerError as exc:
            raise SSORefused("issuer", "The sign-in token comes from another provider.") from exc
        except jwt.ExpiredSignatureError as exc:
            raise SSORefused("expired", "The sign-in token has expired. Start again.") from exc
        except jwt.PyJWTError as exc:
            raise SSORefused("signature", "The sign-in token failed verification.") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        # OIDC Core 3.1.3.7: with several audiences the authorised party must be us.
        if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SSORefused("audience", "The sign-in token was issued for another application.")
        return claims

    def verify_token(self, token: str, **kwargs) -> dict:
        claims = self._verify_jws(token, self.retrieve_matching_jwk(token))
        nonce = kwargs.get("nonce") or ""
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise SSORefused("nonce", "The sign-in token belongs to another sign-in attempt. Start again.")
        return claims

    def _userinfo_for(self, subject: str, access_token: str | None) -> dict:
        """Email claims from the userinfo endpoint, only for the ID token's own subject (OIDC Core 5.3.2)."""
        if not self.OIDC_OP_USER_ENDPOINT or not access_token:
            return {}
        try:
            response = provider_request(
                "GET", self.OIDC_OP_USER_ENDPOINT, headers={"Authorization": f"Bearer {access_token}"}
            )
            info = response.json() if response.status_code == 200 else {}
        except (ProviderError, ValueError) as exc:
            raise SSORefused("provider_unreachable", "Your sign-in provider's user details could not be read.") from exc
        if not isinstance(info, dict) or info.get("sub") != subject:
            raise SSORefused("claims", "Your sign-in provider returned details of another user.")
        return {k: info[k] for k in ("email", "email_verified", "given_name", "family_name") if k in info}

    # --- Django backend interface ---------------------------------------------------

    def get_user(self, user_id):
        # ModelBackend's version: refuses inactive users (the base class does not).
        return ModelBackend.get_user(self, user_id)

    def get_user_permissions(self, user_obj, obj=None) -> set:
        return set()

    def get_group_permissions(self, user_obj, obj=None) -> set:
        return set()

    def get_all_permissions(self, user_obj, obj=None) -> set:
        return set()

    def has_perm(self, user_obj, perm, obj=None) -> bool:
        return False

    def has_module_perms(self, user_obj, app_label) -> bool:
        return False

    def with_perm(self, perm, is_active=True, include_superusers=True, obj=None):
        return self.UserModel._default_manager.none()
