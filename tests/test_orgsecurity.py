"""Organisation security settings (C28): IP allowlist and session policy, enforced on every
portal request path, per organisation, with the lock-out guard and proxy-aware addresses."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.orgsecurity import enforcement
from governance.orgsecurity.models import OrganisationSecurityPolicy
from governance.orgsecurity.netaddr import ip_allowed, parse_allowlist
from governance.orgsecurity.services import security_policy_update
from governance.tenancy.models import Membership
from tests.factories import PASSWORD, MembershipFactory
from tests.test_lockout import PROXY_IP, behind_one_proxy, one_proxy_settings  # noqa: F401 (fixtures)
from tests.test_portal_incidents import _evidence_root  # noqa: F401 (autouse: evidence files in tmp_path)
from tests.test_tenancy import OBJECT_KWARGS, _portal_patterns

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C28")]

INSIDE = "203.0.113.10"
OUTSIDE = "198.51.100.99"
# Pages that must stay reachable whatever the policy: signing out only reduces access.
ALWAYS_OPEN = {"portal:logout"}
# Reachable before signing in; the policy applies from the first signed-in request.
SIGN_IN = {"portal:login"}


# Customer pages outside the portal namespace (single sign-on settings live in their own app).
EXTRA_CUSTOMER_PAGES = ("sso:settings",)


def portal_urls(org) -> list[tuple[str, str]]:
    """Every customer-portal URL, parameterised ones pointed at `org`'s own objects."""
    urls = []
    for name, params in _portal_patterns():
        if name in ALWAYS_OPEN | SIGN_IN:
            continue
        kwargs = OBJECT_KWARGS[name](org) if params else {}
        urls.append((name, reverse(name, kwargs=kwargs)))
    urls += [(name, reverse(name)) for name in EXTRA_CUSTOMER_PAGES]
    assert len(urls) >= 15
    return urls


def set_policy(org, **fields) -> OrganisationSecurityPolicy:
    policy, _ = OrganisationSecurityPolicy.objects.update_or_create(organisation=org, defaults=fields)
    return policy


def signed_in(user, **meta) -> Client:
    client = Client(**meta)
    client.force_login(user)
    return client


# --- Parsing and matching ---------------------------------------------------------------


def test_allowlist_accepts_ipv4_and_ipv6_ranges_and_normalises():
    text = "203.0.113.0/24\n2001:DB8::/32, 198.51.100.7\n# office\n\n203.0.113.0/24"
    assert parse_allowlist(text) == ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("203.0.113.0/33", "is not an IPv4 or IPv6 address"),
        ("not-an-address", "is not an IPv4 or IPv6 address"),
        ("10.0.0.1/8", "has host bits set: write the network address, e.g. 10.0.0.0/8"),
        ("2001:db8::1/32", "e.g. 2001:db8::/32"),
        ("0.0.0.0/0", "allows every address"),
    ],
)
def test_allowlist_rejects_bad_entries_with_a_clear_message(entry, message):
    with pytest.raises(ValidationError) as exc:
        parse_allowlist(f"203.0.113.0/24\n{entry}")
    assert any(message in m for m in exc.value.messages)


def test_matching_ipv4_ipv6_and_mapped_addresses():
    allow = ["203.0.113.0/24", "2001:db8::/32"]
    assert ip_allowed("203.0.113.200", allow)
    assert ip_allowed("2001:db8:ffff::1", allow)
    assert ip_allowed("::ffff:203.0.113.5", allow)
    assert not ip_allowed("203.0.114.1", allow)
    assert not ip_allowed("2001:db9::1", allow)
    assert not ip_allowed(None, allow)
    assert ip_allowed(None, [])  # empty list: no restriction


# --- Settings page: validation and lock-out guard ------------------------------------------


