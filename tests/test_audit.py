"""The audit trail (C25): a verifiable hash chain, append-only in the database, fed by
logins, permission changes and admin actions, and read-only in the admin."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from guardian.shortcuts import assign_perm, remove_perm

from governance.access.roles import SECURITY_OFFICER, SUPPORT_ENGINEER
from governance.audit.models import GENESIS_HASH, AuditEvent
from governance.audit.services import audit_chain_verify, audit_record
from governance.audit.tasks import verify_audit_chain
from governance.core.models import JobRun
from tests.factories import PASSWORD, StaffFactory, UserFactory
from tests.helpers import audit_triggers_bypassed

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C25")]


def _three_events(org_a) -> list[AuditEvent]:
    return [
        audit_record(action="test.first", data={"n": 1}),
        audit_record(action="test.second", obj=org_a, data={"nested": {"b": [1, 2], "a": "x"}}),
        audit_record(action="test.third", actor_repr="someone", data={"n": 3}),
    ]


def _verify_command() -> str:
    out = StringIO()
    call_command("verify_audit_chain", stdout=out)
    return out.getvalue()


def _latest(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).latest("id")


# --- The hash chain ------------------------------------------------------------------


def test_chain_of_events_links_and_verifies(org_a):
    events = _three_events(org_a)

    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert events[1].organisation_id == org_a.pk
    total = AuditEvent.objects.count()
    checked, broken = audit_chain_verify()
    assert broken is None
    assert checked == total >= 3
    # The first event of all starts from the genesis hash.
    assert AuditEvent.objects.order_by("id").first().prev_hash == GENESIS_HASH

    output = _verify_command()
    assert f"Audit chain intact: {total} events verified." in output


def test_edited_event_breaks_the_chain_at_that_event(org_a):
    first, second, third = _three_events(org_a)

    with audit_triggers_bypassed():
        AuditEvent.objects.filter(pk=second.pk).update(data={"nested": {"b": [1, 2], "a": "forged"}})

    checked, broken = audit_chain_verify()
    assert broken is not None
    assert broken.event_id == second.pk
    assert "edited" in broken.reason
    assert checked == AuditEvent.objects.filter(id__lt=second.pk).count()
    with pytest.raises(CommandError, match=rf"broken at event #{second.pk}\b.*edited"):
        _verify_command()


def test_deleted_middle_event_breaks_the_chain_at_its_successor(org_a):
    first, second, third = _three_events(org_a)

    with audit_triggers_bypassed():
        AuditEvent.objects.filter(pk=second.pk).delete()

    assert not AuditEvent.objects.filter(pk=second.pk).exists()
    checked, broken = audit_chain_verify()
    assert broken is not None
    assert broken.event_id == third.pk
    assert "prev_hash" in broken.reason
    with pytest.raises(CommandError, match=rf"broken at event #{third.pk}\b"):
        _verify_command()


def test_daily_verification_job_records_a_break_as_a_failed_run(org_a):
    """The beat task leaves evidence: a JobRun per run, failing with the broken event."""
    verify_audit_chain()
    ok = JobRun.objects.get(task="governance.audit.tasks.verify_audit_chain")
    assert ok.outcome == JobRun.Outcome.SUCCESS
    head = AuditEvent.objects.latest("id")
    assert ok.counts == {"verified": AuditEvent.objects.count(), "head_id": head.pk, "head_hash": head.hash}

    _first, second, _third = _three_events(org_a)
    with audit_triggers_bypassed():
        AuditEvent.objects.filter(pk=second.pk).update(action="test.renamed")
    with pytest.raises(RuntimeError):
        verify_audit_chain()
    failed = JobRun.objects.filter(task="governance.audit.tasks.verify_audit_chain").latest("id")
    assert failed.outcome == JobRun.Outcome.FAILURE
    assert f"broken at event #{second.pk}" in failed.error


# --- Append-only in the database -----------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda e: AuditEvent.objects.filter(pk=e.pk).update(action="test.forged"), id="qs-update"),
        pytest.param(lambda e: AuditEvent.objects.filter(pk=e.pk).delete(), id="qs-delete"),
        pytest.param(lambda e: AuditEvent.objects.all().delete(), id="qs-delete-all"),
        pytest.param(lambda e: e.delete(), id="instance-delete"),
        pytest.param(lambda e: (setattr(e, "actor_repr", "someone else"), e.save()), id="instance-save"),
    ],
)
def test_orm_update_and_delete_are_refused_by_the_database(org_a, tamper):
    event = _three_events(org_a)[1]
    count = AuditEvent.objects.count()

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        tamper(event)

    # Nothing changed, and the test transaction is still usable.
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.actor_repr, stored.hash) == ("test.second", "", event.hash)
    assert AuditEvent.objects.count() == count
    assert audit_chain_verify()[1] is None


def test_triggers_are_back_after_a_bypass(org_a):
    """Guards the tamper tests' helper: it must not leave the table writable."""
    event = _three_events(org_a)[0]
    with audit_triggers_bypassed():
        pass
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="test.forged")


