"""Talking to an organisation's provider: discovery document, JWKS, safely fetched and cached.

Issuer URLs are typed in by customers, so every outgoing request is a possible
server-side request forgery: only https, only to hosts whose addresses are public
(loopback http only where SSO_ALLOW_LOOPBACK_HTTP, for tests and local trials), and
redirects are never followed. Discovery documents and key sets are cached in the shared
cache (SSO_METADATA_CACHE_SECONDS); an unknown key id refetches the key set once, so a
provider's key rotation is picked up without waiting for the cache to expire.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError

_CACHE_PREFIX = "sso:v1:"
_MAX_DOCUMENT_BYTES = 512 * 1024


class ProviderError(Exception):
    """The provider could not be reached or answered something unusable (shown to users as such)."""


def _loopback_allowed() -> bool:
    return bool(getattr(settings, "SSO_ALLOW_LOOPBACK_HTTP", False))


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_provider_url(url: str, *, field: str = "issuer") -> None:
    """Refuse URLs the server must not call: not https, credentials, fragments, odd ports."""
    parts = urlsplit(url or "")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValidationError({field: "Enter a full URL, e.g. https://login.example.com."})
    if parts.username or parts.password or parts.fragment or parts.query:
        raise ValidationError({field: "The URL must not contain a user name, password, query or fragment."})
    if parts.scheme == "https":
        pass
    elif parts.scheme == "http" and _is_loopback_host(host) and _loopback_allowed():
        pass
    else:
        raise ValidationError({field: "The provider must be reached over https."})
    if _is_loopback_host(host) and not _loopback_allowed():
        raise ValidationError({field: "This address is not reachable from Assyst."})
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return
    if not literal.is_global and not (literal.is_loopback and _loopback_allowed()):
        raise ValidationError({field: "This address is not reachable from Assyst."})


def _check_resolves_publicly(url: str) -> None:
    """Every address the host resolves to must be public (or loopback where allowed)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise ProviderError(f"the provider's host {host!r} could not be resolved") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_loopback and _loopback_allowed():
            continue
        if not address.is_global:
            raise ProviderError(f"the provider's host {host!r} resolves to a non-public address")


def provider_request(method: str, url: str, **kwargs: Any) -> requests.Response:
    """One request to a provider endpoint, with the URL checks above, a timeout, no redirects."""
    try:
        validate_provider_url(url, field="url")
    except ValidationError as exc:
        raise ProviderError(f"refused to call {url!r}: {exc.messages[0]}") from exc
    _check_resolves_publicly(url)
    try:
        response = requests.request(
            method,
            url,
            timeout=settings.SSO_HTTP_TIMEOUT_SECONDS,
            allow_redirects=False,
            **kwargs,
        )
    except requests.RequestException as exc:
        raise ProviderError(f"the provider did not answer ({type(exc).__name__})") from exc
    if len(response.content) > _MAX_DOCUMENT_BYTES:
        raise ProviderError("the provider's answer is too large")
    return response


def _get_json(url: str) -> dict:
    response = provider_request("GET", url, headers={"Accept": "application/json"})
    if response.status_code != 200:
        raise ProviderError(f"{url} answered HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError as exc:
        raise ProviderError(f"{url} did not answer JSON") from exc
    if not isinstance(document, dict):
        raise ProviderError(f"{url} did not answer a JSON object")
    return document


def _cache_key(kind: str, url: str) -> str:
    return _CACHE_PREFIX + kind + ":" + hashlib.sha256(url.encode()).hexdigest()


REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


def provider_metadata(issuer: str, *, refresh: bool = False) -> dict:
    """The issuer's discovery document (OpenID Connect Discovery 1.0), checked and cached."""
    issuer = issuer.rstrip("/")
    key = _cache_key("metadata", issuer)
    if not refresh and (cached := cache.get(key)) is not None:
        return cached
    document = _get_json(issuer + "/.well-known/openid-configuration")
    # Discovery section 4.3: the document must name exactly the issuer we asked.
    if str(document.get("issuer", "")).rstrip("/") != issuer:
        raise ProviderError("the discovery document names a different issuer")
    for name in REQUIRED_ENDPOINTS:
        value = document.get(name)
        if not isinstance(value, str):
            raise ProviderError(f"the discovery document has no {name}")
        try:
            validate_provider_url(value, field=name)
        except ValidationError as exc:
            raise ProviderError(f"the discovery document's {name} is refused: {exc.messages[0]}") from exc
    if document.get("userinfo_endpoint"):
        try:
            validate_provider_url(document["userinfo_endpoint"], field="userinfo_endpoint")
        except ValidationError as exc:
            raise ProviderError(f"the discovery document's userinfo_endpoint is refused: {exc.messages[0]}") from exc
    cache.set(key, document, settings.SSO_METADATA_CACHE_SECONDS)
    return document


def provider_jwks(jwks_uri: str, *, refresh: bool = False) -> dict:
    """The provider's signing keys (a JWK Set), cached like the discovery document."""
    key = _cache_key("jwks", jwks_uri)
    if not refresh and (cached := cache.get(key)) is not None:
        return cached
    document = _get_json(jwks_uri)
    if not isinstance(document.get("keys"), list):
        raise ProviderError("the key set has no keys")
    cache.set(key, document, settings.SSO_METADATA_CACHE_SECONDS)
    return document


def supports_pkce_s256(metadata: dict) -> bool:
    """PKCE unless the provider lists its methods without S256 (absent list: send it, it is ignored)."""
    methods = metadata.get("code_challenge_methods_supported")
    return methods is None or "S256" in methods


def uses_basic_auth(metadata: dict) -> bool:
    """client_secret_basic is the spec's default; post only where the provider lists post and not basic."""
    methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    return "client_secret_basic" in methods or "client_secret_post" not in methods