def _post_policy(client, **fields):
    data = {"form": "policy", "two_factor": "optional", "ip_allowlist": "", **fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    return client.post(reverse("portal:security_settings"), data)


def test_bad_allowlist_input_is_a_form_error_not_a_500(org_a, customer_a):
    client = signed_in(customer_a, REMOTE_ADDR=INSIDE)
    response = _post_policy(client, ip_allowlist="203.0.113.0/24\n300.1.2.3/8")
    assert response.status_code == 400
    assert "“300.1.2.3/8” is not an IPv4 or IPv6 address or CIDR range" in response.content.decode()
    assert not OrganisationSecurityPolicy.objects.filter(organisation=org_a).exists()


def test_lockout_guard_refuses_a_list_without_the_admins_own_address(org_a, customer_a):
    client = signed_in(customer_a, REMOTE_ADDR=OUTSIDE)
    response = _post_policy(client, ip_allowlist="203.0.113.0/24")
    assert response.status_code == 400
    body = response.content.decode()
    assert f"Your own address ({OUTSIDE}) is not in this list" in body
    assert "lock you out" in body
    assert not OrganisationSecurityPolicy.objects.filter(organisation=org_a).exists()
    # Including the admin's address: saved, audited with the change, and the admin keeps working.
    response = _post_policy(client, ip_allowlist=f"203.0.113.0/24\n{OUTSIDE}/32")
    assert response.status_code == 302
    assert OrganisationSecurityPolicy.objects.get(organisation=org_a).ip_allowlist == [
        "203.0.113.0/24",
        f"{OUTSIDE}/32",
    ]
    event = AuditEvent.objects.filter(action="orgsecurity.policy_changed").get()
    assert event.organisation_id == org_a.pk and event.actor_id == customer_a.pk
    assert event.data["changes"]["ip_allowlist"]["to"] == ["203.0.113.0/24", f"{OUTSIDE}/32"]
    assert client.get(reverse("portal:home")).status_code == 200


def test_lockout_guard_in_the_service_too(org_a, customer_a):
    with pytest.raises(ValidationError, match="lock you out"):
        security_policy_update(
            organisation=org_a,
            acting_user=customer_a,
            two_factor="optional",
            ip_allowlist=["203.0.113.0/24"],
            idle_timeout_minutes=None,
            session_lifetime_hours=None,
            current_ip=None,  # unknown address: cannot prove it is inside
        )


def test_viewers_cannot_see_or_change_the_settings(org_a):
    viewer = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    client = signed_in(viewer, REMOTE_ADDR=INSIDE)
    for name in ("portal:security_settings", "portal:security_audit_log", "portal:security_audit_log_csv"):
        assert client.get(reverse(name)).status_code == 403, name
    assert _post_policy(client, ip_allowlist="198.51.100.0/24").status_code == 403
    with pytest.raises(ValidationError, match="Only a customer admin"):
        security_policy_update(
            organisation=org_a,
            acting_user=viewer,
            two_factor="required",
            ip_allowlist=[],
            idle_timeout_minutes=None,
            session_lifetime_hours=None,
            current_ip=INSIDE,
        )
    # Their own two-factor page is theirs to use.
    assert client.get(reverse("portal:two_factor_setup")).status_code == 200


# --- IP allowlist on every path ------------------------------------------------------------


def test_allowlist_refuses_every_portal_path_from_elsewhere_and_audits(org_a, org_b, customer_a, customer_b):
    set_policy(org_a, ip_allowlist=["203.0.113.0/24", "2001:db8::/32"])
    urls = portal_urls(org_a)
    outside = signed_in(customer_a, REMOTE_ADDR=OUTSIDE)
    for name, url in urls:
        response = outside.get(url)
        assert response.status_code == 403, name
        assert "Access from this network is not allowed" in response.content.decode(), name
    # Also a write: refused before the view runs.
    assert outside.post(reverse("portal:security_settings"), {"form": "sign_out_all"}).status_code == 403
    assert OrganisationSecurityPolicy.objects.get(organisation=org_a).sessions_revoked_at is None
    refused = AuditEvent.objects.filter(action="orgsecurity.ip_refused", organisation_id=org_a.pk)
    assert refused.count() == len(urls) + 1
    assert {e.data["ip"] for e in refused} == {OUTSIDE}
    assert {e.ip_address for e in refused} == {OUTSIDE}

    for address in (INSIDE, "2001:db8::7"):
        inside = signed_in(customer_a, REMOTE_ADDR=address)
        for name, url in urls:
            assert inside.get(url).status_code in (200, 302), (address, name)
    # Signing out stays possible from anywhere.
    assert outside.post(reverse("portal:logout")).status_code == 302

    # Organisation B has no list: its users work from the same address.
    other = signed_in(customer_b, REMOTE_ADDR=OUTSIDE)
    for name, url in portal_urls(org_b):
        assert other.get(url).status_code in (200, 302), name
    assert not AuditEvent.objects.filter(action="orgsecurity.ip_refused", organisation_id=org_b.pk).exists()


def test_a_replayed_session_cannot_flood_the_audit_trail(org_a, customer_a):
    set_policy(org_a, ip_allowlist=["203.0.113.0/24"])
    outside = signed_in(customer_a, REMOTE_ADDR=OUTSIDE)
    for _ in range(5):
        assert outside.get(reverse("portal:home")).status_code == 403  # every request refused
    assert outside.get(reverse("portal:status")).status_code == 403
    refused = AuditEvent.objects.filter(action="orgsecurity.ip_refused", actor=customer_a)
    # Once a minute per session, address and path: the home page once, the status page once.
    assert sorted(e.data["path"] for e in refused) == sorted([reverse("portal:home"), reverse("portal:status")])
    another_session = signed_in(customer_a, REMOTE_ADDR=OUTSIDE)
    assert another_session.get(reverse("portal:home")).status_code == 403
    assert refused.all().count() == 3  # a fresh query: the one above is cached


def test_signing_in_from_outside_the_list_leaves_no_session(org_a, customer_a):
    set_policy(org_a, ip_allowlist=["203.0.113.0/24"])
    client = Client(REMOTE_ADDR=OUTSIDE)
    response = client.post(reverse("portal:login"), {"username": customer_a.username, "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="orgsecurity.ip_refused", actor=customer_a).count() == 1
    inside = Client(REMOTE_ADDR=INSIDE)
    response = inside.post(reverse("portal:login"), {"username": customer_a.username, "password": PASSWORD})
    assert response.status_code == 302 and inside.get(reverse("portal:home")).status_code == 200


def test_without_a_proxy_x_forwarded_for_is_ignored(org_a, customer_a):
    set_policy(org_a, ip_allowlist=["203.0.113.0/24"])
    forged = signed_in(customer_a, REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR=INSIDE)
    assert forged.get(reverse("portal:home")).status_code == 403


def test_behind_the_configured_proxy_the_appended_address_counts(behind_one_proxy, org_a, customer_a):  # noqa: F811
    set_policy(org_a, ip_allowlist=["203.0.113.0/24"])
    via_proxy = signed_in(customer_a, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=INSIDE)
    assert via_proxy.get(reverse("portal:home")).status_code == 200
    outside = signed_in(customer_a, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=OUTSIDE)
    assert outside.get(reverse("portal:home")).status_code == 403
    # A client writing an allowed address itself: the proxy appends the real one, which counts.
    forged = signed_in(customer_a, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=f"{INSIDE}, {OUTSIDE}")
    assert forged.get(reverse("portal:home")).status_code == 403
    event = AuditEvent.objects.filter(action="orgsecurity.ip_refused").latest("id")
    assert event.data["ip"] == OUTSIDE
    # The lock-out guard reads the same address.
    response = _post_policy(outside, ip_allowlist="203.0.113.0/24")
    assert response.status_code == 403  # refused before the page: OUTSIDE is not allowed at all
    admin_inside = signed_in(customer_a, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=INSIDE)
    assert _post_policy(admin_inside, ip_allowlist="192.0.2.0/24").status_code == 400
    assert _post_policy(admin_inside, ip_allowlist="203.0.113.0/25").status_code == 302


# --- Session policy on every path -------------------------------------------------------------


def _age_session(client, **seconds_ago) -> None:
    session = client.session
    now = timezone.now().timestamp()
    for key, ago in seconds_ago.items():
        session[getattr(enforcement, key)] = now - ago
    session.save()


@pytest.mark.parametrize(
    ("policy", "aged", "reason"),
    [
        ({"idle_timeout_minutes": 15}, {"SESSION_SEEN_AT": 16 * 60}, enforcement.SESSION_IDLE),
        (
            {"session_lifetime_hours": 2},
            {"SESSION_AUTH_AT": 2 * 3600 + 5, "SESSION_VALID_FROM": 2 * 3600 + 5},
            enforcement.SESSION_LIFETIME,
        ),
    ],
)
def test_session_limits_end_the_session_on_every_path(org_a, org_b, customer_a, customer_b, policy, aged, reason):
    set_policy(org_a, **policy)
    for name, url in portal_urls(org_a):
        client = signed_in(customer_a)
        assert client.get(reverse("portal:home")).status_code == 200
        _age_session(client, **aged)
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("portal:login")), name
        assert "_auth_user_id" not in client.session, name
        assert client.get(reverse("portal:home")).status_code == 302, name
    assert AuditEvent.objects.filter(
        action="orgsecurity.logout", organisation_id=org_a.pk, data__reason=reason
    ).exists()
    # Organisation B has no limits: the same old session keeps working.
    other = signed_in(customer_b)
    _age_session(other, **aged)
    assert other.get(reverse("portal:home")).status_code == 200


def test_activity_keeps_an_idle_timeout_at_bay_but_not_the_lifetime(org_a, customer_a):
    set_policy(org_a, idle_timeout_minutes=30, session_lifetime_hours=2)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = signed_in(customer_a)
        for _ in range(4):  # every 25 minutes for 100 minutes: never idle for 30
            traveller.shift(timedelta(minutes=25))
            assert client.get(reverse("portal:home")).status_code == 200
        traveller.shift(timedelta(minutes=25))  # 125 minutes after sign-in
        assert client.get(reverse("portal:home")).status_code == 302
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = signed_in(customer_a)
        traveller.shift(timedelta(minutes=31))
        assert client.get(reverse("portal:member_list")).status_code == 302


def test_sign_out_everyone_ends_every_session_of_the_organisation_only(org_a, org_b, customer_a, customer_b):
    colleague = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    admin = signed_in(customer_a)
    urls = portal_urls(org_a)
    colleague_sessions = [signed_in(colleague) for _ in urls]
    other_org = signed_in(customer_b)
    assert admin.post(reverse("portal:security_settings"), {"form": "sign_out_all"}).status_code == 302
    for client, (name, url) in zip(colleague_sessions, urls, strict=True):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("portal:login")), name
        assert "_auth_user_id" not in client.session, name
    assert admin.get(reverse("portal:home")).status_code == 200  # the admin who asked stays in
    assert other_org.get(reverse("portal:home")).status_code == 200
    # New sign-ins work at once.
    assert signed_in(colleague).get(reverse("portal:home")).status_code == 200
    event = AuditEvent.objects.get(action="orgsecurity.sessions_revoked")
    assert event.organisation_id == org_a.pk and event.data["scope"] == "organisation"


def test_sign_out_one_person_on_every_path(org_a, customer_a):
    member = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER)
    bystander = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    admin = signed_in(customer_a)
    stale = [signed_in(member.user) for _ in portal_urls(org_a)]
    bystander_client = signed_in(bystander)
    url = reverse("portal:member_security", kwargs={"pk": member.pk})
    assert admin.post(url, {"action": "sign_out"}).status_code == 302
    for client, (name, path) in zip(stale, portal_urls(org_a), strict=True):
        assert client.get(path).status_code == 302, name
        assert "_auth_user_id" not in client.session, name
    assert bystander_client.get(reverse("portal:home")).status_code == 200
    assert signed_in(member.user).get(reverse("portal:home")).status_code == 200
    event = AuditEvent.objects.get(action="orgsecurity.sessions_revoked")
    assert event.organisation_id == org_a.pk and event.data["user"] == member.user.username


