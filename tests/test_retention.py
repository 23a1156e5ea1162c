"""Termination, clean-up runs and deletion certificates (C21)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta

import pytest
import time_machine
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from governance.access.models import SupportAccessRequest, SupportGrant, User
from governance.access.roles import SECURITY_OFFICER
from governance.audit.models import AuditEvent
from governance.retention import purge, services
from governance.retention.cadence import cleanup_interval_months, next_cleanup_date
from governance.retention.models import CleanupRun, DeletionCertificate, Termination
from governance.retention.tasks import email_certificate, run_cleanup_if_due
from governance.tenancy.models import Membership, Organisation
from tests.factories import PASSWORD, MembershipFactory, StaffFactory, approved_grant, support_request

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C21")]


@pytest.fixture
def officers():
    return StaffFactory(role=SECURITY_OFFICER), StaffFactory(role=SECURITY_OFFICER)


@pytest.fixture
def tenant_a(org_a):
    """Org A with two customer accounts, an active support grant and a pending request."""
    admin = MembershipFactory(organisation=org_a, role=Membership.Role.ADMIN).user
    viewer = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    grant = approved_grant(org_a)
    pending = support_request(org_a)
    return {"org": org_a, "admin": admin, "viewer": viewer, "grant": grant, "pending": pending}


@pytest.fixture
def tenant_b(org_b):
    MembershipFactory(organisation=org_b, role=Membership.Role.ADMIN)
    approved_grant(org_b)
    return org_b


def _terminate(org, officers):
    first, second = officers
    termination = services.termination_request(organisation=org, acting_user=first, reason="Contract ended")
    return services.termination_confirm(termination=termination, acting_user=second)


def _snapshot(org_id: int) -> dict[str, int]:
    return {
        "memberships": Membership.objects.filter(organisation_id=org_id).count(),
        "requests": SupportAccessRequest.objects.filter(organisation_id=org_id).count(),
        "grants": SupportGrant.objects.filter(organisation_id=org_id).count(),
        "users": User.objects.filter(membership__organisation_id=org_id).count(),
        "org": Organisation.objects.filter(pk=org_id).count(),
    }


# --- cadence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("months", ["5", "13", "0"])
def test_settings_refuse_a_cadence_outside_6_to_12_months(months):
    env = {**os.environ, "RETENTION_CLEANUP_INTERVAL_MONTHS": months, "SECRET_KEY": "s" * 50}
    env.setdefault("CRYPTOGRAPHY_KEY", "k" * 40)
    result = subprocess.run(
        [sys.executable, "-c", "import assyst.settings"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "between 6 and 12" in result.stderr


@pytest.mark.parametrize("months", [6, 12])
def test_settings_accept_6_and_12_months(months):
    env = {**os.environ, "RETENTION_CLEANUP_INTERVAL_MONTHS": str(months), "SECRET_KEY": "s" * 50}
    env.setdefault("CRYPTOGRAPHY_KEY", "k" * 40)
    result = subprocess.run([sys.executable, "-c", "import assyst.settings"], env=env, capture_output=True, check=False)
    assert result.returncode == 0


def test_overridden_cadence_is_checked_again(settings):
    settings.RETENTION_CLEANUP_INTERVAL_MONTHS = 13
    with pytest.raises(ImproperlyConfigured):
        cleanup_interval_months()


def test_next_run_is_anchor_then_last_completed_run_plus_interval(settings):
    settings.RETENTION_CLEANUP_ANCHOR = date(2026, 3, 1)
    settings.RETENTION_CLEANUP_INTERVAL_MONTHS = 9
    assert next_cleanup_date() == date(2026, 3, 1)
    at = timezone.now().replace(year=2026, month=5, day=31)
    CleanupRun.objects.create(started_at=at, finished_at=at, status=CleanupRun.Status.COMPLETED)
    CleanupRun.objects.create(started_at=at, finished_at=at + timedelta(days=1), status=CleanupRun.Status.FAILED)
    assert next_cleanup_date() == date(2027, 2, 28)


def test_daily_check_runs_the_cleanup_only_when_due(settings, tenant_a, officers):
    _terminate(tenant_a["org"], officers)
    settings.RETENTION_CLEANUP_ANCHOR = date(2030, 1, 1)
    with time_machine.travel("2029-12-31 01:30Z", tick=False):
        run_cleanup_if_due()
    assert Organisation.objects.filter(pk=tenant_a["org"].pk).exists()
    with time_machine.travel("2030-01-01 01:30Z", tick=False):
        run_cleanup_if_due()
    assert not Organisation.objects.filter(pk=tenant_a["org"].pk).exists()
    assert CleanupRun.objects.get().status == CleanupRun.Status.COMPLETED
    assert next_cleanup_date() == date(2030, 7, 1)


# --- termination -----------------------------------------------------------------------------


def test_same_officer_cannot_request_and_confirm(tenant_a, officers):
    first, _ = officers
    termination = services.termination_request(organisation=tenant_a["org"], acting_user=first, reason="Ended")
    with pytest.raises(PermissionDenied):
        services.termination_confirm(termination=termination, acting_user=first)
    tenant_a["org"].refresh_from_db()
    assert tenant_a["org"].status == Organisation.Status.ACTIVE


def test_only_officers_or_the_customer_admin_may_request(tenant_a, customer_b):
    engineer = StaffFactory(role="Support engineer")
    for user in (engineer, customer_b, tenant_a["viewer"]):
        with pytest.raises(PermissionDenied):
            services.termination_request(organisation=tenant_a["org"], acting_user=user, reason="x")


def test_customer_admin_requests_and_an_officer_confirms(tenant_a, officers):
    termination = services.termination_request(
        organisation=tenant_a["org"], acting_user=tenant_a["admin"], reason="Moving provider"
    )
    assert termination.requested_via == Termination.Via.CUSTOMER
    customer_peer = MembershipFactory(organisation=tenant_a["org"], role=Membership.Role.ADMIN).user
    with pytest.raises(PermissionDenied):
        services.termination_confirm(termination=termination, acting_user=customer_peer)
    services.termination_confirm(termination=termination, acting_user=officers[0])
    termination.refresh_from_db()
    assert termination.status == Termination.Status.CONFIRMED


def test_termination_ends_logins_grants_and_portal_access(tenant_a, officers):
    admin, grant, pending = tenant_a["admin"], tenant_a["grant"], tenant_a["pending"]
    client = Client()
    client.force_login(admin)
    assert client.get("/portal/").status_code == 200
    other = Client()
    other.force_login(StaffFactory())

    _terminate(tenant_a["org"], officers)

    sessions = [s.get_decoded().get(SESSION_KEY) for s in Session.objects.all()]
    assert str(admin.pk) not in sessions and len(sessions) == 1  # the staff session stays
    admin.refresh_from_db()
    assert not admin.is_active
    assert client.get("/portal/").status_code == 302  # signed out
    refused = Client().post("/portal/login/", {"username": admin.username, "password": PASSWORD})
    assert refused.status_code == 200 and "_auth_user_id" not in refused.client.session
    grant.refresh_from_db()
    assert grant.revoked_at is not None and grant.permissions_removed_at is not None
    assert not any(u.has_perm("tenancy.view_customer_data", tenant_a["org"]) for u in grant.staff.all())
    pending.refresh_from_db()
    assert pending.status == SupportAccessRequest.Status.CANCELLED
    tenant_a["org"].refresh_from_db()
    assert tenant_a["org"].status == Organisation.Status.TERMINATED
    assert AuditEvent.objects.filter(action="retention.terminated", organisation_id=tenant_a["org"].pk).exists()
    with pytest.raises(ValidationError):
        services.termination_request(organisation=tenant_a["org"], acting_user=officers[0], reason="again")


# --- clean-up ----------------------------------------------------------------------------------


def test_dry_run_changes_nothing(tenant_a, tenant_b, officers, capsys):
    _terminate(tenant_a["org"], officers)
    before = (_snapshot(tenant_a["org"].pk), _snapshot(tenant_b.pk), AuditEvent.objects.count())
    call_command("cleanup", "--dry-run")
    out = capsys.readouterr().out
    assert "Org A" in out and "tenancy.Membership: 3" in out and "customer accounts: 3" in out
    assert "Dry run: nothing deleted" in out
    assert (_snapshot(tenant_a["org"].pk), _snapshot(tenant_b.pk), AuditEvent.objects.count()) == before
    assert not DeletionCertificate.objects.exists()


def test_purge_deletes_exactly_the_terminated_organisation(tenant_a, tenant_b, officers, capsys):
    _terminate(tenant_a["org"], officers)
    org_id = tenant_a["org"].pk
    b_before = _snapshot(tenant_b.pk)
    staff_before = User.objects.filter(is_staff=True).count()
    call_command("cleanup")
    assert _snapshot(org_id) == {"memberships": 0, "requests": 0, "grants": 0, "users": 0, "org": 0}
    assert not User.objects.filter(pk__in=[tenant_a["admin"].pk, tenant_a["viewer"].pk]).exists()
    assert _snapshot(tenant_b.pk) == b_before
    assert User.objects.filter(is_staff=True).count() == staff_before
    termination = Termination.objects.get(organisation_pk=org_id)
    assert termination.status == Termination.Status.PURGED and termination.organisation_id is None
    assert AuditEvent.objects.filter(action="retention.purged", organisation_id=org_id).exists()
    # The audit trail is kept (and still verifies).
    assert AuditEvent.objects.filter(action="retention.terminated", organisation_id=org_id).exists()
    assert "purged, certificate" in capsys.readouterr().out


def test_every_model_with_an_organisation_key_is_in_the_plan():
    from django.apps import apps

    planned = {s.model for s in purge.purge_plan().steps}
    for model in apps.get_models(include_auto_created=True):
        if model._meta.app_label in purge.EXCLUDED_APPS:
            continue
        if any(
            f.is_relation and (f.many_to_one or f.one_to_one) and f.related_model is Organisation
            for f in model._meta.concrete_fields
        ):
            assert model in planned, model


def test_purge_resumes_after_a_crash_without_deleting_twice(tenant_a, tenant_b, officers, monkeypatch):
    _terminate(tenant_a["org"], officers)
    [(_, expected)] = services.cleanup_preview()
    b_before = _snapshot(tenant_b.pk)
    calls = {"n": 0}
    real_bump = services._bump

    def crash_on_second_batch(counts, kind, n):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return real_bump(counts, kind, n)

    monkeypatch.setattr(services, "_bump", crash_on_second_batch)
    with pytest.raises(RuntimeError):
        services.cleanup_run(batch_size=1)
    termination = Termination.objects.get(organisation_pk=tenant_a["org"].pk)
    assert termination.status == Termination.Status.PURGING
    assert sum(termination.purge_counts.values()) == 1  # the first batch committed with its count
    assert CleanupRun.objects.get().status == CleanupRun.Status.FAILED

    monkeypatch.setattr(services, "_bump", real_bump)
    services.cleanup_run(batch_size=1)
    termination.refresh_from_db()
    assert termination.status == Termination.Status.PURGED
    assert termination.purge_counts == expected
    assert termination.certificate.counts == expected
    assert _snapshot(tenant_a["org"].pk)["org"] == 0
    assert _snapshot(tenant_b.pk) == b_before


def test_certificate_has_counts_digest_and_no_personal_data(tenant_a, officers, django_capture_on_commit_callbacks):
    org = tenant_a["org"]
    personal = [
        org.primary_contact_name,
        org.primary_contact_email,
        tenant_a["admin"].email,
        tenant_a["viewer"].email,
        tenant_a["admin"].username,
        tenant_a["admin"].first_name,
        tenant_a["admin"].last_name,
    ]
    admin_emails = list(
        Membership.objects.filter(organisation=org, role=Membership.Role.ADMIN).values_list("user__email", flat=True)
    )
    _terminate(org, officers)
    with django_capture_on_commit_callbacks() as callbacks:
        services.cleanup_run()
    assert len(callbacks) == 1  # the certificate email is queued after commit
    cert = DeletionCertificate.objects.get()
    email_certificate(cert.pk)
    # Two customer accounts here, one more from the grant's consenting admin.
    assert cert.counts["tenancy.Membership"] == 3 and cert.counts["customer accounts"] == 3
    assert cert.counts["tenancy.Organisation"] == 1
    assert len(cert.digest) == 64 and cert.digest == services.certificate_digest(cert)
    assert cert.backups_clear_at == cert.purge_finished_at + timedelta(days=90)
    stored = repr({f.name: getattr(cert, f.name) for f in cert._meta.fields}) + repr(services.certificate_content(cert))
    for value in personal:
        assert value and value not in stored
    # Emailed to the former admin only, whose address is then erased.
    # One message per former admin (2), none to the viewer.
    assert sorted(m.to[0] for m in mail.outbox) == sorted(admin_emails)
    for message in mail.outbox:
        assert cert.digest in message.body and len(message.to) == 1
        for value in personal[:2] + personal[3:]:
            assert value not in message.body
    cert.refresh_from_db()
    assert cert.emailed_at is not None and cert.emailed_to_count == 2
    assert cert.termination.certificate_recipients == ""