def test_wiping_the_audit_table_is_refused(org_a):
    """PostgreSQL: TRUNCATE (a statement trigger); SQLite has no TRUNCATE, its bulk
    wipe is an unqualified DELETE, refused by the row trigger."""
    _three_events(org_a)
    count = AuditEvent.objects.count()
    if connection.vendor == "postgresql":
        sql, message = "TRUNCATE audit_auditevent", "append-only: TRUNCATE refused"
    else:
        sql, message = "DELETE FROM audit_auditevent", "append-only: DELETE refused"

    with pytest.raises(DatabaseError, match=message), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql)

    assert AuditEvent.objects.count() == count


def test_removing_the_newest_events_is_caught_by_the_next_verification(org_a):
    """The chain cannot show a cut-off tail; the head kept by the last verification can."""
    _three_events(org_a)
    verify_audit_chain.run()
    head = AuditEvent.objects.latest("id")
    ok_run = JobRun.objects.filter(task="governance.audit.tasks.verify_audit_chain").latest("started_at")
    assert ok_run.outcome == JobRun.Outcome.SUCCESS
    assert ok_run.counts["head_id"] == head.pk and ok_run.counts["head_hash"] == head.hash

    with audit_triggers_bypassed():
        AuditEvent.objects.filter(pk=head.pk).delete()
    assert audit_chain_verify() == (AuditEvent.objects.count(), None)  # the chain alone looks fine

    with pytest.raises(CommandError, match=f"#{head.pk}.*truncated"):
        call_command("verify_audit_chain")
    with pytest.raises(RuntimeError, match="truncated"):
        verify_audit_chain.run()


# --- What gets recorded --------------------------------------------------------------


