"""The organisation's own audit log (C28): sign-ins, failed sign-ins, setting changes, exports,
support-access decisions; its customer admin only; filterable; CSV export audited."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from governance.access.services import support_request_decide_customer, support_request_decide_internal
from governance.audit.models import AuditEvent
from governance.audit.services import audit_record
from governance.tenancy.models import Membership
from tests.factories import PASSWORD, MembershipFactory, StaffFactory, support_request

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C28")]

LOG = reverse("portal:security_audit_log")
CSV = reverse("portal:security_audit_log_csv")


def _sign_in(user, password=PASSWORD) -> Client:
    client = Client()
    client.post(reverse("portal:login"), {"username": user.username, "password": password})
    return client


def _actions(org) -> list[str]:
    return list(AuditEvent.objects.filter(organisation_id=org.pk).values_list("action", flat=True))


def test_sign_ins_failed_sign_ins_and_sign_outs_are_attributed_to_the_organisation(org_a, org_b, customer_a):
    _sign_in(customer_a, password="wrong-password")
    client = _sign_in(customer_a)
    client.post(reverse("portal:logout"))
    _sign_in(MembershipFactory(organisation=org_b).user, password="wrong-password")
    _sign_in(StaffFactory(), password="wrong-password")
    _sign_in(customer_a.__class__(username="nobody-here"), password="x")
    assert set(_actions(org_a)) >= {"orgsecurity.login_failed", "orgsecurity.login", "orgsecurity.logout"}
    failed = AuditEvent.objects.filter(action="orgsecurity.login_failed")
    assert {e.organisation_id for e in failed} == {org_a.pk, org_b.pk}  # staff and unknown names: not a customer's


def test_only_the_organisations_customer_facing_events_are_listed(org_a, org_b, customer_a):
    b_admin = MembershipFactory(organisation=org_b).user
    request = support_request(org_a)
    support_request_decide_internal(request=request, acting_user=StaffFactory(role="Security officer"), approve=True)
    support_request_decide_customer(request=request, acting_user=customer_a, approve=False, reason="Not now")
    # Staff-internal events about the organisation never reach its log (e.g. a legal request).
    audit_record(action="legal.request_received", organisation_id=org_a.pk, data={"secret": "sealed order"})
    audit_record(action="orgsecurity.login", actor=b_admin, obj=b_admin, organisation_id=org_b.pk)
    client = Client()
    client.force_login(customer_a)
    body = client.get(LOG).content.decode()
    assert "support_access.customer_denied" in body
    assert "orgsecurity.login" in body  # the admin's own sign-in
    assert "legal.request_received" not in body and "sealed order" not in body
    assert "support_access.requested" not in body and "support_access.internal_approved" not in body
    assert b_admin.username not in body


def test_filters_narrow_the_list_and_bad_filters_are_400(org_a, customer_a):
    colleague = MembershipFactory(organisation=org_a, user__username="colleague-carol").user
    _sign_in(colleague, password="wrong-password")
    client = Client()
    client.force_login(customer_a)
    failed = client.get(LOG, {"category": "failed"}).content.decode()
    assert "orgsecurity.login_failed" in failed and "orgsecurity.login<" not in failed
    by_person = client.get(LOG, {"person": "carol"}).content.decode()
    assert "colleague-carol" in by_person and customer_a.username not in by_person.split("<tbody>")[1]
    assert client.get(LOG, {"date_from": "2026-13-01"}).status_code == 400
    assert client.get(LOG, {"date_from": "2026-02-01", "date_to": "2026-01-01"}).status_code == 400
    assert client.get(LOG, {"category": "nonsense"}).status_code == 400
    assert client.get(CSV, {"category": "nonsense"}).status_code == 400


def test_csv_export_is_audited_filtered_and_injection_safe(org_a, customer_a):
    MembershipFactory(organisation=org_a, user__username="=cmd|calc")
    _sign_in(Membership.objects.get(user__username="=cmd|calc").user)
    client = Client()
    client.force_login(customer_a)
    response = client.get(CSV, {"category": "logins"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["time_utc", "action", "person", "ip_address", "object", "details"]
    people = {row[2] for row in rows[1:]}
    assert "'=cmd|calc" in people and "=cmd|calc" not in people
    assert {row[1] for row in rows[1:]} <= {"orgsecurity.login", "orgsecurity.logout"}
    export = AuditEvent.objects.get(action="orgsecurity.audit_exported")
    assert export.organisation_id == org_a.pk and export.actor_id == customer_a.pk
    assert export.data["filters"] == {"category": "logins"}
    # The export shows in the log itself.
    assert "orgsecurity.audit_exported" in client.get(LOG, {"category": "exports"}).content.decode()


def test_viewers_and_other_organisations_cannot_read_the_log(org_a, org_b, customer_a):
    viewer = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    client = Client()
    client.force_login(viewer)
    assert client.get(LOG).status_code == 403
    assert client.get(CSV).status_code == 403
    assert not AuditEvent.objects.filter(action="orgsecurity.audit_exported").exists()


def _grow(org, n: int) -> None:
    member = MembershipFactory(organisation=org)
    for i in range(n):
        audit_record(action="orgsecurity.login", actor=member.user, obj=member.user, organisation_id=org.pk)
        audit_record(
            action="orgsecurity.policy_changed",
            actor=member.user,
            obj=org,
            data={"changes": {"idle_timeout_minutes": {"from": None, "to": i + 5}}},
        )


# Session, user, membership, organisation (tenant middleware), the security policy with the
# user's revocation (one query), then the page's count and its rows. No per-row lookups.
LIST_QUERIES = 7


@pytest.mark.parametrize("size", [3, 40])
def test_audit_log_list_costs_a_fixed_number_of_queries(org_a, customer_a, django_assert_num_queries, size):
    _grow(org_a, size)
    client = Client()
    client.force_login(customer_a)
    client.get(LOG)  # warm up: one-off work of a session's first request
    with django_assert_num_queries(LIST_QUERIES):
        response = client.get(LOG)
    assert response.status_code == 200
    with django_assert_num_queries(LIST_QUERIES):
        assert client.get(LOG, {"category": "settings", "person": "user"}).status_code == 200


def test_events_read_as_plain_sentences():
    from governance.orgsecurity.selectors import event_details

    changes = {"changes": {"ip_allowlist": {"from": [], "to": ["203.0.113.0/24", "2001:db8::/32"]}}}
    assert event_details(changes) == "ip_allowlist: none → 203.0.113.0/24, 2001:db8::/32"
    assert event_details({"reason": "session_idle"}) == "reason: session_idle"
    assert event_details({}) == ""
