"""HTTPS-only settings, HSTS, secure cookies, TLS to PostgreSQL and Redis (C07).

The test run itself sets SECURE_SSL_REDIRECT=false (pyproject, pytest-env), so the
production values are read in subprocesses that load the settings module under a
production-like environment: DEBUG off, fresh random keys, a real host name.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.factories import PASSWORD, MembershipFactory

pytestmark = pytest.mark.commitment("C07")

BASE_DIR = Path(__file__).resolve().parent.parent
ONE_YEAR = 365 * 24 * 3600

# Test-only or security overrides that must not leak from the test run into "production".
_NOT_INHERITED = (
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
    "DATABASE_SSLMODE",
    "REDIS_SSL_CERT_REQS",
    "EMAIL_BACKEND",
)


def _production_env(**overrides: str | None) -> dict[str, str]:
    """The current environment (so DATABASE_URL / REDIS_URL are kept) made production-like.
    An override of None removes the variable."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update(
        DJANGO_SETTINGS_MODULE="assyst.settings",
        DJANGO_DEBUG="false",
        DJANGO_ENV_FILE="/nonexistent",
        SECRET_KEY=secrets.token_urlsafe(50),
        CRYPTOGRAPHY_KEY=secrets.token_urlsafe(32),
        ALLOWED_HOSTS="portal.example.com",
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _run(args: list[str], **overrides: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        env=_production_env(**overrides),
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _python_json(code: str, **overrides: str | None):
    """Run `code` (which must print one JSON line last) against the production settings."""
    result = _run(["-c", code], **overrides)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _settings_json(*names: str, **overrides: str | None) -> dict:
    code = (
        "import json; from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {list(names)!r}}}, default=str))"
    )
    return _python_json(code, **overrides)


# --- manage.py check --deploy ------------------------------------------------------


def test_check_deploy_reports_no_issues():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "no issues" in output


def test_check_deploy_catches_switched_off_protections():
    """The same check fails loudly when someone turns the protections off."""
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        SECURE_HSTS_SECONDS="0",
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECRET_KEY="django-insecure-short",
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W009", "security.W012", "security.W016"):
        assert warning in output, warning


# --- Production values ---------------------------------------------------------------


def test_production_defaults_are_https_only():
    values = _settings_json(
        "DEBUG",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "CSRF_COOKIE_SECURE",
        "SECURE_CONTENT_TYPE_NOSNIFF",
        "X_FRAME_OPTIONS",
        "SECURE_PROXY_SSL_HEADER",
        "ALLOWED_HOSTS",
    )
    assert values["DEBUG"] is False
    assert values["SECURE_HSTS_SECONDS"] >= ONE_YEAR
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["X_FRAME_OPTIONS"] == "DENY"
    # Trusting X-Forwarded-Proto is opt-in: without a proxy that strips it, clients could forge it.
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["ALLOWED_HOSTS"] == ["portal.example.com"]


def test_proxy_ssl_header_comes_from_the_environment():
    values = _settings_json("SECURE_PROXY_SSL_HEADER", SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO")
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_database_url_sslmode_reaches_the_driver():
    values = _settings_json(
        "DATABASES",
        DATABASE_URL="postgres://assyst:pw@db.example.com:5432/assyst?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem",
    )
    options = values["DATABASES"]["default"]["OPTIONS"]
    assert options["sslmode"] == "verify-full"
    assert options["sslrootcert"] == "/etc/ssl/ca.pem"


def test_database_sslmode_variable_reaches_the_driver():
    values = _settings_json(
        "DATABASES", DATABASE_URL="postgres://assyst:pw@db.example.com:5432/assyst", DATABASE_SSLMODE="require"
    )
    assert values["DATABASES"]["default"]["OPTIONS"]["sslmode"] == "require"


_BROKER_SSL = (
    "import json; from assyst.celery import app; from django.conf import settings; "
    "ssl_opts = app.conf.broker_use_ssl; "
    "print(json.dumps({'broker_url': app.conf.broker_url, 'cache': settings.CACHES['default']['LOCATION'], "
    "'ssl': {k: int(v) for k, v in ssl_opts.items()} if ssl_opts else ssl_opts}))"
)


def test_rediss_url_gives_the_celery_broker_verified_tls():
    values = _python_json(_BROKER_SSL, REDIS_URL="rediss://:pw@redis.example.com:6380/0")
    assert values["broker_url"].startswith("rediss://")
    assert values["cache"].startswith("rediss://")
    assert values["ssl"] == {"ssl_cert_reqs": int(ssl.CERT_REQUIRED)}


def test_plain_redis_url_has_no_tls_options():
    values = _python_json(_BROKER_SSL, REDIS_URL="redis://redis.example.com:6379/0")
    assert not values["ssl"]


# --- Required secrets ----------------------------------------------------------------

_LOAD_SETTINGS = "import django; django.setup()"


@pytest.mark.parametrize("name", ["SECRET_KEY", "CRYPTOGRAPHY_KEY"])
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_settings_refuse_to_load_without_a_secret(name, value):
    result = _run(["-c", _LOAD_SETTINGS], **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{name} is not set" in result.stderr


def test_settings_refuse_a_short_data_key():
    result = _run(["-c", _LOAD_SETTINGS], CRYPTOGRAPHY_KEY="too-short")
    assert result.returncode != 0
    assert "CRYPTOGRAPHY_KEY must be at least 32" in result.stderr


def test_production_env_loads():
    """Counterpart of the refusals above: the same environment with both keys loads."""
    result = _run(["-c", _LOAD_SETTINGS])
    assert result.returncode == 0, result.stderr


# --- Response headers (in-process; the test run has DEBUG off) --------------------------


def test_responses_carry_security_headers():
    response = Client().get("/portal/login/")
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_https_responses_carry_hsts():
    assert settings.DEBUG is False
    response = Client().get("/portal/login/", secure=True)
    hsts = response["Strict-Transport-Security"]
    max_age = int(hsts.split(";")[0].removeprefix("max-age="))
    assert max_age >= ONE_YEAR
    assert "includeSubDomains" in hsts


def test_http_is_redirected_to_https_and_proxy_header_is_honoured(settings):
    """What SECURE_SSL_REDIRECT + SECURE_PROXY_SSL_HEADER do in production (test runs switch the redirect off)."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = Client()
    plain = client.get("/portal/login/")
    assert plain.status_code == 301
    assert plain["Location"] == "https://testserver/portal/login/"
    assert client.get("/portal/login/", HTTP_X_FORWARDED_PROTO="https").status_code == 200


@pytest.mark.django_db
def test_session_and_csrf_cookies_are_secure():
    assert settings.DEBUG is False
    client = Client()
    form = client.get("/portal/login/")
    assert form.cookies["csrftoken"]["secure"]
    user = MembershipFactory().user
    response = client.post("/portal/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["secure"]
    assert session["httponly"]
    assert session["samesite"] == "Lax"
