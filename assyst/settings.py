"""Settings for the Assyst governance portal: one module, read from the environment.

Every variable is documented in `.env.example`. A local `.env` file (created by
`make run` with fresh random keys) is read when present; real environment variables
win over it. Required secrets fail fast outside debug: there is no silent fallback.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
_env_file = env.str("DJANGO_ENV_FILE", default=str(BASE_DIR / ".env"))
if Path(_env_file).is_file():
    env.read_env(_env_file, overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _required(name: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set. Set it in the environment or in .env "
            "(see .env.example; `make run` writes a development .env for you)."
        )
    return value


SECRET_KEY = _required("SECRET_KEY")
# Old SECRET_KEY values, still accepted for signatures (sessions, password reset)
# while they age out. Encrypted fields do not depend on SECRET_KEY at all.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

# Data-encryption key for personal-data fields (AES-256, see governance/core/encryption.py),
# read from the CRYPTOGRAPHY_KEY variable. It is deliberately NOT stored as
# settings.CRYPTOGRAPHY_KEY: django-cryptography's AppConf overwrites that setting with
# its own PBKDF2 derivation on import.
FIELD_ENCRYPTION_KEY = _required("CRYPTOGRAPHY_KEY")
# Old data keys, tried on read while `manage.py rotate_encryption_key` re-encrypts.
FIELD_ENCRYPTION_KEY_FALLBACKS = env.list("CRYPTOGRAPHY_KEY_FALLBACKS", default=[])
if len(FIELD_ENCRYPTION_KEY) < 32 and not DEBUG:
    raise ImproperlyConfigured("CRYPTOGRAPHY_KEY must be at least 32 random characters.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://localhost:8000")

INSTALLED_APPS = [
    "django.contrib.admin",  # autodiscovers admin modules; our OTP site is assyst.admin_site.site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",  # customers' recovery codes (C28)
    "guardian",
    "axes",
    "import_export",
    "rest_framework",  # the integration API (/api/v1/, governance/api/)
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files (CSP 'self')
    "governance.core",
    "governance.audit",
    "governance.tenancy",
    "governance.access",
    "governance.disclosure",
    "governance.legal",
    "governance.retention",
    "governance.risk",
    "governance.orgsecurity",
    "governance.sso",
    "governance.portal",
    "governance.trust",
    "governance.api",
    "incidents",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Public status outputs from memory, before sessions and auth (incidents/status/middleware.py).
    "incidents.status.middleware.PublicResponseCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "governance.audit.middleware.AuditContextMiddleware",
    "governance.tenancy.middleware.TenantScopeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Each organisation's own settings (C28) on every request of its users: needs the
    # user, OTP state, tenant (request.organisation) and messages set up above.
    "governance.orgsecurity.middleware.OrgSecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Axes last, as its docs require: it turns lockouts into a 429 response.
    "axes.middleware.AxesMiddleware",
]

# Public, cacheable paths: the tenant middleware does not look at the user there (no
# session read, so no `Vary: Cookie`) and no tenant scope is active.
PUBLIC_PATH_PREFIXES = (
    "/status/",
    "/api/v2/",
    "/.well-known/",
    "/security.txt",
    "/transparency/",
    "/trust/",
    "/security/policy/",
    "/healthz",
    "/static/",
)

ROOT_URLCONF = "assyst.urls"
WSGI_APPLICATION = "assyst.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# Embedded default: SQLite under var/. DATABASE_URL switches to PostgreSQL, e.g.
# postgres://user:pass@host:5432/assyst?sslmode=verify-full&sslrootcert=/path/ca.pem
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'assyst.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Worker, beat and web share one file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
else:
    DATABASES["default"].setdefault("OPTIONS", {})
    _sslmode = env.str("DATABASE_SSLMODE", default="")
    if _sslmode:
        DATABASES["default"]["OPTIONS"]["sslmode"] = _sslmode

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Authentication -------------------------------------------------------------
AUTH_USER_MODEL = "access.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out username+IP pairs
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
    # Single sign-on (C28): only its callback view signs in with it; listed so those sessions resolve.
    "governance.sso.backends.OrganisationOIDCBackend",
]
# Argon2id first (C08); PBKDF2 stays listed so old hashes verify and are upgraded on login.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:login"

# django-guardian: no anonymous user row, no monkey patching; object permissions only.
ANONYMOUS_USER_NAME = None
GUARDIAN_MONKEY_PATCH_USER = False
GUARDIAN_MONKEY_PATCH_GROUP = False
GUARDIAN_RAISE_403 = False
GUARDIAN_RENDER_403 = False

# django-axes (C10): lock a username+IP pair, never a whole proxy's address.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# AXES_PROXY_COUNT is the number of reverse proxies in front of the app. ipware's
# proxy_count counts only the proxies listed inside X-Forwarded-For; the nearest proxy
# is REMOTE_ADDR and never in the header, hence the -1. (Passing the count unchanged made
# ipware return no IP for a normal request and the attacker's forged entry otherwise.)
_axes_proxy_count = env.int("AXES_PROXY_COUNT", default=0)
AXES_IPWARE_PROXY_COUNT = _axes_proxy_count - 1 if _axes_proxy_count > 0 else None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if _axes_proxy_count > 0 else ("REMOTE_ADDR",)
)
# Take the address our outermost proxy appended even when the client sent its own
# X-Forwarded-For (strict mode would then fall back to the proxy's REMOTE_ADDR).
IPWARE_STRICT = False
AXES_USERNAME_FORM_FIELD = "username"
AXES_ENABLE_ACCESS_FAILURE_LOG = False
AXES_VERBOSE = env.bool("AXES_VERBOSE", default=False)

# django-otp: TOTP issuer shown in authenticator apps.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Assyst governance portal")
# Seeds never show in the admin (its QR/config pages would hand one staff member's second
# factor to anyone who may view devices); `manage.py totp_enrol` prints them once instead.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# --- Single sign-on (C28) ----------------------------------------------------------
# Per-organisation OpenID Connect providers (governance/sso/). Calls to a provider time out
# after this many seconds; discovery documents and key sets are cached this long (an unknown
# key id refetches at once); plain http to a loopback issuer is accepted only when
# SSO_ALLOW_LOOPBACK_HTTP is on (local trials and tests; never in production).
SSO_HTTP_TIMEOUT_SECONDS = env.int("SSO_HTTP_TIMEOUT_SECONDS", default=10)
SSO_METADATA_CACHE_SECONDS = env.int("SSO_METADATA_CACHE_SECONDS", default=3600)
SSO_ALLOW_LOOPBACK_HTTP = env.bool("SSO_ALLOW_LOOPBACK_HTTP", default=DEBUG)
# mozilla-django-oidc: its views are given each organisation's provider per request;
# these are the global parts it still reads.
OIDC_AUTHENTICATION_CALLBACK_URL = "sso:callback"
OIDC_STATE_SIZE = 32
OIDC_NONCE_SIZE = 32

# --- Support access (C03, C04, C05) ------------------------------------------------
# Most staff a single support-access request may name (need-to-know).
SUPPORT_ACCESS_MAX_NAMED_STAFF = env.int("SUPPORT_ACCESS_MAX_NAMED_STAFF", default=3)
# Access reviews: one campaign per this many months, due this many days after it opens.
ACCESS_REVIEW_INTERVAL_MONTHS = env.int("ACCESS_REVIEW_INTERVAL_MONTHS", default=3)
ACCESS_REVIEW_DUE_DAYS = env.int("ACCESS_REVIEW_DUE_DAYS", default=14)
if not 1 <= ACCESS_REVIEW_INTERVAL_MONTHS <= 12 or 12 % ACCESS_REVIEW_INTERVAL_MONTHS:
    raise ImproperlyConfigured("ACCESS_REVIEW_INTERVAL_MONTHS must divide the year: 1, 2, 3, 4, 6 or 12.")

# --- Incidents (C12-C20) ---------------------------------------------------------------
# Processor "without undue delay" target for telling controllers (GDPR Art. 33(2)), hours.
INCIDENT_PROCESSOR_NOTICE_HOURS = env.int("INCIDENT_PROCESSOR_NOTICE_HOURS", default=24)
# Outbox delivery: attempts before a notification is marked failed, and the lease a
# sender holds on a row (after it a sweep may take over a row whose worker died).
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=10)
OUTBOX_SEND_LEASE_SECONDS = env.int("OUTBOX_SEND_LEASE_SECONDS", default=120)
# Evidence files: where the (encrypted) bytes live, and the upload limits.
EVIDENCE_ROOT = env.str("EVIDENCE_ROOT", default=str(VAR_DIR / "evidence"))
EVIDENCE_MAX_BYTES = env.int("EVIDENCE_MAX_BYTES", default=20 * 1024 * 1024)
EVIDENCE_ALLOWED_TYPES = env.list(
    "EVIDENCE_ALLOWED_TYPES",
    default=["application/pdf", "image/png", "image/jpeg", "text/plain", "text/csv", "application/json"],
)

# Status-page subscriptions (C14, C15): sign-ups per client IP per fixed window (shared
# cache), how long a confirmation link works, webhook request timeout, consecutive failed
# deliveries after which a webhook is disabled, and whether http://127.0.0.1 webhook URLs
# are accepted (development and tests only; otherwise https is required).
STATUS_SUBSCRIBE_RATE_LIMIT = env.int("STATUS_SUBSCRIBE_RATE_LIMIT", default=5)
STATUS_SUBSCRIBE_RATE_WINDOW_SECONDS = env.int("STATUS_SUBSCRIBE_RATE_WINDOW_SECONDS", default=3600)
STATUS_CONFIRM_HOURS = env.int("STATUS_CONFIRM_HOURS", default=48)
STATUS_WEBHOOK_TIMEOUT_SECONDS = env.int("STATUS_WEBHOOK_TIMEOUT_SECONDS", default=10)
STATUS_WEBHOOK_MAX_FAILURES = env.int("STATUS_WEBHOOK_MAX_FAILURES", default=10)
STATUS_WEBHOOK_ALLOW_LOOPBACK_HTTP = env.bool("STATUS_WEBHOOK_ALLOW_LOOPBACK_HTTP", default=DEBUG)
# Receivers must resolve to public addresses (no requests into our own network); true
# allows private addresses for receivers that are inside it on purpose.
STATUS_WEBHOOK_ALLOW_PRIVATE = env.bool("STATUS_WEBHOOK_ALLOW_PRIVATE", default=False)

# --- Legal requests (C27) ----------------------------------------------------------------
# Legal documents (orders, objections): folder for the encrypted bytes; size and type
# limits are the evidence ones above.
LEGAL_DOCUMENT_ROOT = env.str("LEGAL_DOCUMENT_ROOT", default=str(VAR_DIR / "legal"))
# Public transparency report: counts below this are shown as a band "0-(N-1)".
LEGAL_TRANSPARENCY_BAND = env.int("LEGAL_TRANSPARENCY_BAND", default=5)

# --- Vulnerability disclosure (C11) ------------------------------------------------------
# security.txt (RFC 9116): mailto: contacts besides the report form; Expires is computed
# as now + this many days (1-365; the RFC advises less than a year ahead).
SECURITY_TXT_CONTACT_EMAILS = env.list("SECURITY_TXT_CONTACT_EMAILS", default=["security@assyst.invalid"])
SECURITY_TXT_EXPIRES_DAYS = env.int("SECURITY_TXT_EXPIRES_DAYS", default=180)
if not 1 <= SECURITY_TXT_EXPIRES_DAYS <= 365:
    raise ImproperlyConfigured("SECURITY_TXT_EXPIRES_DAYS must be between 1 and 365.")
# Public report form: submissions per client IP per fixed window (shared cache), the
# largest POST body accepted, and the first-response target in England working days.
DISCLOSURE_RATE_LIMIT = env.int("DISCLOSURE_RATE_LIMIT", default=5)
DISCLOSURE_RATE_WINDOW_SECONDS = env.int("DISCLOSURE_RATE_WINDOW_SECONDS", default=3600)
DISCLOSURE_MAX_BODY_BYTES = env.int("DISCLOSURE_MAX_BODY_BYTES", default=256 * 1024)
DISCLOSURE_FIRST_RESPONSE_WORKING_DAYS = env.int("DISCLOSURE_FIRST_RESPONSE_WORKING_DAYS", default=3)

# --- Retention and backups (C21, C22, C24) ---------------------------------------------
# Clean-up runs purge terminated organisations; one run every this many months (6-12,
# the FAQ's promise), counted from the last completed run or, before the first, from
# the anchor date (YYYY-MM-DD).
RETENTION_CLEANUP_INTERVAL_MONTHS = env.int("RETENTION_CLEANUP_INTERVAL_MONTHS", default=6)
if not 6 <= RETENTION_CLEANUP_INTERVAL_MONTHS <= 12:
    raise ImproperlyConfigured("RETENTION_CLEANUP_INTERVAL_MONTHS must be between 6 and 12 (the FAQ's promise).")
try:
    RETENTION_CLEANUP_ANCHOR = date.fromisoformat(env.str("RETENTION_CLEANUP_ANCHOR", default="2026-01-01"))
except ValueError as _e:
    raise ImproperlyConfigured("RETENTION_CLEANUP_ANCHOR must be a date, YYYY-MM-DD.") from _e
# Rows deleted per transaction by the purge (no rows are loaded, so memory is flat; a
# batch holds its locks for milliseconds). 5,000 measured best in bench/purge_bench.py.
RETENTION_PURGE_BATCH_SIZE = env.int("RETENTION_PURGE_BATCH_SIZE", default=5000)
# Backups are kept this many days (the FAQ: 3 months); deleted data leaves them after it.
RETENTION_BACKUP_DAYS = env.int("RETENTION_BACKUP_DAYS", default=90)
# Policy: a full backup at most this many days old, an incremental at most this many.
RETENTION_FULL_BACKUP_MAX_AGE_DAYS = env.int("RETENTION_FULL_BACKUP_MAX_AGE_DAYS", default=7)
RETENTION_INCREMENTAL_BACKUP_MAX_AGE_DAYS = env.int("RETENTION_INCREMENTAL_BACKUP_MAX_AGE_DAYS", default=1)
# Where backups must be stored: the primary database's location (region or site name).
RETENTION_PRIMARY_LOCATION = env.str("RETENTION_PRIMARY_LOCATION", default="uk-south")
# Bearer token external backup tools use to report runs (POST /hooks/backups/; the earlier
# /admin/retention/backuprecord/report/ address still works).
# Empty: the endpoint refuses every request.
RETENTION_BACKUP_API_TOKEN = env.str("RETENTION_BACKUP_API_TOKEN", default="")
# The storage backend (a STORAGES alias) holding backup artefacts, for the expiry task.
RETENTION_BACKUP_STORAGE = env.str("RETENTION_BACKUP_STORAGE", default="backups")
RETENTION_BACKUP_ROOT = env.str("RETENTION_BACKUP_ROOT", default=str(VAR_DIR / "backups"))
# The portal's own database backups (manage.py backup_database): AES-256-GCM key, at least
# 32 random characters, kept apart from CRYPTOGRAPHY_KEY and from the backups themselves.
# Unset: backups refuse to run (never unencrypted). Old keys stay in the fallbacks for restores.
RETENTION_BACKUP_KEY = env.str("RETENTION_BACKUP_KEY", default="")
RETENTION_BACKUP_KEY_FALLBACKS = env.list("RETENTION_BACKUP_KEY_FALLBACKS", default=[])
# Region or site of RETENTION_BACKUP_STORAGE, recorded on each run (the policy check wants the primary's).
RETENTION_BACKUP_STORAGE_LOCATION = env.str("RETENTION_BACKUP_STORAGE_LOCATION", default=RETENTION_PRIMARY_LOCATION)
# Folder of pg_dump/pg_restore matching the server's major version (empty: from PATH).
RETENTION_PG_BIN_DIR = env.str("RETENTION_PG_BIN_DIR", default="")

# --- Risk register, changes, reviews, continuity (C23, C26) ----------------------------
# Reminders to risk owners this many days before a risk's review date (0 = on the day);
# overdue risks are flagged (and their owners emailed once) the day after.
RISK_REVIEW_REMINDER_DAYS = sorted(
    set(env.list("RISK_REVIEW_REMINDER_DAYS", cast=int, default=[30, 7, 0])), reverse=True
)
if any(d < 0 or d > 90 for d in RISK_REVIEW_REMINDER_DAYS):
    raise ImproperlyConfigured("RISK_REVIEW_REMINDER_DAYS must be days between 0 and 90.")
# Longest a risk acceptance may run before the owner must sign it off again.
RISK_ACCEPTANCE_MAX_DAYS = env.int("RISK_ACCEPTANCE_MAX_DAYS", default=365)
if not 1 <= RISK_ACCEPTANCE_MAX_DAYS <= 366:
    raise ImproperlyConfigured("RISK_ACCEPTANCE_MAX_DAYS must be between 1 and 366.")
# A continuity plan whose last exercise is older than this is flagged (C23).
CONTINUITY_EXERCISE_MAX_AGE_DAYS = env.int("CONTINUITY_EXERCISE_MAX_AGE_DAYS", default=365)

# --- Integration API (/api/v1/, governance/api/) ----------------------------------------
# Calls a minute per token (shared cache: all web nodes count together); a token may set its own.
API_RATE_LIMIT_PER_MINUTE = env.int("API_RATE_LIMIT_PER_MINUTE", default=120)
# Longest lifetime of a token at issue (days), and how long an Idempotency-Key is remembered.
API_TOKEN_MAX_DAYS = env.int("API_TOKEN_MAX_DAYS", default=366)
API_IDEMPOTENCY_HOURS = env.int("API_IDEMPOTENCY_HOURS", default=24)
REST_FRAMEWORK = {
    # Tokens only: no session (so no CSRF question), JSON only, errors as RFC 9457 problems.
    "DEFAULT_AUTHENTICATION_CLASSES": ["governance.api.auth.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["governance.api.auth.TokenHasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "governance.api.problems.exception_handler",
    "STRICT_JSON": True,
    "COERCE_DECIMAL_TO_STRING": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Assyst integration API",
    "DESCRIPTION": "Incidents, backup runs, the audit trail, support-access requests, risks and changes, "
    "and an organisation's access log, for monitoring, backup tools, SIEMs and ticketing systems.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    # Choice sets of the same field name in different models get their own schema names.
    "ENUM_NAME_OVERRIDES": {
        "IncidentKindEnum": "incidents.models.Incident.Kind",
        "IncidentStatusEnum": "incidents.models.Incident.Status",
        "BackupKindEnum": "governance.retention.models.BackupRecord.Kind",
        "BackupStatusEnum": "governance.retention.models.BackupRecord.Status",
        "SupportRequestStatusEnum": "governance.access.models.SupportAccessRequest.Status",
        "SupportDecisionEnum": "governance.access.models.SupportAccessRequest.Decision",
        "RiskStatusEnum": "governance.risk.models.Risk.Status",
        "ChangeStatusEnum": "governance.risk.models.Change.Status",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "governance.api.schema.add_problem_responses",
    ],
}

# --- Security (C07) -------------------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO
# (and make sure the proxy overwrites that header).
_proxy_header = env.str("SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (_proxy_header, "https") if _proxy_header else None
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "style-src": ["'self'"],
        "script-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# --- Redis, cache and Celery ----------------------------------------------------
# REDIS_URL (redis:// or rediss:// for TLS) switches broker and cache to Redis.
REDIS_URL = env.str("REDIS_URL", default="")
REDIS_SSL_CERT_REQS = env.str("REDIS_SSL_CERT_REQS", default="required")
# Web processes hold the status page's version in memory, kept current over Redis pub/sub
# (incidents/status/cache.py). Off: every status request reads the version from Redis.
STATUS_VERSION_WATCH = env.bool("STATUS_VERSION_WATCH", default=True)

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "assyst",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

CELERY_BROKER_URL = REDIS_URL or "filesystem://"
CELERY_BROKER_DIR = VAR_DIR / "broker"
# Tasks must finish well before Redis would redeliver them (visibility timeout).
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=900)
if CELERY_TASK_TIME_LIMIT >= CELERY_VISIBILITY_TIMEOUT or CELERY_TASK_SOFT_TIME_LIMIT >= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("Need CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT < CELERY_VISIBILITY_TIMEOUT.")
CELERY_BEAT_SCHEDULE_FILE = env.str("CELERY_BEAT_SCHEDULE_FILE", default=str(VAR_DIR / "celerybeat-schedule"))

# --- Email ----------------------------------------------------------------------
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.filebased.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = str(VAR_DIR / "mail")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=587)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=True)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Assyst security <security@assyst.invalid>")

# --- I18N, static ----------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Backup artefacts reported to the register; the expiry task deletes them after 90 days.
    "backups": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": RETENTION_BACKUP_ROOT},
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
