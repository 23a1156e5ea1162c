"""Support access services: consent and approval (C03), need-to-know grants (C04),
no access without an active grant (C02)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from guardian.core import ObjectPermissionChecker

from governance.access import services
from governance.access.models import AccessLogEntry, SupportAccessRequest, SupportGrant
from governance.access.roles import SECURITY_OFFICER, SUPPORT_ENGINEER
from governance.access.tasks import expire_support_access, notify_support_access
from governance.audit.models import AuditEvent
from governance.core.models import JobRun
from governance.tenancy.models import Membership
from governance.tenancy.policies import organisations_with_customer_data
from tests.factories import MembershipFactory, StaffFactory, approved_grant, support_request

pytestmark = pytest.mark.django_db

Status = SupportAccessRequest.Status


@pytest.fixture
def officer():
    return StaffFactory(role=SECURITY_OFFICER)


@pytest.fixture
def engineer():
    return StaffFactory(role=SUPPORT_ENGINEER)


@pytest.fixture
def customer_admin(org_a):
    return MembershipFactory(organisation=org_a, role=Membership.Role.ADMIN).user


def _has_object_permission(user, org) -> bool:
    return ObjectPermissionChecker(type(user).objects.get(pk=user.pk)).has_perm("view_customer_data", org)


@pytest.mark.commitment("C03")
def test_both_decisions_are_needed_in_either_order(org_a, engineer, officer, customer_admin):
    for first, second in (("internal", "customer"), ("customer", "internal")):
        request = support_request(org_a, requester=engineer)
        deciders = {
            "internal": lambda r=request: services.support_request_decide_internal(
                request=r, acting_user=officer, approve=True
            ),
            "customer": lambda r=request: services.support_request_decide_customer(
                request=r, acting_user=customer_admin, approve=True
            ),
        }
        deciders[first]()
        request.refresh_from_db()
        assert request.status == Status.PENDING
        assert not SupportGrant.objects.filter(request=request).exists()
        assert list(organisations_with_customer_data(engineer)) == []
        deciders[second]()
        request.refresh_from_db()
        assert request.status == Status.APPROVED
        assert request.grant.staff.get() == engineer
        assert list(organisations_with_customer_data(engineer)) == [org_a]
        services.grant_revoke(grant=request.grant, acting_user=officer, reason="next round")


@pytest.mark.commitment("C03")
@pytest.mark.parametrize("side", ["internal", "customer"])
def test_one_denial_closes_the_request_and_needs_a_reason(org_a, engineer, officer, customer_admin, side):
    request = support_request(org_a, requester=engineer)
    decide, actor = {
        "internal": (services.support_request_decide_internal, officer),
        "customer": (services.support_request_decide_customer, customer_admin),
    }[side]
    with pytest.raises(ValidationError, match="why"):
        decide(request=request, acting_user=actor, approve=False, reason="  ")
    decide(request=request, acting_user=actor, approve=False, reason="Not needed for this ticket")
    request.refresh_from_db()
    assert request.status == Status.DENIED
    with pytest.raises(ValidationError, match="already"):
        services.support_request_decide_customer(request=request, acting_user=customer_admin, approve=True)
    assert not SupportGrant.objects.exists()


@pytest.mark.commitment("C03")
def test_requester_and_named_staff_cannot_approve_even_as_security_officers(org_a, officer):
    both = StaffFactory(role=SUPPORT_ENGINEER)
    both.groups.add(officer.groups.get())
    named_officer = StaffFactory(role=SUPPORT_ENGINEER)
    named_officer.groups.add(officer.groups.get())
    request = support_request(org_a, requester=both, named=[both, named_officer])
    for user in (both, named_officer):
        with pytest.raises(PermissionDenied, match="own access"):
            services.support_request_decide_internal(request=request, acting_user=user, approve=True)
    request.refresh_from_db()
    assert request.internal_decision == SupportAccessRequest.Decision.PENDING


@pytest.mark.commitment("C03")
def test_only_customer_admins_of_that_organisation_consent(org_a, org_b, engineer):
    request = support_request(org_a, requester=engineer)
    viewer = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    other_admin = MembershipFactory(organisation=org_b, role=Membership.Role.ADMIN).user
    for user in (viewer, other_admin, engineer, StaffFactory(role=SECURITY_OFFICER)):
        with pytest.raises(PermissionDenied):
            services.support_request_decide_customer(request=request, acting_user=user, approve=True)


@pytest.mark.commitment("C04")
def test_only_support_engineers_request_and_only_they_are_named(org_a, officer, engineer, settings):
    with pytest.raises(PermissionDenied):
        support_request(org_a, requester=officer, named=[engineer])
    with pytest.raises(ValidationError) as exc:
        support_request(org_a, requester=engineer, named=[engineer, officer])
    assert "named_staff" in exc.value.message_dict
    settings.SUPPORT_ACCESS_MAX_NAMED_STAFF = 2
    crowd = [engineer, *(StaffFactory(role=SUPPORT_ENGINEER) for _ in range(2))]
    with pytest.raises(ValidationError, match="at most 2"):
        support_request(org_a, requester=engineer, named=crowd)
    inactive = StaffFactory(role=SUPPORT_ENGINEER, is_active=False)
    with pytest.raises(ValidationError):
        support_request(org_a, requester=engineer, named=[inactive])
    assert set(services.eligible_staff()) == {engineer, *crowd}


@pytest.mark.commitment("C04")
def test_grant_covers_exactly_the_named_staff_and_organisation(org_a, org_b, engineer):
    bystander = StaffFactory(role=SUPPORT_ENGINEER)
    grant = approved_grant(org_a, requester=engineer)
    assert _has_object_permission(engineer, org_a)
    assert not _has_object_permission(engineer, org_b)
    assert not _has_object_permission(bystander, org_a)
    assert list(organisations_with_customer_data(bystander)) == []
    assert grant.ends_at - grant.starts_at == timedelta(hours=4)


@pytest.mark.commitment("C04")
def test_customer_limits_are_enforced(org_a, engineer, customer_admin):
    services.support_policy_update(
        organisation=org_a,
        acting_user=customer_admin,
        max_grant_hours=2,
        decision_timeout_hours=1,
        accepted_reason_types=["incident_response"],
    )
    with pytest.raises(ValidationError) as exc:
        support_request(org_a, requester=engineer, hours=3, reason_type="incident_response")
    assert "at most 2 hours" in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        support_request(org_a, requester=engineer, hours=1, reason_type="customer_support")
    assert "does not accept" in str(exc.value)
    request = support_request(org_a, requester=engineer, hours=2, reason_type="incident_response")
    assert request.decision_deadline - request.created_at < timedelta(hours=1, seconds=5)
    for bad in ({"max_grant_hours": 0}, {"max_grant_hours": 500}, {"decision_timeout_hours": 100}):
        kwargs = {"max_grant_hours": 2, "decision_timeout_hours": 1, "accepted_reason_types": ["legal"], **bad}
        with pytest.raises(ValidationError):
            services.support_policy_update(organisation=org_a, acting_user=customer_admin, **kwargs)
    with pytest.raises(PermissionDenied):
        services.support_policy_update(
            organisation=org_a,
            acting_user=engineer,
            max_grant_hours=72,
            decision_timeout_hours=72,
            accepted_reason_types=["legal"],
        )


@pytest.mark.commitment("C02")
def test_access_ends_exactly_at_the_end_of_the_window_even_without_beat(org_a, engineer):
    start = timezone.now().replace(microsecond=0) + timedelta(minutes=1)
    with time_machine.travel(start - timedelta(minutes=1), tick=False):
        grant = approved_grant(org_a, requester=engineer, requested_start=start)
    assert grant.starts_at == start
    with time_machine.travel(start - timedelta(seconds=1), tick=False):
        assert list(organisations_with_customer_data(engineer)) == []  # not yet
    with time_machine.travel(start, tick=False):
        assert list(organisations_with_customer_data(engineer)) == [org_a]
    with time_machine.travel(grant.ends_at - timedelta(microseconds=1), tick=False):
        assert list(organisations_with_customer_data(engineer)) == [org_a]
    with time_machine.travel(grant.ends_at, tick=False):
        assert list(organisations_with_customer_data(engineer)) == []
        assert _has_object_permission(engineer, org_a)  # beat has not run: the grant still decides
        with pytest.raises(PermissionDenied):
            services.access_log_record(user=engineer, organisation=org_a, scope="people", objects=[org_a])
        expire_support_access.run()
        assert not _has_object_permission(engineer, org_a)
    grant.refresh_from_db()
    assert grant.permissions_removed_at == grant.ends_at
    assert JobRun.objects.filter(task="governance.access.tasks.expire_support_access").latest("started_at").counts == {
        "requests_expired": 0,
        "grants_ended": 1,
    }


@pytest.mark.commitment("C03")
def test_undecided_requests_expire_by_themselves(org_a, engineer, officer):
    request = support_request(org_a, requester=engineer)
    services.support_request_decide_internal(request=request, acting_user=officer, approve=True)
    with time_machine.travel(request.decision_deadline - timedelta(seconds=1), tick=False):
        expire_support_access.run()
    request.refresh_from_db()
    assert request.status == Status.PENDING
    with time_machine.travel(request.decision_deadline, tick=False):
        customer = MembershipFactory(organisation=org_a, role=Membership.Role.ADMIN).user
        with pytest.raises(ValidationError, match="deadline"):
            services.support_request_decide_customer(request=request, acting_user=customer, approve=True)
        expire_support_access.run()
    request.refresh_from_db()
    assert request.status == Status.EXPIRED
    assert not SupportGrant.objects.filter(request=request).exists()
    assert AuditEvent.objects.filter(action="support_access.expired", object_id=str(request.pk)).exists()


@pytest.mark.commitment("C02")
@pytest.mark.parametrize("who", ["officer", "customer_admin", "named_staff"])
def test_revocation_ends_access_at_once(org_a, engineer, officer, who):
    grant = approved_grant(org_a, requester=engineer)
    actor = {
        "officer": officer,
        "customer_admin": grant.request.customer_decided_by,
        "named_staff": engineer,
    }[who]
    with pytest.raises(ValidationError):
        services.grant_revoke(grant=grant, acting_user=actor, reason="")
    services.grant_revoke(grant=grant, acting_user=actor, reason="Ticket solved")
    assert list(organisations_with_customer_data(engineer)) == []
    assert not _has_object_permission(engineer, org_a)
    with pytest.raises(ValidationError, match="already ended"):
        services.grant_revoke(grant=grant, acting_user=actor, reason="again")


@pytest.mark.commitment("C02")
def test_bystanders_cannot_revoke(org_a, org_b, engineer):
    grant = approved_grant(org_a, requester=engineer)
    for user in (
        StaffFactory(role=SUPPORT_ENGINEER),
        MembershipFactory(organisation=org_b, role=Membership.Role.ADMIN).user,
        MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user,
    ):
        with pytest.raises(PermissionDenied):
            services.grant_revoke(grant=grant, acting_user=user, reason="no")


@pytest.mark.commitment("C02")
def test_a_second_grant_keeps_permission_when_the_first_ends(org_a, engineer):
    first = approved_grant(org_a, requester=engineer, hours=1)
    second = approved_grant(org_a, requester=engineer, hours=3)
    services.grant_revoke(grant=first, acting_user=engineer, reason="done with the first ticket")
    assert _has_object_permission(engineer, org_a)
    assert list(organisations_with_customer_data(engineer)) == [org_a]
    assert second.is_active(timezone.now())


@pytest.mark.commitment("C02")
def test_access_log_records_reads_only_under_a_grant_covering_the_scope(org_a, engineer):
    member = MembershipFactory(organisation=org_a)
    with pytest.raises(PermissionDenied):
        services.access_log_record(user=engineer, organisation=org_a, scope="people", objects=[member])
    grant = approved_grant(org_a, requester=engineer, scope=["people"])
    with pytest.raises(PermissionDenied):
        services.access_log_record(user=engineer, organisation=org_a, scope="profile", objects=[org_a])
    (entry,) = services.access_log_record(
        user=engineer, organisation=org_a, scope="people", objects=[member], path="/x"
    )
    assert entry.grant == grant and entry.staff == engineer and entry.ticket_reference == "SUP-1234"
    assert member.user.email not in entry.object_repr
    assert AccessLogEntry.objects.count() == 1


@pytest.mark.commitment("C03")
def test_notices_reach_customer_admins_and_approvers_without_sign_in_tokens(org_a, engineer, officer, customer_admin):
    request = support_request(org_a, requester=engineer, hours=2)
    notify_support_access.run("requested", request.pk)
    customer_mail, staff_mail = sorted(mail.outbox, key=lambda m: officer.email in m.to)
    # Separate messages: staff never see a customer's address, customers no staff addresses.
    assert customer_mail.to == [customer_admin.email]
    assert customer_admin.email not in staff_mail.to and {officer.email, engineer.email} <= set(staff_mail.to)
    for message in (customer_mail, staff_mail):
        assert "decision is needed" in message.subject
        assert request.justification in message.body and "for 2 hours" in message.body
        assert "token" not in message.body.lower()
    assert f"/portal/access/requests/{request.pk}/" in customer_mail.body and "/admin/" not in customer_mail.body
    assert "?" not in customer_mail.body.split("/portal/")[1].split()[0]
    assert f"/admin/access/supportaccessrequest/{request.pk}/" in staff_mail.body


@pytest.mark.commitment("C03")
def test_notifications_are_queued_only_after_commit(org_a, engineer, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr(notify_support_access, "delay", lambda *args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        request = support_request(org_a, requester=engineer)
        assert sent == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert sent == [("requested", request.pk)]


def test_bad_request_input_is_a_validation_error_not_a_crash(org_a, engineer):
    now = timezone.now()
    cases = [
        {"reason_type": "bribery"},
        {"ticket_reference": " "},
        {"justification": "short"},
        {"scope": []},
        {"scope": ["everything"]},
        {"requested_duration": timedelta(0)},
        {"requested_start": now - timedelta(days=1)},
        {"requested_start": now + timedelta(days=60)},
        {"named": []},
    ]
    for overrides in cases:
        with pytest.raises(ValidationError):
            support_request(org_a, requester=engineer, **overrides)
    assert not SupportAccessRequest.objects.exists()


@pytest.mark.commitment("C04")
def test_staff_who_left_the_support_role_get_no_grant(org_a, engineer, officer, customer_admin):
    request = support_request(org_a, requester=engineer)
    services.support_request_decide_internal(request=request, acting_user=officer, approve=True)
    engineer.groups.clear()
    with pytest.raises(ValidationError, match="no longer act"):
        services.support_request_decide_customer(request=request, acting_user=customer_admin, approve=True)
    request.refresh_from_db()
    assert request.status == Status.PENDING and request.customer_decision == SupportAccessRequest.Decision.PENDING
    assert not SupportGrant.objects.exists()
