from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection
from django_scopes import scopes_disabled

from tests.factories import MembershipFactory, OrganisationFactory, StaffFactory
from tests.helpers import audit_triggers_bypassed


def pytest_configure(config) -> None:
    # Production settings run in tests, except the hashed-static manifest (needs collectstatic).
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_AUTOREFRESH = True
    # In CI, tests that need PostgreSQL or Redis must run against them, never fall back.
    if os.environ.get("CI_REQUIRE_SERVICES"):
        assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql", "CI must use PostgreSQL"
        assert settings.CELERY_BROKER_URL.startswith("redis"), "CI must use Redis"


@pytest.fixture(scope="session", autouse=True)
def _private_filesystem_broker(tmp_path_factory):
    """With the embedded filesystem broker, each test session gets its own empty folders:
    messages queued by earlier runs (or by `make run`) must not reach the tests' workers."""
    from assyst.celery import app

    options = app.conf.broker_transport_options
    if "data_folder_in" not in options:
        yield
        return
    saved = dict(options)
    root = tmp_path_factory.mktemp("broker")
    for sub in ("queue", "processed", "control"):
        (root / sub).mkdir()
    options.update(
        data_folder_in=str(root / "queue"),
        data_folder_out=str(root / "queue"),
        processed_folder=str(root / "processed"),
        control_folder=str(root / "control"),
    )
    yield
    options.clear()
    options.update(saved)


@pytest.fixture(autouse=True)
def _fast_hashers_and_no_scope(settings):
    """Fast hasher in tests (the Argon2 test sets its own); code outside requests runs
    like a management command or task, with tenant scopes disabled."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]
    with scopes_disabled():
        yield


@pytest.fixture(autouse=True)
def _audit_table_emptied_after_transactional_tests(request):
    """Lets a transactional test's flush succeed.

    Migrating the test database already writes audit events (the role sync), and the
    append-only triggers refuse the DELETE/TRUNCATE that flushing a non-empty table
    needs. This teardown runs before pytest-django's flush (it depends on
    transactional_db), so the table is empty by then; the flush's post_migrate role
    sync writes the events again.
    """
    if "transactional_db" not in request.fixturenames and not _wants_transaction(request):
        yield
        return
    request.getfixturevalue("transactional_db")
    yield
    with audit_triggers_bypassed(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent")


def _wants_transaction(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    return bool(marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])))


@pytest.fixture
def org_a():
    return OrganisationFactory(name="Org A", slug="org-a")


@pytest.fixture
def org_b():
    return OrganisationFactory(name="Org B", slug="org-b")


@pytest.fixture
def customer_a(org_a):
    return MembershipFactory(organisation=org_a).user


@pytest.fixture
def customer_b(org_b):
    return MembershipFactory(organisation=org_b).user


@pytest.fixture
def staff_factory():
    return StaffFactory
