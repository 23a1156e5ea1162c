"""The staff side of support access in the admin: requests, decisions, grants, the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance.access import services
from governance.access.admin_support import time_left
from governance.access.models import AccessLogEntry, DataScope, SupportAccessRequest, SupportGrant, User
from governance.access.roles import AUDITOR, SECURITY_OFFICER, SUPPORT_ENGINEER
from governance.tenancy.models import Membership
from governance.tenancy.policies import organisations_with_customer_data
from tests.factories import MembershipFactory, StaffFactory, approved_grant, support_request
from tests.helpers import otp_client

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:access_supportaccessrequest_add")
REQUESTS_URL = reverse("admin:access_supportaccessrequest_changelist")
GRANTS_URL = reverse("admin:access_supportgrant_changelist")
LOG_URL = reverse("admin:access_accesslogentry_changelist")


def _decide_url(request: SupportAccessRequest) -> str:
    return reverse("admin:access_supportaccessrequest_decide", args=[request.pk])


def _revoke_url(grant: SupportGrant) -> str:
    return reverse("admin:access_supportgrant_revoke", args=[grant.pk])


def _add_data(organisation, named, **overrides) -> dict:
    start = timezone.now()
    return {
        "organisation": organisation.pk,
        "reason_type": "customer_support",
        "ticket_reference": "SUP-777",
        "justification": "Customer cannot export invoices; need to inspect their user list.",
        "scope": ["people"],
        "requested_start_0": f"{start:%Y-%m-%d}",
        "requested_start_1": f"{start:%H:%M:%S}",
        "duration_hours": "3",
        "named_staff": [u.pk for u in named],
        "_save": "Save",
        **overrides,
    }


def _fresh(user: User) -> User:
    # Guardian and Django cache permissions on the user object: read them anew.
    return User.objects.get(pk=user.pk)


# --- adding a request -----------------------------------------------------------------------------


@pytest.mark.commitment("C04")
def test_support_engineer_adds_a_request_through_the_service(org_a):
    engineer = StaffFactory(role=SUPPORT_ENGINEER)
    colleague = StaffFactory(role=SUPPORT_ENGINEER)
    client = otp_client(engineer)
    form_page = client.get(ADD_URL)
    assert form_page.status_code == 200
    assert colleague.username in form_page.content.decode()

    response = client.post(ADD_URL, _add_data(org_a, [engineer, colleague]))

    assert response.status_code == 302, response.context["adminform"].form.errors
    request = SupportAccessRequest.objects.get()
    assert request.requester == engineer
    assert request.organisation == org_a
    assert request.status == SupportAccessRequest.Status.PENDING
    assert request.scope == [DataScope.PEOPLE]
    assert request.requested_duration == timedelta(hours=3)
    assert set(request.named_staff.all()) == {engineer, colleague}
    # The service ran: its deadline comes from the customer's limits and it wrote its audit event.
    assert request.decision_deadline > timezone.now()
    from governance.audit.models import AuditEvent

    assert AuditEvent.objects.filter(action="support_access.requested").count() == 1


@pytest.mark.commitment("C04")
def test_only_eligible_support_staff_can_be_named(org_a):
    engineer = StaffFactory(role=SUPPORT_ENGINEER)
    officer = StaffFactory(role=SECURITY_OFFICER)
    customer = MembershipFactory(organisation=org_a).user
    client = otp_client(engineer)
    for outsider in (officer, customer):
        response = client.post(ADD_URL, _add_data(org_a, [engineer, outsider]))
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert "Only active support engineers can be named" in errors["named_staff"][0]
        assert outsider.username not in client.get(ADD_URL).content.decode()
    assert not SupportAccessRequest.objects.exists()


@pytest.mark.commitment("C04")
def test_more_than_the_named_staff_limit_is_refused(org_a, settings):
    settings.SUPPORT_ACCESS_MAX_NAMED_STAFF = 2
    engineers = [StaffFactory(role=SUPPORT_ENGINEER) for _ in range(3)]
    client = otp_client(engineers[0])

    response = client.post(ADD_URL, _add_data(org_a, engineers))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["named_staff"] == ["Name at most 2 people (need-to-know)."]
    assert not SupportAccessRequest.objects.exists()
    assert client.post(ADD_URL, _add_data(org_a, engineers[:2])).status_code == 302


@pytest.mark.commitment("C04")
def test_reason_types_the_customer_refused_are_refused_with_a_clear_message(org_a):
    admin = MembershipFactory(organisation=org_a, role=Membership.Role.ADMIN).user
    services.support_policy_update(
        organisation=org_a,
        acting_user=admin,
        max_grant_hours=8,
        decision_timeout_hours=12,
        accepted_reason_types=["incident_response"],
    )
    engineer = StaffFactory(role=SUPPORT_ENGINEER)

    response = otp_client(engineer).post(ADD_URL, _add_data(org_a, [engineer]))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["reason_type"] == [
        "Org A does not accept requests for customer-initiated support."
    ]
    assert not SupportAccessRequest.objects.exists()


@pytest.mark.commitment("C04")
def test_service_errors_land_on_the_form_fields(org_a):
    engineer = StaffFactory(role=SUPPORT_ENGINEER)
    response = otp_client(engineer).post(
        ADD_URL, _add_data(org_a, [engineer], duration_hours="100", justification="too short")
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["duration_hours"] == ["Org A accepts grants of at most 8 hours."]
    assert "at least 20 characters" in errors["justification"][0]


def test_a_superuser_outside_support_cannot_request_but_gets_an_error_not_a_500(org_a):
    root = StaffFactory(is_superuser=True)
    engineer = StaffFactory(role=SUPPORT_ENGINEER)
    response = otp_client(root).post(ADD_URL, _add_data(org_a, [engineer]))
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == [
        "Only support engineers can request access to customer data."
    ]
    assert not SupportAccessRequest.objects.exists()


# --- the read-only change page -----------------------------------------------------------------


def test_existing_requests_are_read_only_and_cannot_be_deleted(org_a):
    request = support_request(org_a)
    officer = StaffFactory(role=SECURITY_OFFICER)
    client = otp_client(officer)
    url = reverse("admin:access_supportaccessrequest_change", args=[request.pk])

    body = client.get(url).content.decode()

    assert request.justification in body
    assert request.requester.username in body
    assert 'name="ticket_reference"' not in body
    assert _decide_url(request) in body
    assert client.post(url, {"ticket_reference": "HACKED"}).status_code == 403
    assert client.post(reverse("admin:access_supportaccessrequest_delete", args=[request.pk])).status_code == 403
    request.refresh_from_db()
    assert request.ticket_reference == "SUP-1234"


# --- the internal decision ---------------------------------------------------------------------


@pytest.mark.commitment("C03")
def test_security_officer_approves_internally_but_customer_consent_is_still_needed(org_a):
    request = support_request(org_a)
    (engineer,) = request.named_staff.all()
    client = otp_client(StaffFactory(role=SECURITY_OFFICER))
    page = client.get(_decide_url(request))
    assert page.status_code == 200
    assert request.justification in page.content.decode()

    response = client.post(_decide_url(request), {"decision": "approve", "reason": ""}, follow=True)

    assert "the customer&#x27;s consent is still needed" in response.content.decode()
    request.refresh_from_db()
    assert request.internal_decision == SupportAccessRequest.Decision.APPROVED
    assert request.customer_decision == SupportAccessRequest.Decision.PENDING
    assert request.status == SupportAccessRequest.Status.PENDING
    assert not SupportGrant.objects.exists()
    assert list(organisations_with_customer_data(_fresh(engineer))) == []
    change = client.get(reverse("admin:access_supportaccessrequest_change", args=[request.pk])).content.decode()
    assert _decide_url(request) not in change


@pytest.mark.commitment("C03")
def test_denying_needs_a_reason(org_a):
    request = support_request(org_a)
    client = otp_client(StaffFactory(role=SECURITY_OFFICER))

    response = client.post(_decide_url(request), {"decision": "deny", "reason": " "})
    assert response.status_code == 200
    assert response.context["form"].errors["reason"] == ["Say why the request is denied."]
    request.refresh_from_db()
    assert request.internal_decision == SupportAccessRequest.Decision.PENDING

    response = client.post(_decide_url(request), {"decision": "deny", "reason": "Not needed for this ticket."})
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == SupportAccessRequest.Status.DENIED
    assert request.internal_reason == "Not needed for this ticket."


@pytest.mark.commitment("C03")
def test_a_decided_request_cannot_be_decided_again(org_a):
    request = support_request(org_a)
    client = otp_client(StaffFactory(role=SECURITY_OFFICER))
    client.post(_decide_url(request), {"decision": "approve"})

    response = client.post(_decide_url(request), {"decision": "deny", "reason": "Changed my mind."})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == ["This decision has already been given."]


@pytest.mark.commitment("C04")
def test_requester_who_is_also_a_security_officer_cannot_self_approve(org_a, settings):
    both = StaffFactory(role=SUPPORT_ENGINEER)
    both.groups.add(*type(both.groups.first()).objects.filter(name=SECURITY_OFFICER))
    client = otp_client(both)
    assert client.post(ADD_URL, _add_data(org_a, [StaffFactory(role=SUPPORT_ENGINEER)])).status_code == 302
    request = SupportAccessRequest.objects.get()
    assert request.requester == both

    response = client.post(_decide_url(request), {"decision": "approve"})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "The requester and the named staff cannot approve their own access."
    ]
    request.refresh_from_db()
    assert request.internal_decision == SupportAccessRequest.Decision.PENDING


@pytest.mark.commitment("C04")
def test_named_security_officer_cannot_approve_either(org_a):
    both = StaffFactory(role=SECURITY_OFFICER)
    both.groups.add(*type(both.groups.first()).objects.filter(name=SUPPORT_ENGINEER))
    request = support_request(org_a, named=[both])
    response = otp_client(both).post(_decide_url(request), {"decision": "approve"})
    assert "cannot approve their own access" in response.content.decode()
    request.refresh_from_db()
    assert request.internal_decision == SupportAccessRequest.Decision.PENDING


# --- who reaches which page (C02) --------------------------------------------------------------


@pytest.mark.commitment("C02")
def test_support_engineer_cannot_reach_the_decide_page(org_a):
    request = support_request(org_a)
    client = otp_client(request.requester)
    assert client.get(_decide_url(request)).status_code == 403
    assert client.post(_decide_url(request), {"decision": "approve"}).status_code == 403
    change = client.get(reverse("admin:access_supportaccessrequest_change", args=[request.pk])).content.decode()
    assert _decide_url(request) not in change
    request.refresh_from_db()
    assert request.internal_decision == SupportAccessRequest.Decision.PENDING


@pytest.mark.commitment("C02")
def test_auditor_views_lists_but_cannot_decide_revoke_or_add(org_a):
    grant = approved_grant(org_a)
    services.access_log_record(
        user=grant.staff.get(), organisation=org_a, scope=DataScope.PROFILE, objects=[org_a], path="/x"
    )
    pending = support_request(org_a)
    client = otp_client(StaffFactory(role=AUDITOR))
    for url in (
        REQUESTS_URL,
        GRANTS_URL,
        LOG_URL,
        reverse("admin:access_supportaccessrequest_change", args=[pending.pk]),
        reverse("admin:access_supportgrant_change", args=[grant.pk]),
    ):
        assert client.get(url).status_code == 200, url
    assert client.get(ADD_URL).status_code == 403
    assert client.post(ADD_URL, _add_data(org_a, [pending.requester])).status_code == 403
    assert client.get(_decide_url(pending)).status_code == 403
    assert client.post(_decide_url(pending), {"decision": "approve"}).status_code == 403
    assert client.get(_revoke_url(grant)).status_code == 403
    assert client.post(_revoke_url(grant), {"reason": "audit"}).status_code == 403
    cancel = reverse("admin:access_supportaccessrequest_cancel", args=[pending.pk])
    assert client.post(cancel).status_code == 403
    assert client.get(reverse("admin:access_supportgrant_add")).status_code == 403
    log_entry = AccessLogEntry.objects.get()
    assert client.post(reverse("admin:access_accesslogentry_delete", args=[log_entry.pk])).status_code == 403
    pending.refresh_from_db()
    grant.refresh_from_db()
    assert pending.status == SupportAccessRequest.Status.PENDING
    assert grant.revoked_at is None


# --- cancelling --------------------------------------------------------------------------------


def test_requester_cancels_and_others_cannot(org_a):
    request = support_request(org_a)
    cancel = reverse("admin:access_supportaccessrequest_cancel", args=[request.pk])
    other = otp_client(StaffFactory(role=SUPPORT_ENGINEER))
    assert other.post(cancel).status_code == 403
    requester = otp_client(request.requester)
    change = reverse("admin:access_supportaccessrequest_change", args=[request.pk])
    assert cancel in requester.get(change).content.decode()
    assert requester.get(cancel).status_code == 405

    response = requester.post(cancel, follow=True)

    assert "The request is cancelled." in response.content.decode()
    request.refresh_from_db()
    assert request.status == SupportAccessRequest.Status.CANCELLED
    again = requester.post(cancel, follow=True)
    assert "This request is already cancelled by the requester." in again.content.decode()


# --- grants and revocation ---------------------------------------------------------------------


@pytest.mark.commitment("C02")
@pytest.mark.parametrize("who", ["officer", "named"])
def test_revoking_through_the_admin_ends_access_at_once(org_a, who):
    grant = approved_grant(org_a)
    (engineer,) = grant.staff.all()
    assert list(organisations_with_customer_data(_fresh(engineer))) == [org_a]
    actor = StaffFactory(role=SECURITY_OFFICER) if who == "officer" else engineer
    client = otp_client(actor)
    change = client.get(reverse("admin:access_supportgrant_change", args=[grant.pk])).content.decode()
    assert _revoke_url(grant) in change

    response = client.post(_revoke_url(grant), {"reason": "Ticket resolved."}, follow=True)

    assert "access has ended" in response.content.decode()
    grant.refresh_from_db()
    assert grant.revoked_at is not None and grant.revoked_by == actor
    assert grant.revoke_reason == "Ticket resolved."
    assert list(organisations_with_customer_data(_fresh(engineer))) == []
    assert not _fresh(engineer).has_perm(services.GRANT_PERMISSION, org_a)
    data_url = reverse("admin:tenancy_organisation_data", args=[org_a.pk])
    assert otp_client(engineer).get(data_url).status_code == 403


@pytest.mark.commitment("C02")
def test_revoking_needs_a_reason_and_an_ended_grant_cannot_be_revoked(org_a):
    grant = approved_grant(org_a)
    client = otp_client(StaffFactory(role=SECURITY_OFFICER))

    response = client.post(_revoke_url(grant), {"reason": ""})
    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    grant.refresh_from_db()
    assert grant.revoked_at is None

    client.post(_revoke_url(grant), {"reason": "Done."})
    again = client.post(_revoke_url(grant), {"reason": "Done twice."})
    assert again.status_code == 200
    assert again.context["form"].non_field_errors() == ["This grant has already ended."]


@pytest.mark.commitment("C02")
def test_staff_not_named_on_a_grant_cannot_revoke_it(org_a):
    grant = approved_grant(org_a)
    client = otp_client(StaffFactory(role=SUPPORT_ENGINEER))
    assert client.get(_revoke_url(grant)).status_code == 403
    change = client.get(reverse("admin:access_supportgrant_change", args=[grant.pk])).content.decode()
    assert _revoke_url(grant) not in change
    assert reverse("admin:tenancy_organisation_data", args=[org_a.pk]) not in change


def test_grant_list_shows_state_and_time_left_and_named_staff_get_the_data_link(org_a):
    with time_machine.travel(datetime(2025, 3, 3, 9, 0, tzinfo=UTC), tick=False):
        grant = approved_grant(org_a, hours=4)
        (engineer,) = grant.staff.all()
    with time_machine.travel(datetime(2025, 3, 3, 9, 48, tzinfo=UTC), tick=False):
        client = otp_client(engineer)
        body = client.get(GRANTS_URL).content.decode()
        assert "3 h 12 min left" in body
        assert client.get(GRANTS_URL, {"state": "active"}).context["cl"].result_count == 1
        assert client.get(GRANTS_URL, {"state": "ended"}).context["cl"].result_count == 0
        change = client.get(reverse("admin:access_supportgrant_change", args=[grant.pk])).content.decode()
        assert reverse("admin:tenancy_organisation_data", args=[org_a.pk]) in change
    with time_machine.travel(datetime(2025, 3, 3, 13, 0, tzinfo=UTC), tick=False):
        client = otp_client(engineer)
        assert client.get(GRANTS_URL, {"state": "ended"}).context["cl"].result_count == 1
        change = client.get(reverse("admin:access_supportgrant_change", args=[grant.pk])).content.decode()
        assert reverse("admin:tenancy_organisation_data", args=[org_a.pk]) not in change
        assert _revoke_url(grant) not in change


def test_request_list_shows_time_left_until_the_decision_deadline(org_a):
    with time_machine.travel(datetime(2025, 3, 3, 9, 0, tzinfo=UTC), tick=False):
        support_request(org_a)  # the default customer limits: 12 hours to decide
        officer = StaffFactory(role=SECURITY_OFFICER)
    with time_machine.travel(datetime(2025, 3, 3, 17, 48, tzinfo=UTC), tick=False):
        # A fresh sign-in each time: staff sessions are shorter than these jumps.
        client = otp_client(officer)
        assert "3 h 12 min left" in client.get(REQUESTS_URL).content.decode()
    with time_machine.travel(datetime(2025, 3, 3, 21, 0, tzinfo=UTC), tick=False):
        client = otp_client(officer)
        assert "(expired)" in client.get(REQUESTS_URL).content.decode()
        assert client.get(REQUESTS_URL, {"q": "SUP-1234"}).context["cl"].result_count == 1
        assert client.get(REQUESTS_URL, {"q": "SUP-9"}).context["cl"].result_count == 0


def test_time_left_wording():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert time_left(now + timedelta(hours=3, minutes=12, seconds=30), now) == "3 h 12 min left"
    assert time_left(now + timedelta(minutes=5), now) == "5 min left"
    assert time_left(now + timedelta(seconds=20), now) == "less than a minute left"
    assert time_left(now, now) == "expired"


# --- query counts ------------------------------------------------------------------------------


def _count(client, url) -> int:
    client.get(url)  # warm up: the first request of a session does one-off work
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _grow_requests(n: int, org, requester) -> None:
    for _ in range(n):
        support_request(org, requester=requester, named=[requester, StaffFactory(role=SUPPORT_ENGINEER)])


def _grow_log(n: int, org, grant) -> None:
    services.access_log_record(
        user=grant.staff.get(), organisation=org, scope=DataScope.PROFILE, objects=[org] * n, path="/x"
    )


@pytest.mark.commitment("C02")
@pytest.mark.parametrize("role", [SECURITY_OFFICER, SUPPORT_ENGINEER, AUDITOR])
def test_support_access_changelists_do_not_grow_with_rows(org_a, role):
    grant = approved_grant(org_a)
    client = otp_client(StaffFactory(role=role))
    requester = StaffFactory(role=SUPPORT_ENGINEER)
    urls = [REQUESTS_URL, GRANTS_URL] + ([LOG_URL] if role != SUPPORT_ENGINEER else [])

    _grow_requests(4, org_a, requester)  # 5 requests with the granted one
    _grow_log(5, org_a, grant)
    small = {u: _count(client, u) for u in urls}
    for _ in range(3):
        approved_grant(org_a)
    _grow_requests(42, org_a, requester)  # 50 requests, 4 grants
    _grow_log(45, org_a, grant)
    large = {u: _count(client, u) for u in urls}

    assert SupportAccessRequest.objects.count() == 50
    assert AccessLogEntry.objects.count() == 50
    assert small == large
