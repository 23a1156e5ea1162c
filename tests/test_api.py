"""Integration API (/api/v1/): tokens, scopes, tenant separation, idempotency, errors,
rate limits, per-call audit, cursor pages and query counts."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from governance.access.models import AccessLogEntry, SupportAccessRequest
from governance.access.services import access_log_record
from governance.api import services
from governance.api.demo import service_account, token_for
from governance.api.models import ApiToken
from governance.audit.models import AuditEvent
from governance.orgsecurity.models import OrganisationSecurityPolicy
from governance.retention.models import BackupRecord
from governance.tenancy.models import Membership
from incidents.models import AffectedOrganisation, Incident
from incidents.services import incident_create
from tests.factories import MembershipFactory, OrganisationFactory, StaffFactory, approved_grant
from tests.helpers import otp_client

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def _private_cache(settings):
    """Rate counters in a cache of this test's own: Redis under a fresh key prefix when it is
    configured (CI: the shared cache web nodes count in), else local memory (the file cache
    is shared by every run on the machine). Never cleared: clearing Redis flushes its database."""
    if settings.REDIS_URL:
        backend = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": settings.REDIS_URL}
        settings.CACHES = {"default": {**backend, "KEY_PREFIX": f"test-api-{uuid.uuid4().hex}"}}
    else:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "api"}}
        cache.clear()


def call(client, method, path, secret=None, data=None, **headers):
    if secret:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    if data is not None:
        return getattr(client, method)(path, data=json.dumps(data), content_type="application/json", **headers)
    return getattr(client, method)(path, **headers)


def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"] and "detail" in body
    if code:
        assert body["code"] == code, body
    return body


@pytest.fixture
def monitor():
    account = service_account("svc-monitor", "Incident manager")
    return token_for(account.user, ["incidents:read", "incidents:write"])


def incident_body(**over):
    now = timezone.now()
    body = {
        "title": "Database failover",
        "description": "Primary lost; failover in progress.",
        "kind": "general",
        "detected_at": (now - timedelta(minutes=10)).isoformat(),
        "aware_at": (now - timedelta(minutes=5)).isoformat(),
    }
    body.update(over)
    return body


def make_incident(title="Outage", kind="general", organisations=()):
    manager = StaffFactory(role="Incident manager")
    now = timezone.now()
    return incident_create(
        acting_user=manager,
        title=title,
        description="Something broke.",
        kind=kind,
        detected_at=now - timedelta(hours=2),
        aware_at=now - timedelta(hours=1),
        organisations=list(organisations),
    )


# --- incidents through the same services as the admin -------------------------------------------


@pytest.mark.commitment("C25")
def test_create_read_update_and_list_affected_organisations(client, monitor):
    token, secret = monitor
    org = OrganisationFactory(slug="acme", data_protection_role="controller")
    body = incident_body(
        kind="specific", organisations=["acme"], personal_data_breach=True, data_categories=["contact details"]
    )
    r = call(client, "post", "/api/v1/incidents/", secret, body)
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    assert r["Location"] == f"/api/v1/incidents/{pk}/"
    incident = Incident.objects.get(pk=pk)
    assert incident.created_by == token.user and incident.kind == "specific"

    r = call(client, "get", f"/api/v1/incidents/{pk}/organisations/", secret)
    assert r.status_code == 200
    [row] = r.json()["results"]
    assert row["organisation"] == "acme" and row["role"] == "controller"
    assert row["deadline_at"] is not None  # aware + 72 h (C12)

    r = call(
        client,
        "post",
        f"/api/v1/incidents/{pk}/updates/",
        secret,
        {"visibility": "internal", "status": "identified", "message": "Root cause found."},
    )
    assert r.status_code == 201, r.content
    r = call(client, "get", f"/api/v1/incidents/{pk}/", secret)
    assert r.json()["status"] == "identified"
    assert [u["message"] for u in r.json()["updates"]] == ["Root cause found."]

    other = OrganisationFactory(slug="globex")
    r = call(client, "post", f"/api/v1/incidents/{pk}/organisations/", secret, {"organisation": "globex"})
    assert r.status_code == 201, r.content
    assert AffectedOrganisation.objects.filter(incident=incident, organisation=other).exists()
    assert org.pk  # used


@pytest.mark.commitment("C17")
def test_service_rules_come_back_as_validation_problems(client, monitor):
    _, secret = monitor
    pk = make_incident().pk
    r = call(
        client,
        "post",
        f"/api/v1/incidents/{pk}/updates/",
        secret,
        {"visibility": "public", "status": "identified", "message": "We know."},
    )
    body = assert_problem(r, 400, "invalid")
    assert "actions_for_customers" in body["errors"]
    r = call(client, "post", "/api/v1/incidents/", secret, incident_body(kind="specific"))
    assert "organisations" in assert_problem(r, 400, "invalid")["errors"]
    r = call(client, "post", "/api/v1/incidents/", secret, incident_body(organisations=["no-such-org"]))
    assert "organisations" in assert_problem(r, 400)["errors"]


# --- scopes and permissions (C25) -----------------------------------------------------------------


@pytest.mark.commitment("C25")
def test_a_token_cannot_act_outside_its_scopes(client):
    account = service_account("svc-ro", "Incident manager")
    _, secret = token_for(account.user, ["incidents:read"])
    r = call(client, "post", "/api/v1/incidents/", secret, incident_body())
    assert_problem(r, 403, "scope_missing")
    assert not Incident.objects.exists()
    for path in ("/api/v1/audit-events/", "/api/v1/backups/", "/api/v1/access-requests/", "/api/v1/access-log/"):
        assert_problem(call(client, "get", path, secret), 403, "scope_missing")
    assert call(client, "get", "/api/v1/incidents/", secret).status_code == 200
    assert call(client, "head", "/api/v1/audit-events/", secret).status_code == 403


@pytest.mark.commitment("C25")
def test_a_token_never_exceeds_its_account_role(client):
    account = service_account("svc-monitor", "Incident manager")
    _, secret = token_for(account.user, ["incidents:read", "incidents:write"])
    # The security officer takes the role away: the token stops working for it at once.
    account.user.groups.clear()
    assert_problem(call(client, "post", "/api/v1/incidents/", secret, incident_body()), 403, "scope_missing")
    assert_problem(call(client, "get", "/api/v1/incidents/", secret), 403, "scope_missing")


@pytest.mark.commitment("C25")
def test_issue_checks_scopes_against_the_account_and_keeps_only_a_hash():
    officer = StaffFactory(role="Security officer")
    account = service_account("svc-backup", "Backup reporter")
    expires = timezone.now() + timedelta(days=30)
    with pytest.raises(ValidationError) as e:
        services.token_issue(
            service_account=account, name="x", scopes=["audit:read"], expires_at=expires, acting_user=officer
        )
    assert "scopes" in e.value.message_dict
    with pytest.raises(ValidationError):
        services.token_issue(
            service_account=account, name="x", scopes=["access-log:read"], expires_at=expires, acting_user=officer
        )
    token, secret = services.token_issue(
        service_account=account, name="pgBackRest", scopes=["backups:write"], expires_at=expires, acting_user=officer
    )
    assert secret.startswith(token.prefix + "_")
    stored = ApiToken.objects.get(pk=token.pk)
    assert secret not in json.dumps([stored.secret_hash, stored.prefix, stored.name])
    assert stored.secret_hash == services.hash_secret(secret)
    event = AuditEvent.objects.get(action="api.token_issued")
    assert event.actor == officer and secret not in json.dumps(event.data)
    with pytest.raises(PermissionDenied):
        services.token_issue(
            service_account=account,
            name="x",
            scopes=["backups:write"],
            expires_at=expires,
            acting_user=StaffFactory(role="Incident manager"),
        )


@pytest.mark.commitment("C25")
def test_a_service_account_cannot_be_a_security_officer_or_sign_in(client):
    officer = StaffFactory(role="Security officer")
    with pytest.raises(ValidationError):
        services.service_account_create(username="svc-x", description="x", role="Security officer", acting_user=officer)
    account = services.service_account_create(
        username="svc-siem", description="Splunk", role="Auditor", acting_user=officer
    )
    assert account.user.is_staff and not account.user.has_usable_password()
    assert not account.user.check_password("") and not account.user.totpdevice_set.exists()


# --- authentication: expired, revoked, invalid ---------------------------------------------------


@pytest.mark.commitment("C25")
def test_expired_and_revoked_tokens_are_refused(client, monitor):
    token, secret = monitor
    assert call(client, "get", "/api/v1/incidents/", secret).status_code == 200
    with time_machine.travel(token.expires_at + timedelta(seconds=1)):
        body = assert_problem(call(client, "get", "/api/v1/incidents/", secret), 401)
        assert "expired" in body["detail"]
    officer = StaffFactory(role="Security officer")
    services.token_revoke(token=token, acting_user=officer, reason="Rotated")
    r = call(client, "get", "/api/v1/incidents/", secret)
    assert "revoked" in assert_problem(r, 401)["detail"]
    assert r["WWW-Authenticate"].startswith("Bearer")
    event = AuditEvent.objects.get(action="api.token_revoked")
    assert event.actor == officer and event.data["token"] == token.pk and event.data["reason"] == "Rotated"
    with pytest.raises(ValidationError):
        services.token_revoke(token=token, acting_user=officer, reason="again")


@pytest.mark.commitment("C25")
@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer asy_abcdefgh_" + "x" * 43, "Bearer not-a-token", "Token abc"],
)
def test_missing_or_wrong_credentials_get_401(client, monitor, header):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    r = client.get("/api/v1/incidents/", **headers)
    assert_problem(r, 401)
    assert r["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.commitment("C25")
def test_a_tampered_secret_with_a_real_prefix_is_refused(client, monitor):
    token, secret = monitor
    assert_problem(call(client, "get", "/api/v1/incidents/", secret[:-4] + "AAAA"), 401)


# --- organisation tokens: tenant separation (C09) --------------------------------------------------


@pytest.fixture
def two_orgs():
    org_a = OrganisationFactory(slug="org-a", name="Org A")
    org_b = OrganisationFactory(slug="org-b", name="Org B")
    admin_a = MembershipFactory(organisation=org_a, role=Membership.Role.ADMIN).user
    admin_b = MembershipFactory(organisation=org_b, role=Membership.Role.ADMIN).user
    return org_a, org_b, admin_a, admin_b


def customer_token(org, admin, scopes=("incidents:read", "access-log:read")):
    return services.customer_token_issue(
        organisation=org,
        name="SIEM",
        scopes=list(scopes),
        expires_at=timezone.now() + timedelta(days=30),
        acting_user=admin,
    )


@pytest.mark.commitment("C09")
def test_organisation_token_sees_only_its_organisation(client, two_orgs):
    org_a, org_b, admin_a, admin_b = two_orgs
    general = make_incident("General outage")
    mine = make_incident("Ours", kind="specific", organisations=[org_a, org_b])
    theirs = make_incident("Theirs", kind="specific", organisations=[org_b])
    _, secret = customer_token(org_a, admin_a)

    r = call(client, "get", "/api/v1/incidents/", secret)
    assert {i["id"] for i in r.json()["results"]} == {general.pk, mine.pk}
    assert call(client, "get", f"/api/v1/incidents/{mine.pk}/", secret).status_code == 200
    # Another organisation's incident: 404, exactly like one that does not exist.
    missing = assert_problem(call(client, "get", f"/api/v1/incidents/{theirs.pk}/", secret), 404)
    assert missing == assert_problem(call(client, "get", "/api/v1/incidents/999999/", secret), 404)
    assert_problem(call(client, "get", f"/api/v1/incidents/{theirs.pk}/organisations/", secret), 404)
    # Affected organisations of a shared incident: only its own row.
    r = call(client, "get", f"/api/v1/incidents/{mine.pk}/organisations/", secret)
    assert [row["organisation"] for row in r.json()["results"]] == ["org-a"]


@pytest.mark.commitment("C09")
def test_organisation_token_reads_only_public_updates(client, two_orgs):
    org_a, _, admin_a, _ = two_orgs
    incident = make_incident()
    from incidents.services import incident_update_post

    manager = StaffFactory(role="Incident manager")
    incident_update_post(
        incident=incident,
        acting_user=manager,
        visibility="internal",
        status="identified",
        message="Internal: the vendor's fault.",
    )
    _, secret = customer_token(org_a, admin_a)
    body = call(client, "get", f"/api/v1/incidents/{incident.pk}/", secret).json()
    assert body["updates"] == [] and body["status"] == "investigating"
    assert call(client, "get", "/api/v1/incidents/?status=identified", secret).json()["results"] == []


@pytest.mark.commitment("C09")
def test_organisation_access_log_is_its_own(client, two_orgs):
    org_a, org_b, admin_a, _ = two_orgs
    for org in (org_a, org_b):
        grant = approved_grant(org)
        access_log_record(
            user=grant.staff.first() if hasattr(grant, "staff") else grant.request.named_staff.first(),
            organisation=org,
            scope="people",
            objects=[org],
        )
    _, secret = customer_token(org_a, admin_a)
    r = call(client, "get", "/api/v1/access-log/", secret)
    assert r.status_code == 200, r.content
    ids = [row["id"] for row in r.json()["results"]]
    assert ids and set(ids) == set(AccessLogEntry.objects.filter(organisation=org_a).values_list("id", flat=True))


@pytest.mark.commitment("C09")
def test_organisation_tokens_are_read_only_and_stop_with_their_admin(client, two_orgs):
    org_a, _, admin_a, _ = two_orgs
    viewer = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    expires = timezone.now() + timedelta(days=30)
    with pytest.raises(PermissionDenied):
        services.customer_token_issue(
            organisation=org_a, name="x", scopes=["incidents:read"], expires_at=expires, acting_user=viewer
        )
    with pytest.raises(ValidationError):
        customer_token(org_a, admin_a, scopes=["incidents:write"])
    token, secret = customer_token(org_a, admin_a)
    assert_problem(call(client, "post", "/api/v1/incidents/", secret, incident_body()), 403)
    # Even a row edited to carry a staff scope cannot use it.
    ApiToken.objects.filter(pk=token.pk).update(scopes=["incidents:read", "incidents:write", "audit:read"])
    assert_problem(call(client, "get", "/api/v1/audit-events/", secret), 403, "scope_missing")
    assert_problem(call(client, "post", "/api/v1/incidents/", secret, incident_body()), 403, "scope_missing")
    assert not Incident.objects.exists()
    # The admin is demoted: the token dies with the role.
    Membership.objects.filter(user=admin_a).update(role=Membership.Role.VIEWER)
    assert_problem(call(client, "get", "/api/v1/incidents/", secret), 401)


@pytest.mark.commitment("C28")
def test_organisation_token_obeys_the_ip_allowlist(client, two_orgs):
    org_a, _, admin_a, _ = two_orgs
    OrganisationSecurityPolicy.objects.update_or_create(
        organisation=org_a, defaults={"ip_allowlist": ["203.0.113.0/24"]}
    )
    _, secret = customer_token(org_a, admin_a)
    for _ in range(3):  # a script replaying the token: every call refused, audited once a minute
        r = call(client, "get", "/api/v1/incidents/", secret, REMOTE_ADDR="198.51.100.7")
        assert_problem(r, 403, "ip_not_allowed")
    assert AuditEvent.objects.filter(action="orgsecurity.ip_refused", organisation_id=org_a.pk).count() == 1
    assert call(client, "get", "/api/v1/incidents/", secret, REMOTE_ADDR="203.0.113.9").status_code == 200
    # Staff tokens are not bound by a customer's network rule.
    account = service_account("svc-monitor", "Incident manager")
    _, staff_secret = token_for(account.user, ["incidents:read"])
    assert call(client, "get", "/api/v1/incidents/", staff_secret, REMOTE_ADDR="198.51.100.7").status_code == 200


# --- idempotency ----------------------------------------------------------------------------------


@pytest.mark.commitment("C12")
def test_retried_post_with_the_same_key_returns_the_first_result(client, monitor):
    _, secret = monitor
    body = incident_body()
    first = call(client, "post", "/api/v1/incidents/", secret, body, HTTP_IDEMPOTENCY_KEY="alert-4711")
    again = call(client, "post", "/api/v1/incidents/", secret, body, HTTP_IDEMPOTENCY_KEY="alert-4711")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert Incident.objects.count() == 1
    # Same key, different body: refused, nothing opened.
    changed = call(
        client, "post", "/api/v1/incidents/", secret, incident_body(title="Other"), HTTP_IDEMPOTENCY_KEY="alert-4711"
    )
    assert_problem(changed, 422, "idempotency_key_reused")
    assert Incident.objects.count() == 1
    # Another key is another incident.
    assert (
        call(client, "post", "/api/v1/incidents/", secret, body, HTTP_IDEMPOTENCY_KEY="alert-4712").status_code == 201
    )
    assert Incident.objects.count() == 2


@pytest.mark.commitment("C12")
def test_a_failed_post_does_not_use_up_its_key(client, monitor):
    _, secret = monitor
    bad = call(client, "post", "/api/v1/incidents/", secret, incident_body(title=" "), HTTP_IDEMPOTENCY_KEY="k1")
    assert_problem(bad, 400)
    good = call(client, "post", "/api/v1/incidents/", secret, incident_body(), HTTP_IDEMPOTENCY_KEY="k1")
    assert good.status_code == 201


@pytest.mark.commitment("C12")
def test_idempotency_keys_are_per_token_and_expire(client, monitor):
    _, secret = monitor
    other_account = service_account("svc-other", "Incident manager")
    _, other = token_for(other_account.user, ["incidents:write"])
    body = incident_body()
    assert call(client, "post", "/api/v1/incidents/", secret, body, HTTP_IDEMPOTENCY_KEY="same").status_code == 201
    assert call(client, "post", "/api/v1/incidents/", other, body, HTTP_IDEMPOTENCY_KEY="same").status_code == 201
    assert Incident.objects.count() == 2
    assert_problem(call(client, "post", "/api/v1/incidents/", secret, body, HTTP_IDEMPOTENCY_KEY="bad key"), 400)
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        r = call(client, "post", "/api/v1/incidents/", secret, incident_body(), HTTP_IDEMPOTENCY_KEY="same")
        assert r.status_code == 201 and "Idempotent-Replayed" not in r
    assert Incident.objects.count() == 3


@pytest.mark.commitment("C12")
def test_the_daily_task_forgets_keys_of_tokens_that_stopped_posting(client, monitor):
    from governance.api.models import IdempotencyRecord
    from governance.api.tasks import PURGE_TASK, purge_idempotency_records
    from governance.core.models import JobRun

    _, secret = monitor
    first = call(client, "post", "/api/v1/incidents/", secret, incident_body(), HTTP_IDEMPOTENCY_KEY="old")
    assert first.status_code == 201
    with time_machine.travel(timezone.now() + timedelta(hours=23)):
        call(client, "post", "/api/v1/incidents/", secret, incident_body(), HTTP_IDEMPOTENCY_KEY="new")
        purge_idempotency_records()  # nothing is past 24 h yet
        assert set(IdempotencyRecord.objects.values_list("key", flat=True)) == {"old", "new"}
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        purge_idempotency_records()
        assert set(IdempotencyRecord.objects.values_list("key", flat=True)) == {"new"}
    assert JobRun.objects.filter(task=PURGE_TASK).latest("started_at").counts == {"deleted": 1}


# --- errors are problem details -------------------------------------------------------------------


@pytest.mark.commitment("C25")
def test_errors_are_problem_details(client, monitor):
    _, secret = monitor
    assert_problem(call(client, "get", "/api/v1/nowhere/", secret), 404, "not_found")
    assert_problem(call(client, "post", "/api/v1/nowhere/", secret, {}), 404)
    assert_problem(call(client, "get", "/api/v1/incidents/99999999999999999999999/", secret), 404)
    assert_problem(call(client, "put", "/api/v1/incidents/", secret, {}), 405)
    r = client.post(
        "/api/v1/incidents/", data="{not json", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert_problem(r, 400)
    r = client.post(
        "/api/v1/incidents/",
        data="title=x",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert_problem(r, 415)
    assert_problem(call(client, "get", "/api/v1/incidents/?cursor=%%%", secret), 400)
    assert_problem(call(client, "get", "/api/v1/incidents/?limit=0", secret), 400)
    r = call(client, "post", "/api/v1/incidents/", secret, incident_body(aware_at="9999-12-31T23:59:59Z"))
    assert "aware_at" in assert_problem(r, 400)["errors"]
    r = call(client, "post", "/api/v1/incidents/", secret, incident_body(title="a\x00b"))
    assert "title" in assert_problem(r, 400)["errors"]


# --- rate limit, audit, last use --------------------------------------------------------------------


@pytest.mark.commitment("C10")
def test_rate_limit_per_token_in_the_shared_cache(client):
    account = service_account("svc-monitor", "Incident manager")
    token, secret = token_for(account.user, ["incidents:read"], rate_limit_per_minute=3)
    _, other = token_for(account.user, ["incidents:read"], rate_limit_per_minute=3)
    with time_machine.travel("2026-11-27 10:00:05Z", tick=False):
        for _ in range(3):
            assert call(client, "get", "/api/v1/incidents/", secret).status_code == 200
        for _ in range(3):
            r = call(client, "get", "/api/v1/incidents/", secret)
            assert_problem(r, 429, "rate_limited")
            assert int(r["Retry-After"]) == 55
        assert call(client, "get", "/api/v1/incidents/", other).status_code == 200  # its own budget
    with time_machine.travel("2026-11-27 10:01:00Z", tick=False):
        assert call(client, "get", "/api/v1/incidents/", secret).status_code == 200
    # Refused calls leave one event per window, not one each.
    assert AuditEvent.objects.filter(action="api.rate_limited", data__token=token.pk).count() == 1


@pytest.mark.commitment("C25")
def test_every_call_is_audited_with_its_token(client, monitor):
    token, secret = monitor
    with time_machine.travel("2026-11-27 10:00:00Z", tick=False):
        call(client, "get", "/api/v1/incidents/", secret)
        call(client, "get", "/api/v1/incidents/12345/", secret)
        call(client, "post", "/api/v1/incidents/", secret, incident_body())
        call(client, "get", "/api/v1/audit-events/", secret)  # refused: still recorded
    events = list(AuditEvent.objects.filter(action="api.call").order_by("id"))
    assert [(e.data["method"], e.data["status"]) for e in events] == [
        ("GET", 200),
        ("GET", 404),
        ("POST", 201),
        ("GET", 403),
    ]
    assert all(e.data["token"] == token.pk and e.actor == token.user and token.prefix in e.actor_repr for e in events)
    token.refresh_from_db()
    assert token.last_used_at.isoformat() == "2026-11-27T10:00:00+00:00"


@pytest.mark.commitment("C25")
def test_last_used_is_written_at_most_once_a_minute(client, monitor, django_assert_num_queries):
    token, secret = monitor
    with time_machine.travel("2026-11-27 10:00:00Z", tick=False):
        call(client, "get", "/api/v1/incidents/", secret)
    with time_machine.travel("2026-11-27 10:00:30Z", tick=False):
        call(client, "get", "/api/v1/incidents/", secret)
    token.refresh_from_db()
    assert token.last_used_at.isoformat() == "2026-11-27T10:00:00+00:00"
    with time_machine.travel("2026-11-27 10:01:01Z", tick=False):
        call(client, "get", "/api/v1/incidents/", secret)
    token.refresh_from_db()
    assert token.last_used_at.isoformat() == "2026-11-27T10:01:01+00:00"


# --- audit trail for a SIEM: cursor and time filter ------------------------------------------------


@pytest.mark.commitment("C25")
def test_siem_pulls_the_audit_trail_by_cursor(client):
    account = service_account("svc-siem", "Auditor")
    _, secret = token_for(account.user, ["audit:read"])
    AuditEvent.objects.all().count()
    r = call(client, "get", "/api/v1/audit-events/?limit=2", secret)
    page = r.json()
    assert r.status_code == 200 and len(page["results"]) == 2
    seen = [e["id"] for e in page["results"]]
    while page["has_more"]:
        page = call(client, "get", f"/api/v1/audit-events/?limit=50&cursor={page['next_cursor']}", secret).json()
        seen += [e["id"] for e in page["results"]]
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    # The last page still hands out a cursor: the next pull returns only what came since.
    cursor = page["next_cursor"]
    make_incident("New")
    later = call(client, "get", f"/api/v1/audit-events/?cursor={cursor}", secret).json()["results"]
    assert later and all(e["id"] > seen[-1] for e in later)
    assert "incident.created" in [e["action"] for e in later]
    # Time filter and action prefix.
    future = (timezone.now() + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert call(client, "get", f"/api/v1/audit-events/?since={future}", secret).json()["results"] == []
    only = call(client, "get", "/api/v1/audit-events/?action=incident.", secret).json()["results"]
    assert only and {e["action"].split(".")[0] for e in only} == {"incident"}


# --- backups and support access through their services --------------------------------------------


@pytest.mark.commitment("C24")
def test_backup_tool_registers_runs(client):
    account = service_account("svc-backup", "Backup reporter")
    token, secret = token_for(account.user, ["backups:read", "backups:write"])
    now = timezone.now()
    body = {
        "kind": "full",
        "source": "pgbackrest:main",
        "started_at": (now - timedelta(hours=1)).isoformat(),
        "finished_at": now.isoformat(),
        "size_bytes": 1024,
        "encrypted": True,
        "location": "uk-south",
        "artefact": "2026/full-1.tar",
    }
    r = call(client, "post", "/api/v1/backups/", secret, body, HTTP_IDEMPOTENCY_KEY="run-1")
    assert r.status_code == 201, r.content
    record = BackupRecord.objects.get()
    assert record.reported_by == f"api:{token.prefix}"
    assert record.expires_at == record.finished_at + timedelta(days=90)
    assert call(client, "post", "/api/v1/backups/", secret, body, HTTP_IDEMPOTENCY_KEY="run-1").status_code == 201
    assert BackupRecord.objects.count() == 1
    r = call(client, "post", "/api/v1/backups/", secret, {**body, "artefact": "../../etc/passwd"})
    assert "artefact" in assert_problem(r, 400)["errors"]
    assert [b["id"] for b in call(client, "get", "/api/v1/backups/?kind=full", secret).json()["results"]] == [record.pk]


@pytest.mark.commitment("C03")
def test_ticketing_system_opens_a_support_request_and_reads_its_status(client):
    org = OrganisationFactory(slug="acme")
    engineer = StaffFactory(username="sam", role="Support engineer")
    account = service_account("svc-tickets", "Support engineer")
    _, secret = token_for(account.user, ["access-requests:read", "access-requests:write"])
    body = {
        "organisation": "acme",
        "reason_type": "customer_support",
        "ticket_reference": "SUP-42",
        "justification": "Customer cannot export invoices; need to inspect their users.",
        "scope": ["people"],
        "requested_start": timezone.now().isoformat(),
        "requested_duration_hours": 4,
        "named_staff": ["sam"],
    }
    r = call(client, "post", "/api/v1/access-requests/", secret, body)
    assert r.status_code == 201, r.content
    created = SupportAccessRequest.objects.get()
    assert created.requester == account.user and list(created.named_staff.all()) == [engineer]
    r = call(client, "get", f"/api/v1/access-requests/{created.pk}/", secret)
    assert r.json()["status"] == "pending" and r.json()["named_staff"] == ["sam"]
    # A service account is never named to act on customer data.
    r = call(client, "post", "/api/v1/access-requests/", secret, {**body, "named_staff": ["svc-tickets"]})
    assert "named_staff" in assert_problem(r, 400)["errors"]
    assert org.pk


# --- schema and docs --------------------------------------------------------------------------------


@pytest.mark.commitment("C25")
def test_schema_needs_a_token_and_docs_need_staff(client, monitor):
    _, secret = monitor
    assert_problem(client.get("/api/v1/schema/"), 401)
    r = call(client, "get", "/api/v1/schema/?format=json", secret)
    assert r.status_code == 200
    schema = r.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/incidents/" in schema["paths"]
    assert not {"/api/v1/docs/", "/api/v1/schema/"} & set(schema["paths"])  # only the API itself
    post = schema["paths"]["/api/v1/incidents/"]["post"]
    assert "422" in post["responses"] and "429" in post["responses"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert client.get("/api/v1/docs/")["Location"].startswith("/admin/login/")
    staff = StaffFactory(role="Incident manager")
    client.force_login(staff)
    assert client.get("/api/v1/docs/").status_code == 403  # signed in but without the second factor
    staff_client = otp_client(staff)
    docs = staff_client.get("/api/v1/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    assert staff_client.get("/api/v1/schema/").status_code == 200
    # A customer signed in to the portal gets neither.
    customer = MembershipFactory().user
    client.force_login(customer)
    assert_problem(client.get("/api/v1/docs/"), 403)
    assert client.get("/api/v1/schema/").status_code == 403


# --- risks and changes (C26) -------------------------------------------------------------------------


@pytest.mark.commitment("C26")
def test_risks_and_changes_are_read_and_created_through_the_register(client):
    owner = StaffFactory(username="ravi", role="Risk owner")
    account = service_account("svc-grc", "Risk owner")
    _, secret = token_for(account.user, ["risks:read", "risks:write"])
    body = {
        "title": "Supplier outage",
        "category": "supplier",
        "owner": "ravi",
        "inherent_likelihood": 3,
        "inherent_impact": 4,
        "residual_likelihood": 2,
        "residual_impact": 3,
    }
    r = call(client, "post", "/api/v1/risks/", secret, body, HTTP_IDEMPOTENCY_KEY="risk-1")
    assert r.status_code == 201, r.content
    risk = r.json()
    assert risk["owner"] == "ravi" and risk["code"].startswith("RSK-") and risk["inherent_level"]
    assert call(client, "post", "/api/v1/risks/", secret, body, HTTP_IDEMPOTENCY_KEY="risk-1").json() == risk
    r = call(client, "post", "/api/v1/risks/", secret, {**body, "inherent_likelihood": 9})
    assert "non_field_errors" in assert_problem(r, 400)["errors"] or assert_problem(r, 400)["errors"]
    assert_problem(call(client, "post", "/api/v1/risks/", secret, {**body, "owner": "svc-grc"}), 400)
    assert [x["id"] for x in call(client, "get", "/api/v1/risks/", secret).json()["results"]] == [risk["id"]]
    assert call(client, "get", f"/api/v1/risks/{risk['id']}/", secret).json()["title"] == "Supplier outage"
    now = timezone.now()
    change = {
        "title": "Rotate TLS certificates",
        "description": "Yearly rotation.",
        "affects_security_controls": True,
        "planned_start": (now + timedelta(days=1)).isoformat(),
        "planned_end": (now + timedelta(days=1, hours=1)).isoformat(),
        "rollback_plan": "Restore the old pair.",
    }
    r = call(client, "post", "/api/v1/changes/", secret, change)
    assert r.status_code == 201, r.content
    assert r.json()["change_type"] == "major" and r.json()["status"] == "draft"
    assert r.json()["requester"] == "svc-grc"
    r = call(client, "post", "/api/v1/changes/", secret, {**change, "rollback_plan": " "})
    assert_problem(r, 400)
    # A reader cannot write.
    _, reader = token_for(account.user, ["risks:read"])
    assert_problem(call(client, "post", "/api/v1/changes/", reader, change), 403, "scope_missing")
    assert owner.pk


@pytest.mark.commitment("C12")
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_open_one_incident():
    """Two deliveries of the same alert at the same moment (PostgreSQL: the second waits on
    the key's unique index, then replays the first's response)."""
    import threading

    from django.db import connection, connections
    from django.test import Client

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locking; runs in CI (.ci/run)")
    account = service_account("svc-monitor", "Incident manager")
    _, secret = token_for(account.user, ["incidents:write"])
    body = json.dumps(incident_body())
    barrier = threading.Barrier(2)
    results = []

    def post():
        try:
            barrier.wait()
            r = Client().post(
                "/api/v1/incidents/",
                data=body,
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {secret}",
                HTTP_IDEMPOTENCY_KEY="race-1",
            )
            results.append((r.status_code, r.json().get("id")))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [s for s, _ in results] == [201, 201], results
    assert results[0][1] == results[1][1]
    assert Incident.objects.count() == 1
