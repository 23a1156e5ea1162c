"""Evidence for the platform commitments (C06-C10): what the running configuration and a
sample of the stored data show. These hold for "now", whatever the period."""

from __future__ import annotations

from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.models import Count, Q

from governance.access.models import User
from governance.trust.evidence.base import FAILING, KEPT, Period, Record, commitment, plural, result


@commitment("C06", "Sensitive personal data encrypted at rest with AES-256")
def encryption_at_rest(period: Period):
    from governance.core.encryption import DecryptionError, encrypted_fields, key_id_of, keyring

    fields = [(m._meta.label, f.name) for m in apps.get_models() for f in encrypted_fields(m)]
    # A live sample: the newest user email as the database holds it must be ciphertext under
    # a configured key (raw SQL, bypassing the field's decryption).
    table, column = User._meta.db_table, User._meta.get_field("email").column
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {connection.ops.quote_name(column)} FROM {connection.ops.quote_name(table)} "  # noqa: S608 - names from model meta
            f"WHERE {connection.ops.quote_name('email_index')} <> '' ORDER BY id DESC LIMIT 1"
        )
        row = cursor.fetchone()
    records = []
    sample = "no stored email to sample"
    if row is not None:
        raw = bytes(row[0]) if not isinstance(row[0], str) else row[0].encode()
        try:
            ours = key_id_of(raw) in {k.key_id for k in keyring()}
        except DecryptionError:
            ours = False
        sample = "the newest stored email is ciphertext under a configured key" if ours else "plaintext found"
        if not ours:
            records.append(Record("access.User.email", "the sampled value is not ciphertext under a configured key"))
    key_ok = len(settings.FIELD_ENCRYPTION_KEY) >= 32
    if not key_ok:
        records.append(Record("CRYPTOGRAPHY_KEY", "shorter than 32 characters"))
    figures = {
        "encrypted_fields": len(fields),
        "models_with_encrypted_fields": len({m for m, _ in fields}),
        "keys_in_rotation": len(settings.FIELD_ENCRYPTION_KEY_FALLBACKS),
        "sample": sample,
    }
    summary = (
        f"{len(fields)} personal-data fields in {figures['models_with_encrypted_fields']} models stored as AES-256 "
        f"ciphertext; {sample}"
    )
    return result(FAILING if records else KEPT, summary, figures, records, source="model fields, raw SQL sample")


@commitment("C07", "TLS 1.2/1.3 in transit")
def tls_in_transit(period: Period):
    checks = {
        "HTTPS redirect (SECURE_SSL_REDIRECT)": settings.SECURE_SSL_REDIRECT,
        "HSTS (SECURE_HSTS_SECONDS)": settings.SECURE_HSTS_SECONDS >= 31536000,
        "secure session cookie": settings.SESSION_COOKIE_SECURE,
        "secure CSRF cookie": settings.CSRF_COOKIE_SECURE,
    }
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        checks["PostgreSQL over TLS (sslmode)"] = db.get("OPTIONS", {}).get("sslmode") in (
            "require",
            "verify-ca",
            "verify-full",
        )
    if settings.REDIS_URL:
        checks["Redis over TLS (rediss://)"] = settings.REDIS_URL.startswith("rediss://")
    off = [name for name, ok in checks.items() if not ok]
    figures = {name: ok for name, ok in checks.items()}
    records = [Record(name, "off in this deployment's settings") for name in off]
    summary = (
        f"{len(checks) - len(off)} of {len(checks)} transport protections on"
        + (f"; off: {', '.join(off)}" if off else "")
        + ("; this is a development (DEBUG) deployment" if settings.DEBUG else "")
    )
    return result(FAILING if records else KEPT, summary, figures, records, source="running settings")


