"""Test helpers shared by several test modules."""

from __future__ import annotations

from contextlib import contextmanager
from importlib import import_module

from django.db import connection
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice


def otp_client(user) -> Client:
    """A client signed in as a staff user who has passed the TOTP step."""
    client = Client()
    client.force_login(user)
    device = TOTPDevice.objects.filter(user=user).first() or TOTPDevice.objects.create(user=user, name="t")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


_TRIGGERS = import_module("governance.audit.migrations.0002_append_only_triggers")


@contextmanager
def audit_triggers_bypassed():
    """Play the attacker with direct database access: switch the append-only triggers off.

    PostgreSQL: the table owner may disable them (why production needs a separate owner
    role). SQLite: drop and recreate them, with the migration's own SQL. Inside a test
    transaction both are rolled back anyway.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        else:
            cursor.execute("DROP TRIGGER audit_auditevent_no_update")
            cursor.execute("DROP TRIGGER audit_auditevent_no_delete")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
            else:
                for sql in _TRIGGERS.SQLITE_FORWARD:
                    cursor.execute(sql)
