"""C08: passwords are stored as Argon2id hashes, old PBKDF2 hashes are upgraded on login,
and weak passwords are refused."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import connection

from governance.access.models import User
from tests.factories import UserFactory

# The production list (settings.PASSWORD_HASHERS); conftest prepends MD5 for speed.
REAL_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
PASSWORD = "a-long-Unusual-passphrase-42"

pytestmark = [pytest.mark.commitment("C08")]


@pytest.fixture
def real_hashers(settings):
    settings.PASSWORD_HASHERS = REAL_HASHERS


def stored_hash(user: User) -> str:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote('password')} FROM {quote(User._meta.db_table)} WHERE id = %s", [user.pk])  # noqa: S608
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_password_is_stored_as_argon2id(real_hashers):
    user = UserFactory(password=PASSWORD)
    assert stored_hash(user).startswith("argon2$argon2id$")
    assert PASSWORD not in stored_hash(user)


@pytest.mark.django_db
def test_pbkdf2_hash_is_upgraded_to_argon2_on_successful_check(real_hashers):
    user = UserFactory(password=PASSWORD)
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])
    assert stored_hash(user).startswith("pbkdf2_sha256$")

    assert not User.objects.get(pk=user.pk).check_password("wrong password entirely")
    assert stored_hash(user).startswith("pbkdf2_sha256$")

    assert User.objects.get(pk=user.pk).check_password(PASSWORD)
    assert stored_hash(user).startswith("argon2$argon2id$")
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("Sh0rt!pw", "password_too_short"),
        ("qwerty123456", "password_too_common"),
        ("839274650193", "password_entirely_numeric"),
    ],
)
def test_weak_passwords_are_rejected(password, code):
    with pytest.raises(ValidationError) as excinfo:
        validate_password(password)
    assert code in {error.code for error in excinfo.value.error_list}


def test_strong_password_passes_validation():
    validate_password(PASSWORD)
