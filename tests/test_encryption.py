"""C06: personal data is encrypted at rest, survives SECRET_KEY rotation, and the data key
can be rotated with `rotate_encryption_key` (resumable, never rewriting a row twice)."""

from __future__ import annotations

from collections import Counter
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from governance.access.models import EMAIL_INDEX_PURPOSE, User
from governance.access.selectors import user_find_by_email
from governance.audit.models import AuditEvent
from governance.core.encryption import DecryptionError, _derive, blind_index, key_id_of, normalise_email
from governance.core.management.commands import rotate_encryption_key as rotate_cmd
from governance.tenancy.models import CONTACT_EMAIL_PURPOSE, Organisation
from tests.factories import OrganisationFactory, UserFactory

KEY_A = "key-A-" + "a" * 40
KEY_B = "key-B-" + "b" * 40
OLD_SECRET = "old-secret-key-" + "s" * 40
NEW_SECRET = "new-secret-key-" + "t" * 40

ENCRYPTED = {
    User: ["first_name", "last_name", "email"],
    Organisation: ["primary_contact_name", "primary_contact_email"],
}
INDEXES = {User: ("email_index", "email", EMAIL_INDEX_PURPOSE)}
INDEXES[Organisation] = ("primary_contact_email_index", "primary_contact_email", CONTACT_EMAIL_PURPOSE)

pytestmark = [pytest.mark.commitment("C06"), pytest.mark.django_db]


def use_keys(settings, current: str, *fallbacks: str) -> None:
    settings.FIELD_ENCRYPTION_KEY = current
    settings.FIELD_ENCRYPTION_KEY_FALLBACKS = list(fallbacks)


def key_id(secret: str) -> bytes:
    return _derive(secret).key_id


def raw_columns(model, pk, columns: list[str]) -> dict[str, object]:
    """Column values exactly as stored, read with SQL (no field converters)."""
    quote = connection.ops.quote_name
    sql = f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(model._meta.db_table)} WHERE id = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    return {c: bytes(v) if isinstance(v, memoryview | bytes) else v for c, v in zip(columns, row, strict=True)}


def raw_snapshot() -> dict[tuple[str, int, str], object]:
    snapshot = {}
    for model, fields in ENCRYPTED.items():
        columns = [*fields, INDEXES[model][0]]
        for pk in model._base_manager.values_list("pk", flat=True):
            for column, value in raw_columns(model, pk, columns).items():
                snapshot[(model._meta.label, pk, column)] = value
    return snapshot


def plaintexts() -> dict[tuple[str, int], tuple]:
    return {
        (model._meta.label, obj.pk): tuple(getattr(obj, f) for f in fields)
        for model, fields in ENCRYPTED.items()
        for obj in model._base_manager.order_by("pk")
    }


def row_key_ids(model, pk) -> set[bytes]:
    return {key_id_of(v) for v in raw_columns(model, pk, ENCRYPTED[model]).values() if v is not None}


@pytest.fixture
def data_under_key_a(settings):
    use_keys(settings, KEY_A)
    users = [
        UserFactory(first_name="Alice", last_name="Smith", email="Alice.Smith@Example.com"),
        UserFactory(first_name="Bob", last_name="", email="bob@example.com"),
        UserFactory(first_name="Carol", last_name="Jones", email=""),
    ]
    orgs = [
        OrganisationFactory(primary_contact_name="Nadia Okafor", primary_contact_email="nadia@northwind.example"),
        OrganisationFactory(primary_contact_name="Carl Jensen", primary_contact_email="carl@contoso.example"),
    ]
    return users, orgs


def test_raw_columns_hold_no_plaintext_and_start_with_version_and_key_id(data_under_key_a):
    header = b"\x01" + key_id(KEY_A)
    users, orgs = data_under_key_a
    for obj in [*users, *orgs]:
        model = type(obj)
        columns = ENCRYPTED[model]
        raw = raw_columns(model, obj.pk, [*columns, INDEXES[model][0]])
        for column in columns:
            plaintext = getattr(obj, column)
            assert isinstance(raw[column], bytes), column
            assert raw[column].startswith(header), column
            if plaintext:
                for form in {plaintext, plaintext.lower(), normalise_email(plaintext)}:
                    assert form.encode() not in raw[column], column
        index_column, source, _ = INDEXES[model]
        if getattr(obj, source):
            assert raw[index_column] and getattr(obj, source).lower() not in raw[index_column].lower()


def test_secret_key_rotation_keeps_every_value_readable(settings, data_under_key_a):
    settings.SECRET_KEY = OLD_SECRET
    before = plaintexts()
    settings.SECRET_KEY = NEW_SECRET
    settings.SECRET_KEY_FALLBACKS = [OLD_SECRET]
    assert plaintexts() == before
    settings.SECRET_KEY_FALLBACKS = []
    assert plaintexts() == before


def test_value_under_old_key_needs_it_in_fallbacks(settings, data_under_key_a):
    before = plaintexts()
    use_keys(settings, KEY_B, KEY_A)
    assert plaintexts() == before
    use_keys(settings, KEY_B)
    with pytest.raises(DecryptionError):
        User.objects.get(pk=data_under_key_a[0][0].pk)
    with pytest.raises(DecryptionError):
        Organisation.objects.get(pk=data_under_key_a[1][0].pk)