def test_an_admin_cannot_sign_out_people_of_another_organisation(org_a, org_b, customer_a):
    foreign = MembershipFactory(organisation=org_b)
    admin = signed_in(customer_a)
    url = reverse("portal:member_security", kwargs={"pk": foreign.pk})
    assert admin.post(url, {"action": "sign_out"}).status_code == 404
    assert not AuditEvent.objects.filter(action="orgsecurity.sessions_revoked").exists()


# --- The shared check for other entry points (the integration API) ----------------------------


def test_check_request_applies_the_allowlist_to_token_requests(org_a, customer_a, customer_b):
    set_policy(org_a, ip_allowlist=["203.0.113.0/24"], idle_timeout_minutes=5, two_factor="required")
    factory = RequestFactory()
    request = factory.get("/api/v1/anything", REMOTE_ADDR=OUTSIDE)  # no session: a token request
    refusal = enforcement.check_request(request, customer_a)
    assert refusal is not None and refusal.code == enforcement.IP_NOT_ALLOWED and refusal.status == 403
    # From inside, a token request passes: session rules (idle time, two-factor) are the session's.
    assert enforcement.check_request(factory.get("/api/v1/anything", REMOTE_ADDR=INSIDE), customer_a) is None
    # Another organisation's user is not governed by org A's list.
    assert enforcement.check_request(factory.get("/api/v1/anything", REMOTE_ADDR=OUTSIDE), customer_b) is None