def test_login_failed_login_and_logout_are_recorded_with_client_ip(client, customer_a):
    login_url = reverse("portal:login")

    response = client.post(login_url, {"username": customer_a.username, "password": "wrong"}, REMOTE_ADDR="192.0.2.1")
    assert response.status_code == 200
    failed = _latest("auth.login_failed")
    assert failed.actor is None
    assert failed.actor_repr == customer_a.username
    assert failed.data == {"username": customer_a.username}
    assert failed.ip_address == "192.0.2.1"

    response = client.post(
        login_url, {"username": customer_a.username, "password": PASSWORD}, REMOTE_ADDR="203.0.113.9"
    )
    assert response.status_code == 302
    login = _latest("auth.login")
    assert login.actor == customer_a
    assert (login.object_type, login.object_id) == ("access.user", str(customer_a.pk))
    assert login.ip_address == "203.0.113.9"

    response = client.post(reverse("portal:logout"), REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302
    logout = _latest("auth.logout")
    assert logout.actor == customer_a
    assert logout.ip_address == "203.0.113.9"

    assert failed.id < login.id < logout.id
    assert audit_chain_verify()[1] is None


def test_event_hash_covers_the_client_ip(client, customer_a):
    client.post(
        reverse("portal:login"), {"username": customer_a.username, "password": PASSWORD}, REMOTE_ADDR="203.0.113.9"
    )
    event = _latest("auth.login")
    assert event.ip_address == "203.0.113.9"
    assert event.compute_hash() == event.hash

    event.ip_address = "198.51.100.1"
    assert event.compute_hash() != event.hash

    with audit_triggers_bypassed():
        AuditEvent.objects.filter(pk=event.pk).update(ip_address="198.51.100.1")
    broken = audit_chain_verify()[1]
    assert broken is not None and broken.event_id == event.pk


def test_ipv6_client_address_is_hashed_as_stored(client, customer_a):
    """The column compacts IPv6, so the hash must cover the compacted form (ipware
    normalises the address before it reaches the event) or verification would fail."""
    client.post(
        reverse("portal:login"),
        {"username": customer_a.username, "password": PASSWORD},
        REMOTE_ADDR="2001:DB8:0:0:0:0:0:7",
    )
    event = AuditEvent.objects.get(pk=_latest("auth.login").pk)
    assert event.ip_address == "2001:db8::7"
    assert audit_chain_verify()[1] is None


def test_group_membership_and_group_permission_changes_are_recorded():
    user = UserFactory()
    group = Group.objects.create(name="Test reviewers")
    perm = Permission.objects.get(content_type__app_label="tenancy", codename="view_organisation")

    user.groups.add(group)
    added = _latest("user.groups.add")
    assert (added.object_type, added.object_id) == ("access.user", str(user.pk))
    assert added.data == {"items": ["Test reviewers"]}

    group.user_set.remove(user)
    removed = _latest("group.users.remove")
    assert (removed.object_type, removed.object_id) == ("auth.group", str(group.pk))
    assert removed.data == {"items": [user.username]}

    group.permissions.add(perm)
    perm_added = _latest("group.permissions.add")
    assert perm_added.object_id == str(group.pk)
    assert perm_added.data == {"items": [str(perm)]}

    user.user_permissions.add(perm)
    assert _latest("user.permissions.add").object_id == str(user.pk)
    assert audit_chain_verify()[1] is None


def test_guardian_object_permission_assignment_and_removal_are_recorded(org_a):
    user = StaffFactory(role=SUPPORT_ENGINEER)

    assign_perm("tenancy.view_customer_data", user, org_a)
    event = _latest("object_permission.assign")
    assert (event.object_type, event.object_id, event.organisation_id) == (
        "tenancy.organisation",
        str(org_a.pk),
        org_a.pk,
    )
    assert event.data == {"permission": "view_customer_data", "holder": user.username, "holder_type": "User"}

    remove_perm("tenancy.view_customer_data", user, org_a)
    removed = _latest("object_permission.remove")
    assert removed.organisation_id == org_a.pk
    assert removed.data["permission"] == "view_customer_data"
    assert audit_chain_verify()[1] is None


def test_admin_change_through_the_otp_admin_is_recorded(client, org_a):
    officer = StaffFactory(role=SECURITY_OFFICER)
    device = TOTPDevice.objects.get(user=officer)
    response = client.post(
        reverse("admin:login"),
        {
            "username": officer.username,
            "password": PASSWORD,
            "otp_device": device.persistent_id,
            "otp_token": f"{totp(device.bin_key):06d}",
        },
        REMOTE_ADDR="198.51.100.7",
    )
    assert response.status_code == 302
    assert _latest("auth.login").actor == officer

    response = client.post(
        reverse("admin:tenancy_organisation_change", args=[org_a.pk]),
        {"name": "Org A renamed", "slug": org_a.slug, "status": "active", "data_protection_role": "processor"},
        REMOTE_ADDR="198.51.100.7",
    )
    assert response.status_code == 302

    event = _latest("admin.change")
    assert event.actor == officer
    assert event.object_repr == "Org A renamed"
    assert event.data["content_type"] == ["tenancy", "organisation"]
    assert str(event.data["object_id"]) == str(org_a.pk)
    assert "Name" in event.data["change_message"]
    assert event.ip_address == "198.51.100.7"
    assert audit_chain_verify()[1] is None


# --- Read-only in the admin ----------------------------------------------------------


def _verified_staff_client(client, role: str):
    """Log a staff member in with a verified second factor, as OTPAdminSite requires."""
    user = StaffFactory(role=role)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.get(user=user).persistent_id
    session.save()
    return user


def test_security_officer_reads_the_trail_with_filters(client, org_a):
    _verified_staff_client(client, SECURITY_OFFICER)
    events = _three_events(org_a)
    url = reverse("admin:audit_auditevent_changelist")

    response = client.get(url, {"action": "test.second"})
    assert response.status_code == 200
    assert [e.pk for e in response.context["cl"].result_list] == [events[1].pk]

    response = client.get(url, {"object_type": "tenancy.organisation", "q": "test"})
    assert response.status_code == 200
    assert events[1] in response.context["cl"].result_list
    assert events[0] not in response.context["cl"].result_list

    # Viewing one event is allowed, and shows it read-only.
    response = client.get(reverse("admin:audit_auditevent_change", args=[events[0].pk]))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False


def test_audit_changelist_query_count_does_not_grow_with_rows(client, org_a):
    _verified_staff_client(client, SECURITY_OFFICER)
    url = reverse("admin:audit_auditevent_changelist")

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    for _ in range(3):
        audit_record(action="test.filler")
    small = queries()
    for _ in range(30):
        audit_record(action="test.filler")
    assert queries() == small


def test_nobody_can_add_change_or_delete_events_in_the_admin(client, org_a):
    _verified_staff_client(client, SECURITY_OFFICER)
    event = _three_events(org_a)[0]
    before = AuditEvent.objects.count()

    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    response = client.post(reverse("admin:audit_auditevent_add"), {"action": "test.injected"})
    assert response.status_code == 403

    response = client.post(
        reverse("admin:audit_auditevent_change", args=[event.pk]),
        {"action": "test.forged", "actor_repr": "someone else"},
    )
    assert response.status_code == 403

    assert client.get(reverse("admin:audit_auditevent_delete", args=[event.pk])).status_code == 403
    response = client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"})
    assert response.status_code == 403

    # The bulk "delete selected" action is not offered either.
    response = client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)

    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.hash) == ("test.first", event.hash)
    assert AuditEvent.objects.count() == before
    assert audit_chain_verify()[1] is None


def test_staff_without_audit_permission_cannot_read_the_trail(client):
    _verified_staff_client(client, SUPPORT_ENGINEER)
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 403


@pytest.mark.commitment("C02")
def test_superuser_sign_in_is_flagged(client):
    root = UserFactory(is_superuser=True, is_staff=True)
    client.post(reverse("portal:login"), {"username": root.username, "password": PASSWORD})
    event = _latest("auth.login_superuser")
    assert event.actor == root and event.data == {"flag": "superuser"}
