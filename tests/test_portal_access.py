"""The customer side of support access: consent, grants, the access log, limits (C03, C04, C09)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance.access import services
from governance.access.models import AccessLogEntry, SupportAccessRequest
from governance.access.roles import SECURITY_OFFICER, SUPPORT_ENGINEER
from governance.audit.models import AuditEvent
from governance.tenancy.models import Membership
from governance.tenancy.policies import organisations_with_customer_data
from governance.tenancy.services import organisation_contact_update
from tests.factories import MembershipFactory, StaffFactory, approved_grant, support_request

pytestmark = pytest.mark.django_db

Status = SupportAccessRequest.Status
Decision = SupportAccessRequest.Decision


@pytest.fixture
def viewer_a(org_a):
    return MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user


@pytest.fixture
def officer():
    return StaffFactory(role=SECURITY_OFFICER, first_name="Sofia", last_name="Marsh")


@pytest.fixture
def engineer():
    return StaffFactory(role=SUPPORT_ENGINEER, first_name="Sam", last_name="Patel", username="sam")


def _as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _request_url(req) -> str:
    return reverse("portal:access_request_detail", kwargs={"pk": req.pk})


def _grant_url(grant) -> str:
    return reverse("portal:access_grant_detail", kwargs={"pk": grant.pk})


def _log(grant, *, n: int = 1, scope: str = "people", obj=None, **overrides) -> list[AccessLogEntry]:
    """Log entries as `access_log_record` writes them (directly, to control time and content)."""
    request = grant.request
    staff = grant.staff.first()
    fields = {
        "organisation": grant.organisation,
        "grant": grant,
        "staff": staff,
        "at": timezone.now(),
        "scope": scope,
        "object_type": "membership",
        "object_id": str(obj.pk if obj else 1),
        "object_repr": f"membership #{obj.pk if obj else 1}",
        "reason_type": request.reason_type,
        "ticket_reference": request.ticket_reference,
        **overrides,
    }
    return AccessLogEntry.objects.bulk_create(AccessLogEntry(**fields) for _ in range(n))


# --- consent and both approvals (C03) --------------------------------------------------------


@pytest.mark.commitment("C03")
def test_admin_approval_after_internal_approval_issues_the_grant(org_a, customer_a, officer, engineer):
    req = support_request(org_a, requester=engineer)
    services.support_request_decide_internal(request=req, acting_user=officer, approve=True)

    response = _as(customer_a).post(_request_url(req), {"decision": "approve", "reason": ""})

    assert response.status_code == 302
    req.refresh_from_db()
    assert req.status == Status.APPROVED
    assert req.customer_decision == Decision.APPROVED and req.customer_decided_by == customer_a
    assert list(req.grant.staff.all()) == [engineer]
    assert org_a in organisations_with_customer_data(engineer)


@pytest.mark.commitment("C03")
def test_admin_approval_alone_issues_no_grant(org_a, customer_a, engineer):
    req = support_request(org_a, requester=engineer)

    assert _as(customer_a).post(_request_url(req), {"decision": "approve"}).status_code == 302

    req.refresh_from_db()
    assert req.customer_decision == Decision.APPROVED and req.status == Status.PENDING
    assert not hasattr(req, "grant")
    assert org_a not in organisations_with_customer_data(engineer)


@pytest.mark.commitment("C03")
def test_deny_requires_a_reason(org_a, customer_a, engineer):
    req = support_request(org_a, requester=engineer)
    client = _as(customer_a)

    response = client.post(_request_url(req), {"decision": "deny", "reason": "   "})
    assert response.status_code == 400
    assert "Say why you deny this request." in response.content.decode()
    req.refresh_from_db()
    assert req.status == Status.PENDING and req.customer_decision == Decision.PENDING

    response = client.post(_request_url(req), {"decision": "deny", "reason": "Not during our audit week."})
    assert response.status_code == 302
    req.refresh_from_db()
    assert req.status == Status.DENIED
    assert req.customer_reason == "Not during our audit week."


@pytest.mark.commitment("C03")
def test_viewer_sees_the_request_but_cannot_decide(org_a, viewer_a, engineer):
    req = support_request(org_a, requester=engineer)
    client = _as(viewer_a)

    page = client.get(_request_url(req))
    assert page.status_code == 200
    body = page.content.decode()
    assert req.ticket_reference in body and "Approve access" not in body and "Deny access" not in body

    assert client.post(_request_url(req), {"decision": "approve"}).status_code == 403
    assert client.post(_request_url(req), {"decision": "deny", "reason": "no"}).status_code == 403
    req.refresh_from_db()
    assert req.customer_decision == Decision.PENDING


@pytest.mark.commitment("C03")
def test_request_page_shows_everything_and_both_approvals_side_by_side(org_a, customer_a, officer, engineer):
    other = StaffFactory(role=SUPPORT_ENGINEER, first_name="Priya", last_name="Nair")
    req = support_request(org_a, requester=engineer, named=[engineer, other], ticket_reference="SUP-777")
    services.support_request_decide_internal(
        request=req, acting_user=officer, approve=True, reason="Ticket checked with the account lead."
    )

    body = _as(customer_a).get(_request_url(req)).content.decode()

    for text in [
        "Customer-initiated support",
        "SUP-777",
        "invoices fail to export",
        "People: customer users&#x27; names and email addresses",
        "Organisation profile and primary contact",
        "Sam Patel",
        "Priya Nair",
        req.decision_deadline.strftime("%d %b %Y, %H:%M").lstrip("0"),
        "left",
        # internal side: decided, by whom, why
        "Assyst security officer",
        "Sofia Marsh",
        "Ticket checked with the account lead.",
        # customer side: still pending, with the forms
        "Your organisation",
        "Waiting for one of your admins.",
        "Approve access",
        "Deny access",
    ]:
        assert text in body, text
    assert body.count('class="badge badge-approved"') == 1
    assert body.count('class="badge badge-pending"') >= 1


@pytest.mark.commitment("C03")
def test_decision_after_the_deadline_is_a_form_error(org_a, customer_a, engineer):
    req = support_request(org_a, requester=engineer)
    with time_machine.travel(req.decision_deadline + timedelta(minutes=1), tick=False):
        response = _as(customer_a).post(_request_url(req), {"decision": "approve"})
    assert response.status_code == 400
    assert "Choose Approve or Deny" not in response.content.decode()
    req.refresh_from_db()
    assert req.customer_decision == Decision.PENDING


@pytest.mark.commitment("C03")
def test_second_decision_and_garbage_input_are_4xx(org_a, customer_a, engineer):
    req = support_request(org_a, requester=engineer)
    client = _as(customer_a)
    assert client.post(_request_url(req), {"decision": "maybe"}).status_code == 400
    assert client.post(_request_url(req), {"decision": "approve"}).status_code == 302
    again = client.post(_request_url(req), {"decision": "deny", "reason": "changed my mind"})
    assert again.status_code == 400
    req.refresh_from_db()
    assert req.customer_decision == Decision.APPROVED


@pytest.mark.commitment("C03")
def test_every_post_needs_the_csrf_token(org_a, customer_a, engineer):
    req = support_request(org_a, requester=engineer)
    grant = approved_grant(org_a)
    client = Client(enforce_csrf_checks=True)
    client.force_login(customer_a)
    assert client.post(_request_url(req), {"decision": "approve"}).status_code == 403
    assert client.post(_grant_url(grant), {"reason": "x"}).status_code == 403
    settings_url = reverse("portal:access_settings")
    assert client.post(settings_url, {"form": "contact", "name": "X", "email": "x@example.com"}).status_code == 403
    for url in (_request_url(req), _grant_url(grant), reverse("portal:access_overview"), settings_url):
        assert 'name="csrfmiddlewaretoken"' in client.get(url).content.decode(), url


# --- overview: roster, named staff, limits (C04) --------------------------------------------------


@pytest.mark.commitment("C04")
def test_overview_lists_pending_first_then_grants_past_roster_and_limits(org_a, customer_a, engineer):
    other = StaffFactory(role=SUPPORT_ENGINEER, first_name="Priya", last_name="Nair")
    StaffFactory(role=SUPPORT_ENGINEER, first_name="Ex", last_name="Employee", is_active=False)
    pending = support_request(org_a, requester=engineer, ticket_reference="SUP-PENDING")
    grant = approved_grant(org_a, requester=other, ticket_reference="SUP-GRANTED")
    denied = support_request(org_a, requester=engineer, ticket_reference="SUP-DENIED")
    services.support_request_decide_customer(request=denied, acting_user=customer_a, approve=False, reason="No.")

    response = _as(customer_a).get(reverse("portal:access_overview"))

    assert response.status_code == 200
    body = response.content.decode()
    awaiting, grants, past, roster = (
        body.index("Awaiting your decision"),
        body.index("Active and scheduled grants"),
        body.index("Past requests"),
        body.index("Staff who can be named"),
    )
    assert awaiting < body.index("SUP-PENDING") < grants < body.index("SUP-GRANTED") < past
    assert past < body.index("SUP-DENIED") < roster
    assert _request_url(pending) in body and _grant_url(grant) in body
    assert "left" in body and "Denied" in body
    # named staff on the grant, a revoke form for the admin
    assert "Priya Nair" in body[grants:past]
    assert f"Revoke #{grant.pk}" in body
    # roster: active support engineers only
    roster_html = body[roster:]
    assert "Sam Patel" in roster_html and "Priya Nair" in roster_html and "Ex Employee" not in roster_html
    # limits
    assert "8 hours" in roster_html and "12 hours" in roster_html


@pytest.mark.commitment("C04")
def test_viewer_overview_has_no_revoke_buttons(org_a, viewer_a):
    grant = approved_grant(org_a)
    body = _as(viewer_a).get(reverse("portal:access_overview")).content.decode()
    assert _grant_url(grant) in body and f"Revoke #{grant.pk}" not in body


@pytest.mark.commitment("C04")
def test_revoke_from_the_portal_ends_the_grant(org_a, customer_a):
    grant = approved_grant(org_a)
    (staff,) = grant.staff.all()
    assert org_a in organisations_with_customer_data(staff)

    response = _as(customer_a).post(_grant_url(grant), {"reason": "Issue resolved."})

    assert response.status_code == 302
    grant.refresh_from_db()
    assert grant.revoked_at is not None and grant.revoked_by == customer_a and grant.revoke_reason == "Issue resolved."
    assert org_a not in organisations_with_customer_data(staff)
    assert not staff.has_perm(services.GRANT_PERMISSION, org_a)


@pytest.mark.commitment("C04")
def test_revoke_needs_a_reason_and_an_admin(org_a, customer_a, viewer_a):
    grant = approved_grant(org_a)
    response = _as(customer_a).post(_grant_url(grant), {"reason": ""})
    assert response.status_code == 400
    assert "Say why you revoke this grant." in response.content.decode()

    assert _as(viewer_a).post(_grant_url(grant), {"reason": "I am only a viewer"}).status_code == 403
    viewer_page = _as(viewer_a).get(_grant_url(grant)).content.decode()
    assert "Revoke grant" not in viewer_page

    grant.refresh_from_db()
    assert grant.revoked_at is None


@pytest.mark.commitment("C04")
def test_revoking_an_ended_grant_is_a_form_error(org_a, customer_a):
    grant = approved_grant(org_a)
    services.grant_revoke(grant=grant, acting_user=customer_a, reason="first")
    response = _as(customer_a).post(_grant_url(grant), {"reason": "second"})
    assert response.status_code == 400


@pytest.mark.commitment("C04")
def test_grant_page_summarises_what_was_touched(org_a, customer_a):
    grant = approved_grant(org_a)
    member = Membership.objects.filter(organisation=org_a).first()
    services.access_log_record(user=grant.staff.get(), organisation=org_a, scope="people", objects=[member])
    services.access_log_record(user=grant.staff.get(), organisation=org_a, scope="people", objects=[member])
    services.access_log_record(user=grant.staff.get(), organisation=org_a, scope="profile", objects=[org_a])
    other_grant = approved_grant(org_a)
    _log(other_grant, object_repr="touched under another grant")

    body = _as(customer_a).get(_grant_url(grant)).content.decode()

    assert "What was touched" in body
    people = body.index("People: customer users")
    profile = body.index("Organisation profile and primary contact</h3>")
    row = body[people:]
    assert f"membership #{member.pk}" in row
    assert f'>membership #{member.pk} ({member.user.username})</td><td data-label="Times">2</td>' in body
    assert f'>organisation #{org_a.pk}</td><td data-label="Times">1</td>' in body[profile:]
    assert "touched under another grant" not in body


# --- limits and contact (C04) -------------------------------------------------------------------


@pytest.mark.commitment("C04")
def test_limits_form_enforces_bounds_with_a_clear_error(org_a, customer_a):
    url = reverse("portal:access_settings")
    client = _as(customer_a)
    response = client.post(
        url,
        {
            "form": "limits",
            "max_grant_hours": "500",
            "decision_timeout_hours": "0",
            "accepted_reason_types": ["customer_support"],
        },
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "less than or equal to 72" in body and "greater than or equal to 1" in body
    response = client.post(url, {"form": "limits", "max_grant_hours": "abc", "decision_timeout_hours": "12"})
    assert response.status_code == 400
    assert "Accept at least one reason type" in response.content.decode()
    policy = services.support_policy_for(org_a)
    assert (policy.max_grant_hours, policy.decision_timeout_hours, policy.accepted_reason_types) == (8, 12, [])


@pytest.mark.commitment("C04")
def test_refused_reason_types_are_then_refused_for_requests(org_a, customer_a, engineer):
    response = _as(customer_a).post(
        reverse("portal:access_settings"),
        {
            "form": "limits",
            "max_grant_hours": "2",
            "decision_timeout_hours": "4",
            "accepted_reason_types": ["incident_response", "legal"],
        },
    )
    assert response.status_code == 302
    policy = services.support_policy_for(org_a)
    assert policy.max_grant_hours == 2 and policy.accepted_reason_types == ["incident_response", "legal"]

    with pytest.raises(ValidationError) as refused:
        support_request(org_a, requester=engineer, reason_type="customer_support", hours=1)
    assert "reason_type" in refused.value.message_dict
    with pytest.raises(ValidationError) as too_long:
        support_request(org_a, requester=engineer, reason_type="incident_response", hours=3)
    assert "requested_duration" in too_long.value.message_dict
    req = support_request(org_a, requester=engineer, reason_type="incident_response", hours=2)
    assert req.decision_deadline <= timezone.now() + timedelta(hours=4)


@pytest.mark.commitment("C04")
def test_settings_are_for_admins_only(org_a, viewer_a):
    client = _as(viewer_a)
    url = reverse("portal:access_settings")
    assert client.get(url).status_code == 403
    data = {"form": "limits", "max_grant_hours": "1", "decision_timeout_hours": "1", "accepted_reason_types": ["legal"]}
    assert client.post(url, data).status_code == 403
    assert services.support_policy_for(org_a).accepted_reason_types == []
    assert "Limits and contact" not in client.get(reverse("portal:access_overview")).content.decode()


@pytest.mark.commitment("C04")
def test_contact_update_is_audited_without_personal_data(org_a, customer_a):
    old_email = org_a.primary_contact_email
    response = _as(customer_a).post(
        reverse("portal:access_settings"),
        {"form": "contact", "name": org_a.primary_contact_name, "email": "new.contact@customer.example"},
    )
    assert response.status_code == 302
    org_a.refresh_from_db()
    assert org_a.primary_contact_email == "new.contact@customer.example"
    event = AuditEvent.objects.get(action="organisation.contact_changed")
    assert event.actor == customer_a and event.organisation_id == org_a.pk
    assert event.data == {"changed": ["primary_contact_email"]}
    stored = str(event.data) + event.object_repr
    assert "new.contact" not in stored and old_email not in stored and org_a.primary_contact_name not in stored


@pytest.mark.commitment("C04")
def test_contact_update_is_refused_for_viewers_and_bad_input(org_a, customer_a, viewer_a):
    url = reverse("portal:access_settings")
    before = (org_a.primary_contact_name, org_a.primary_contact_email)
    assert _as(viewer_a).post(url, {"form": "contact", "name": "Eve", "email": "eve@evil.example"}).status_code == 403
    with pytest.raises(PermissionDenied):
        organisation_contact_update(organisation=org_a, acting_user=viewer_a, name="Eve", email="eve@evil.example")
    response = _as(customer_a).post(url, {"form": "contact", "name": "", "email": "not-an-email"})
    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()
    assert _as(customer_a).post(url, {"form": "nonsense"}).status_code == 400
    org_a.refresh_from_db()
    assert (org_a.primary_contact_name, org_a.primary_contact_email) == before
    assert not AuditEvent.objects.filter(action="organisation.contact_changed").exists()


@pytest.mark.commitment("C04")
def test_contact_service_checks_the_organisation_and_skips_no_op(org_a, org_b, customer_a):
    with pytest.raises(PermissionDenied):
        organisation_contact_update(organisation=org_b, acting_user=customer_a, name="X", email="x@example.com")
    organisation_contact_update(
        organisation=org_a,
        acting_user=customer_a,
        name=org_a.primary_contact_name,
        email=org_a.primary_contact_email,
    )
    assert not AuditEvent.objects.filter(action="organisation.contact_changed").exists()


# --- the access log and its CSV (C04, C09) ----------------------------------------------------------


def _csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


@pytest.mark.commitment("C04")
def test_csv_export_has_the_columns_and_neutralises_formulas(org_a, customer_a):
    grant = approved_grant(org_a, ticket_reference='=HYPERLINK("http://evil")')
    (entry,) = _log(grant, object_repr="@SUM(A1)")
    _log(grant, object_repr="+1+1", at=entry.at - timedelta(minutes=1))
    _log(grant, object_repr="-2", at=entry.at - timedelta(minutes=2))

    rows = _csv_rows(_as(customer_a).get(reverse("portal:access_log_csv")))

    assert rows[0] == ["time_utc", "staff", "action", "scope", "object", "reason_type", "ticket", "grant_id"]
    staff = grant.staff.get()
    assert rows[1] == [
        entry.at.isoformat(),
        f"{staff.get_full_name()} ({staff.username})",
        "view",
        "people",
        "'@SUM(A1)",
        "customer_support",
        '\'=HYPERLINK("http://evil")',
        str(grant.pk),
    ]
    assert rows[1][0].endswith("+00:00")
    assert [r[4] for r in rows[1:]] == ["'@SUM(A1)", "'+1+1", "'-2"]
    for row in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row)


@pytest.mark.commitment("C04")
def test_log_filters_and_the_csv_exports_the_same_rows(org_a, customer_a):
    first = approved_grant(org_a)
    second = approved_grant(org_a)
    now = timezone.now()
    _log(first, n=2, scope="people", object_repr="people-of-first", at=now - timedelta(days=3))
    _log(first, n=1, scope="profile", object_repr="profile-of-first", at=now)
    _log(second, n=3, scope="people", object_repr="people-of-second", at=now)
    client = _as(customer_a)
    url, csv_url = reverse("portal:access_log"), reverse("portal:access_log_csv")

    assert client.get(url).content.decode().count("people-of-first") == 2
    cases = [
        ({"grant": first.pk}, {"people-of-first": 2, "profile-of-first": 1}),
        ({"staff": second.staff.get().pk}, {"people-of-second": 3}),
        ({"scope": "profile"}, {"profile-of-first": 1}),
        ({"date_to": (now - timedelta(days=2)).date().isoformat()}, {"people-of-first": 2}),
        ({"date_from": now.date().isoformat(), "scope": "people"}, {"people-of-second": 3}),
    ]
    for params, expected in cases:
        page = client.get(url, params)
        assert page.status_code == 200, params
        body = page.content.decode()
        for text in ("people-of-first", "profile-of-first", "people-of-second"):
            assert body.count(text) == expected.get(text, 0), (params, text)
        rows = _csv_rows(client.get(csv_url, params))[1:]
        assert sorted(r[4] for r in rows) == sorted(k for k, v in expected.items() for _ in range(v)), params


@pytest.mark.commitment("C04")
@pytest.mark.parametrize(
    "params",
    [
        {"date_from": "not-a-date"},
        {"date_to": "2024-02-30"},
        {"date_from": "2025-05-02", "date_to": "2025-05-01"},
        {"staff": "abc"},
        {"grant": "999999"},
        {"grant": "1 OR 1=1"},
        {"scope": "everything"},
    ],
)
def test_invalid_log_filters_are_4xx_not_500(org_a, customer_a, params):
    grant = approved_grant(org_a)
    _log(grant)
    client = _as(customer_a)
    page = client.get(reverse("portal:access_log"), params)
    assert page.status_code == 400
    assert 'class="errorlist' in page.content.decode()
    assert client.get(reverse("portal:access_log_csv"), params).status_code == 400


@pytest.mark.commitment("C04")
def test_log_page_number_garbage_is_harmless(org_a, customer_a):
    _log(approved_grant(org_a), n=60)
    client = _as(customer_a)
    for page in ("abc", "-1", "999", "2"):
        assert client.get(reverse("portal:access_log"), {"page": page}).status_code == 200
    assert client.get(reverse("portal:access_log")).content.decode().count("<tr>") == 1 + 50


# --- isolation (C09) --------------------------------------------------------------------------------


@pytest.mark.commitment("C09")
def test_other_organisations_requests_and_grants_are_404(org_a, customer_b, engineer):
    req = support_request(org_a, requester=engineer)
    grant = approved_grant(org_a)
    client = _as(customer_b)

    assert client.get(_request_url(req)).status_code == 404
    assert client.get(_grant_url(grant)).status_code == 404
    assert client.post(_request_url(req), {"decision": "approve"}).status_code == 404
    assert client.post(_grant_url(grant), {"reason": "not yours"}).status_code == 404
    req.refresh_from_db()
    grant.refresh_from_db()
    assert req.customer_decision == Decision.PENDING and grant.revoked_at is None


@pytest.mark.commitment("C09")
def test_other_organisations_log_and_csv_rows_never_show(org_a, org_b, customer_b):
    grant_a = approved_grant(org_a, ticket_reference="A-SECRET-TICKET")
    _log(grant_a, n=3, object_repr="a-only-object")
    grant_b = approved_grant(org_b, ticket_reference="B-TICKET")
    _log(grant_b, n=1, object_repr="b-object")
    client = _as(customer_b)

    body = client.get(reverse("portal:access_log")).content.decode()
    assert "b-object" in body and "a-only-object" not in body and "A-SECRET-TICKET" not in body
    rows = _csv_rows(client.get(reverse("portal:access_log_csv")))
    assert [r[4] for r in rows[1:]] == ["b-object"]
    # Pointing a filter at A's grant or staff is an invalid choice, not a peek.
    assert client.get(reverse("portal:access_log"), {"grant": grant_a.pk}).status_code == 400
    assert client.get(reverse("portal:access_log_csv"), {"staff": grant_a.staff.get().pk}).status_code == 400
    overview = client.get(reverse("portal:access_overview")).content.decode()
    assert "A-SECRET-TICKET" not in overview and "B-TICKET" in overview


# --- queries do not grow with rows --------------------------------------------------------------------


def _count(client, url) -> int:
    client.get(url)  # warm up: the first request of a session does one-off work
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _grow_requests(org, n: int, engineers, customer_admin) -> None:
    for i in range(n):
        named = [engineers[i % len(engineers)], engineers[(i + 1) % len(engineers)]]
        support_request(org, requester=engineers[0], named=named)
        denied = support_request(org, requester=engineers[1], named=named[:1])
        services.support_request_decide_customer(request=denied, acting_user=customer_admin, approve=False, reason="no")
        approved_grant(org, requester=engineers[i % len(engineers)], named=named)


@pytest.mark.commitment("C09")
def test_overview_query_count_does_not_grow_with_rows(org_a, customer_a):
    engineers = [StaffFactory(role=SUPPORT_ENGINEER) for _ in range(3)]
    client = _as(customer_a)
    url = reverse("portal:access_overview")
    _grow_requests(org_a, 5, engineers, customer_a)
    small = _count(client, url)
    _grow_requests(org_a, 45, engineers, customer_a)
    assert SupportAccessRequest.objects.filter(organisation=org_a).count() == 150
    assert _count(client, url) == small


@pytest.mark.commitment("C09")
def test_access_log_query_count_does_not_grow_with_rows(org_a, customer_a):
    grants = [approved_grant(org_a) for _ in range(3)]
    client = _as(customer_a)
    url = reverse("portal:access_log")
    for i in range(5):
        _log(grants[i % 3], object_repr=f"obj {i}")
    small = _count(client, url)
    for i in range(45):
        _log(grants[i % 3], object_repr=f"obj {i}")
    assert AccessLogEntry.objects.filter(organisation=org_a).count() == 50
    assert _count(client, url) == small