def test_staff_are_not_governed_by_a_customers_settings(org_a, staff_factory):
    set_policy(org_a, ip_allowlist=["203.0.113.0/24"], two_factor="required", idle_timeout_minutes=5)
    staff = staff_factory()
    request = RequestFactory().get("/admin/", REMOTE_ADDR=OUTSIDE)
    assert enforcement.check_request(request, staff) is None


def test_demo_settings_are_seeded_through_the_service_idempotently(settings):
    from io import StringIO

    from django.core.management import call_command

    settings.DEBUG = True
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=StringIO())
    assert "Contoso requires two-factor" in out.getvalue()
    contoso = OrganisationSecurityPolicy.objects.get(organisation__slug="contoso")
    fabrikam = OrganisationSecurityPolicy.objects.get(organisation__slug="fabrikam")
    assert contoso.two_factor == "required" and fabrikam.ip_allowlist[0] == "127.0.0.0/8"
    assert AuditEvent.objects.filter(action="orgsecurity.policy_changed").count() == 2  # not repeated
    # The demo logins still work on this machine.
    client = Client(REMOTE_ADDR="127.0.0.1")
    client.post(reverse("portal:login"), {"username": "fabrikam-admin", "password": "demo-Password-2026"})
    assert client.get(reverse("portal:security_settings")).status_code == 200


def test_a_refusal_the_middleware_does_not_know_fails_closed(org_a, customer_a, monkeypatch):
    def new_rule(request, user):
        return enforcement.Refusal("some_future_rule", "Refused by a newer rule.", 403)

    monkeypatch.setattr(enforcement, "check_request", new_rule)
    assert signed_in(customer_a).get(reverse("portal:home")).status_code == 403