def test_blind_index_finds_user_by_email_case_insensitively_across_a_key_switch(settings, data_under_key_a):
    alice = data_under_key_a[0][0]
    assert user_find_by_email("  alice.smith@EXAMPLE.com ") == alice
    assert user_find_by_email("nobody@example.com") is None
    assert user_find_by_email("") is None

    use_keys(settings, KEY_B, KEY_A)  # switched, not yet rotated: stored indexes are under A
    assert user_find_by_email("ALICE.SMITH@example.com") == alice


def test_rotate_encryption_key_end_to_end(settings, data_under_key_a):
    before = plaintexts()
    use_keys(settings, KEY_B, KEY_A)
    out, err = StringIO(), StringIO()
    call_command("rotate_encryption_key", "--batch-size", "2", stdout=out, stderr=err)

    assert "access.User: 3 rows checked, 3 rewritten" in out.getvalue()
    assert "tenancy.Organisation: 2 rows checked, 2 rewritten" in out.getvalue()
    assert "access.User" in err.getvalue()  # progress bar

    use_keys(settings, KEY_B)  # the old key is gone
    assert plaintexts() == before
    for model in ENCRYPTED:
        index_column, source, purpose = INDEXES[model]
        for obj in model._base_manager.all():
            assert row_key_ids(model, obj.pk) == {key_id(KEY_B)}
            stored = raw_columns(model, obj.pk, [index_column])[index_column]
            value = getattr(obj, source)
            assert stored == (blind_index(normalise_email(value), purpose=purpose, key=_derive(KEY_B)) if value else "")
    assert user_find_by_email("alice.smith@example.com") == data_under_key_a[0][0]

    event = AuditEvent.objects.get(action="encryption.key_rotated")
    assert event.data["key_id"] == key_id(KEY_B).hex()
    assert event.data["models"]["access.User"]["rows_rewritten"] == 3
    assert event.data["models"]["tenancy.Organisation"]["values_reencrypted"] == 4

    # A second run finds nothing left to do.
    out = StringIO()
    call_command("rotate_encryption_key", "--no-progress", stdout=out)
    assert "access.User: 3 rows checked, 0 rewritten" in out.getvalue()


def test_rotation_resumes_after_a_crash_without_rewriting_any_row_twice(settings, monkeypatch, data_under_key_a):
    use_keys(settings, KEY_B, KEY_A)
    all_rows = {(m._meta.label, pk) for m in ENCRYPTED for pk in m._base_manager.values_list("pk", flat=True)}
    writes: Counter = Counter()
    real_write = rotate_cmd._write_row

    def crash_on_second_write(model, pk, changes):
        if sum(writes.values()) == 1:
            raise RuntimeError("simulated crash")
        real_write(model, pk, changes)
        writes[(model._meta.label, pk)] += 1

    monkeypatch.setattr(rotate_cmd, "_write_row", crash_on_second_write)
    with pytest.raises(RuntimeError, match="simulated crash"):
        call_command("rotate_encryption_key", "--batch-size", "1", "--no-progress", stdout=StringIO())

    rotated = {
        (m._meta.label, o.pk)
        for m in ENCRYPTED
        for o in m._base_manager.all()
        if row_key_ids(m, o.pk) == {key_id(KEY_B)}
    }
    assert rotated == set(writes) and len(rotated) == 1  # the first batch committed, the second rolled back
    assert not AuditEvent.objects.filter(action="encryption.key_rotated").exists()
    snapshot = raw_snapshot()

    def counting_write(model, pk, changes):
        real_write(model, pk, changes)
        writes[(model._meta.label, pk)] += 1

    monkeypatch.setattr(rotate_cmd, "_write_row", counting_write)
    call_command("rotate_encryption_key", "--batch-size", "1", "--no-progress", stdout=StringIO())

    assert set(writes) == all_rows
    assert all(count == 1 for count in writes.values())
    after = raw_snapshot()
    for label, pk in rotated:  # rows done before the crash were left untouched
        assert {k: v for k, v in after.items() if k[:2] == (label, pk)} == {
            k: v for k, v in snapshot.items() if k[:2] == (label, pk)
        }
    use_keys(settings, KEY_B)
    for model in ENCRYPTED:
        for pk in model._base_manager.values_list("pk", flat=True):
            assert row_key_ids(model, pk) == {key_id(KEY_B)}


def test_dry_run_changes_nothing(settings, data_under_key_a):
    use_keys(settings, KEY_B, KEY_A)
    snapshot = raw_snapshot()
    out = StringIO()
    call_command("rotate_encryption_key", "--dry-run", "--no-progress", stdout=out)
    assert "access.User: 3 rows checked, 3 would be rewritten" in out.getvalue()
    assert raw_snapshot() == snapshot
    assert not AuditEvent.objects.filter(action="encryption.key_rotated").exists()


def test_rotation_refuses_a_value_no_configured_key_can_read(settings, data_under_key_a):
    use_keys(settings, KEY_B)  # KEY_A forgotten
    snapshot = raw_snapshot()
    with pytest.raises(
        CommandError, match=r"(access\.User|tenancy\.Organisation) pk=\d+ field '\w+' cannot be decrypted"
    ):
        call_command("rotate_encryption_key", "--no-progress", stdout=StringIO())
    assert raw_snapshot() == snapshot