@commitment("C08", "Passwords stored non-reversibly")
def passwords(period: Period):
    first = settings.PASSWORD_HASHERS[0].rsplit(".", 1)[-1]
    # "!" marks an unusable password; "argon2$" is the algorithm prefix. Neither is a secret.
    unusable, argon2 = "!", "argon2$"
    counts = User.objects.exclude(password__startswith=unusable).aggregate(
        users=Count("pk"), argon2=Count("pk", filter=Q(password__startswith=argon2))
    )
    records = (
        []
        if first == "Argon2PasswordHasher"
        else [Record("PASSWORD_HASHERS", f"first hasher is {first}, not Argon2id")]
    )
    older = counts["users"] - counts["argon2"]
    figures = {**counts, "older_hashes": older, "first_hasher": first}
    summary = (
        f"new passwords hashed with {first.removesuffix('PasswordHasher')}; "
        f"{plural(counts['users'], 'account')} with a "
        f"password, {counts['argon2']} on Argon2id, {older} on an older one-way hash (upgraded at next sign-in)"
    )
    return result(FAILING if records else KEPT, summary, figures, records, source="password hashes")


# Rows that name an organisation but are staff records, never read in a customer request:
# retention and legal evidence, the audit trail, the notification outbox, and guardian's
# permission rows (staff permissions on an organisation, given only by support grants).
STAFF_APPS = ("retention", "legal", "audit")
STAFF_RECORDS = (
    "incidents.Notification",
    "tenancy.OrganisationUserObjectPermission",
    "tenancy.OrganisationGroupObjectPermission",
)


@commitment("C09", "Customers' data logically separated")
def tenant_separation(period: Period):
    tenant_models, unscoped = [], []
    for model in apps.get_models():
        fk = next(
            (
                f
                for f in model._meta.concrete_fields
                if f.is_relation
                and f.related_model is not None
                and f.related_model._meta.label == "tenancy.Organisation"
            ),
            None,
        )
        if fk is None or model._meta.label in STAFF_RECORDS or model._meta.app_label in STAFF_APPS:
            continue
        tenant_models.append(model._meta.label)
        if not hasattr(model._default_manager, "with_scopes_disabled"):
            unscoped.append(model._meta.label)
    records = [Record(label, "tenant data without a tenant-scoped manager") for label in unscoped]
    figures = {"tenant_models": len(tenant_models), "unscoped": len(unscoped)}
    scoped = len(tenant_models) - len(unscoped)
    summary = f"{scoped} of {len(tenant_models)} customer-data models scoped to one organisation per request"
    return result(FAILING if records else KEPT, summary, figures, records, source="model managers")


@commitment("C10", "DDoS protection (application side: rate limits, login lockout)")
def ddos_app_side(period: Period):
    from axes.models import AccessAttempt

    axes_first = settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    middleware = "axes.middleware.AxesMiddleware" in settings.MIDDLEWARE
    locked = AccessAttempt.objects.filter(
        attempt_time__gte=period.since,
        attempt_time__lt=period.until,
        failures_since_start__gte=settings.AXES_FAILURE_LIMIT,
    ).count()
    records = []
    if not (axes_first and middleware):
        records.append(Record("django-axes", "login lockout is not active"))
    figures = {
        "lockout_after_failures": settings.AXES_FAILURE_LIMIT,
        "cooloff_hours": settings.AXES_COOLOFF_TIME,
        "locked_out_pairs": locked,
        "report_form_limit_per_hour": settings.DISCLOSURE_RATE_LIMIT * 3600 // settings.DISCLOSURE_RATE_WINDOW_SECONDS,
        "status_subscribe_limit_per_hour": settings.STATUS_SUBSCRIBE_RATE_LIMIT
        * 3600
        // settings.STATUS_SUBSCRIBE_RATE_WINDOW_SECONDS,
    }
    summary = (
        f"sign-in locked after {settings.AXES_FAILURE_LIMIT} failures per username and address for "
        f"{timedelta(hours=settings.AXES_COOLOFF_TIME)}; {plural(locked, 'lockout')} in the period; "
        "public forms rate-limited"
    )
    return result(FAILING if records else KEPT, summary, figures, records, source="running settings, lockout records")
