"""Single sign-on (C28) against a real OpenID Connect provider on loopback, not a mock.

The provider (tests/oidc_provider/, django-oauth-toolkit with OIDC, an RSA key made at
start) runs in its own process with its own SQLite database. Each sign-in goes the way a
browser goes: our portal redirects to the provider's authorize endpoint, the provider's
login form is filled in and posted (`requests`, with its cookies and CSRF token), the
provider redirects back to our callback with a code, and our server exchanges the code
and verifies the ID token against the provider's published keys.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import pytest
import requests
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.sso.models import SSOConfiguration, SSOIdentity
from governance.sso.policy import password_login_allowed, session_allowed
from governance.sso.services import sso_configuration_update
from governance.tenancy.models import Membership
from tests.factories import PASSWORD, MembershipFactory, StaffFactory

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C28")]

REPO = Path(__file__).resolve().parent.parent
CALLBACK = "http://testserver/portal/sso/callback/"
PROVIDER_USERS = {
    "alice": {"email": "alice@a.example", "email_verified": True, "given_name": "Alice", "family_name": "A"},
    "newbie": {"email": "newbie@a.example", "email_verified": True, "given_name": "New", "family_name": "Person"},
    "unverified": {"email": "unverified@a.example", "email_verified": False},
    "bob": {"email": "bob@b.example", "email_verified": True},
}
# name -> client id; the provider misbehaves on purpose for the named ones (validators.py).
APPLICATIONS = {
    "good": "client-good",
    "wrong-audience": "client-aud",
    "wrong-issuer": "client-iss",
    "foreign-key": "client-key",
    "userinfo-only": "client-userinfo",
}
PROVIDER_PASSWORD = "provider-password-123"
QUERIES_SETTINGS_PAGE = 7  # fixed: session, user, membership, organisation, security policy, config, identities


class Provider:
    def __init__(self, port: int) -> None:
        self.port = port
        self.issuer = f"http://127.0.0.1:{port}/o"


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory):
    folder = tmp_path_factory.mktemp("oidc-provider")
    spec = {
        "users": {name: {**claims, "password": PROVIDER_PASSWORD} for name, claims in PROVIDER_USERS.items()},
        "applications": [
            {"name": name, "client_id": cid, "client_secret": f"secret-{cid}", "redirect_uri": CALLBACK}
            for name, cid in APPLICATIONS.items()
        ],
    }
    (folder / "spec.json").write_text(json.dumps(spec))
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc_provider.serve", str(folder / "spec.json"), str(folder / "db.sqlite3")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first_line: list[str] = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=60)
    try:
        line = first_line[0] if first_line else ""
        assert line.startswith("READY "), f"the test provider did not start: {line!r}"
        yield Provider(int(line.split()[1]))
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(autouse=True)
def _loopback_provider_allowed(settings):
    settings.SSO_ALLOW_LOOPBACK_HTTP = True


def configure(org, provider: Provider, *, app: str = "good", jit: bool = False, enabled: bool = True):
    admin = MembershipFactory(organisation=org, role=Membership.Role.ADMIN).user
    client_id = APPLICATIONS[app]
    return sso_configuration_update(
        organisation=org,
        acting_user=admin,
        enabled=enabled,
        issuer=provider.issuer,
        client_id=client_id,
        client_secret=f"secret-{client_id}",
        jit_membership=jit,
    )


def member(org, email: str, role=Membership.Role.VIEWER):
    return MembershipFactory(organisation=org, role=role, user__email=email).user


def provider_sign_in(authorize_url: str, username: str) -> str:
    """Play the browser at the provider: authorize, log in, come back. Returns our callback URL."""
    browser = requests.Session()
    response = browser.get(authorize_url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:500]
    login_url = urljoin(authorize_url, response.headers["Location"])
    page = browser.get(login_url, timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    next_url = parse_qs(urlsplit(login_url).query)["next"][0]
    response = browser.post(
        login_url,
        data={"username": username, "password": PROVIDER_PASSWORD, "csrfmiddlewaretoken": csrf, "next": next_url},
        headers={"Referer": login_url},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, "provider login failed"
    response = browser.get(urljoin(login_url, response.headers["Location"]), allow_redirects=False, timeout=10)
    assert response.status_code == 302
    callback = response.headers["Location"]
    assert callback.startswith(CALLBACK), callback
    return callback


def start(client, org) -> str:
    response = client.get(reverse("sso:begin", kwargs={"slug": org.slug}))
    assert response.status_code == 302
    return response["Location"]


def round_trip(client, org, username: str, *, tamper=None):
    authorize_url = start(client, org)
    if tamper:
        authorize_url = tamper(authorize_url)
    return client.get(provider_sign_in(authorize_url, username))


def signed_in_user_id(client):
    return client.session.get("_auth_user_id")


def refusals(org) -> list[str]:
    return list(
        AuditEvent.objects.filter(action="sso.login_refused", organisation_id=org.pk).values_list(
            "data__reason", flat=True
        )
    )


# --- The round trip -------------------------------------------------------------------


def test_member_signs_in_with_verified_email(client, oidc_provider, org_a):
    configure(org_a, oidc_provider)
    alice = member(org_a, "Alice@A.example")  # matched case-insensitively, through the blind index

    authorize_url = start(client, org_a)
    params = parse_qs(urlsplit(authorize_url).query)
    assert authorize_url.startswith(oidc_provider.issuer + "/authorize/")
    assert params["client_id"] == [APPLICATIONS["good"]] and params["redirect_uri"] == [CALLBACK]
    assert params["code_challenge_method"] == ["S256"] and params["state"] and params["nonce"]
    response = client.get(provider_sign_in(authorize_url, "alice"))

    assert response.status_code == 302 and response["Location"] == reverse("portal:home")
    assert signed_in_user_id(client) == str(alice.pk)
    assert client.session["sso_organisation_id"] == org_a.pk
    identity = SSOIdentity.objects.get(user=alice)
    assert identity.issuer == oidc_provider.issuer and identity.last_login_at is not None
    assert SSOConfiguration.objects.get(organisation=org_a).verified_at is not None
    login = AuditEvent.objects.get(action="sso.login")
    assert login.actor_id == alice.pk and login.organisation_id == org_a.pk
    assert AuditEvent.objects.filter(action="auth.login", actor=alice).exists()
    # Signed in for real: the portal answers with alice's organisation.
    response = client.get(reverse("portal:home"))
    assert response.status_code == 200 and org_a.name in response.content.decode()


def test_second_sign_in_goes_by_subject_and_next_is_kept(client, oidc_provider, org_a):
    configure(org_a, oidc_provider)
    alice = member(org_a, "alice@a.example")
    assert round_trip(client, org_a, "alice").status_code == 302
    client.logout()
    response = client.get(reverse("sso:begin", kwargs={"slug": org_a.slug}) + "?next=/portal/incidents/")
    response = client.get(provider_sign_in(response["Location"], "alice"))
    assert response["Location"] == "/portal/incidents/"
    assert signed_in_user_id(client) == str(alice.pk)
    assert SSOIdentity.objects.filter(user=alice).count() == 1


def test_email_only_in_userinfo_is_read_for_the_same_subject(client, oidc_provider, org_a):
    configure(org_a, oidc_provider, app="userinfo-only")
    alice = member(org_a, "alice@a.example")
    response = round_trip(client, org_a, "alice")
    assert response.status_code == 302 and signed_in_user_id(client) == str(alice.pk)


def test_jit_creates_a_viewer_without_password(client, oidc_provider, org_a):
    configure(org_a, oidc_provider, jit=True)
    response = round_trip(client, org_a, "newbie")
    assert response.status_code == 302
    membership = Membership.objects.select_related("user").get(user__pk=signed_in_user_id(client))
    assert membership.organisation == org_a and membership.role == Membership.Role.VIEWER
    user = membership.user
    assert user.email == "newbie@a.example" and user.first_name == "New"
    assert not user.has_usable_password()
    assert AuditEvent.objects.filter(action="sso.membership_created", organisation_id=org_a.pk).count() == 1


def test_jit_off_refuses_an_unknown_email_with_a_clear_message(client, oidc_provider, org_a):
    configure(org_a, oidc_provider, jit=False)
    users_before = Membership.objects.count()
    response = round_trip(client, org_a, "newbie")
    assert response.status_code == 403
    assert "no Org A account for your email address" in response.content.decode()
    assert signed_in_user_id(client) is None
    assert Membership.objects.count() == users_before
    assert refusals(org_a) == ["no_account"]


def test_unverified_email_is_refused_even_when_it_matches(client, oidc_provider, org_a):
    configure(org_a, oidc_provider, jit=True)
    member(org_a, "unverified@a.example")
    response = round_trip(client, org_a, "unverified")
    assert response.status_code == 403
    assert "has not verified your email address" in response.content.decode()
    assert signed_in_user_id(client) is None
    assert refusals(org_a) == ["email_unverified"]


def test_user_of_another_organisation_is_refused_and_not_duplicated(client, oidc_provider, org_a, org_b):
    configure(org_a, oidc_provider, jit=True)  # even with just-in-time membership on
    bob = member(org_b, "bob@b.example")
    response = round_trip(client, org_a, "bob")
    assert response.status_code == 403
    assert "belongs to an account outside Org A" in response.content.decode()
    assert signed_in_user_id(client) is None
    assert not Membership.objects.filter(organisation=org_a, user__username__startswith="bob").exists()
    assert Membership.objects.get(user=bob).organisation == org_b
    assert refusals(org_a) == ["other_organisation"]


def test_staff_email_is_never_matched(client, oidc_provider, org_a):
    configure(org_a, oidc_provider, jit=True)
    StaffFactory(email="alice@a.example")
    response = round_trip(client, org_a, "alice")
    assert response.status_code == 403 and signed_in_user_id(client) is None


@pytest.mark.parametrize(
    ("app", "reason", "message"),
    [
        ("wrong-audience", "audience", "issued for another application"),
        ("wrong-issuer", "issuer", "comes from another provider"),
        ("foreign-key", "signature", "failed verification"),
    ],
)
def test_tokens_with_wrong_audience_issuer_or_key_are_refused(client, oidc_provider, org_a, app, reason, message):
    configure(org_a, oidc_provider, app=app)
    member(org_a, "alice@a.example")
    response = round_trip(client, org_a, "alice")
    assert response.status_code == 403
    assert message in response.content.decode()
    assert signed_in_user_id(client) is None
    assert refusals(org_a) == [reason]


def test_token_for_another_sign_in_attempt_is_refused_by_nonce(client, oidc_provider, org_a):
    configure(org_a, oidc_provider)
    member(org_a, "alice@a.example")

    def swap_nonce(url: str) -> str:
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        query["nonce"] = "nonce-of-an-attacker-started-sign-in"
        return urlunsplit(parts._replace(query=urlencode(query)))

    response = round_trip(client, org_a, "alice", tamper=swap_nonce)
    assert response.status_code == 403
    assert signed_in_user_id(client) is None
    assert refusals(org_a) == ["nonce"]


def test_expired_id_token_is_refused(client, oidc_provider, org_a, settings):
    settings.SESSION_COOKIE_AGE = 2 * 24 * 3600  # keep our session; only the token should be stale
    configure(org_a, oidc_provider)
    member(org_a, "alice@a.example")
    callback = provider_sign_in(start(client, org_a), "alice")
    # The provider's ID tokens live 10 hours; arrive 11 hours later (the code is exchanged live).
    with time_machine.travel(timezone.now() + timedelta(hours=11)):
        response = client.get(callback)
    assert response.status_code == 403
    assert refusals(org_a) == ["expired"]


def test_state_is_single_use_and_bound_to_the_session(client, oidc_provider, org_a):
    configure(org_a, oidc_provider)
    member(org_a, "alice@a.example")
    callback = provider_sign_in(start(client, org_a), "alice")
    other_browser = client.__class__()
    assert other_browser.get(callback).status_code == 400  # another session: unknown state
    assert client.get(callback).status_code == 302
    client.logout()
    assert client.get(callback).status_code == 400  # replay


def test_provider_error_is_refused_and_audited(client, oidc_provider, org_a):
    configure(org_a, oidc_provider)
    state = parse_qs(urlsplit(start(client, org_a)).query)["state"][0]
    response = client.get(CALLBACK, {"state": state, "error": "access_denied"})
    assert response.status_code == 403 and refusals(org_a) == ["provider_error"]


def test_disabled_unknown_and_terminated_organisations_look_the_same(client, oidc_provider, org_a, org_b):
    configure(org_a, oidc_provider, enabled=False)
    for slug in (org_a.slug, org_b.slug, "no-such-org"):
        assert client.get(reverse("sso:begin", kwargs={"slug": slug})).status_code == 404


def test_unreachable_provider_is_a_clear_502(client, org_a, settings):
    admin = MembershipFactory(organisation=org_a).user
    sso_configuration_update(
        organisation=org_a,
        acting_user=admin,
        enabled=True,
        issuer="http://127.0.0.1:9/o",  # discard port: nothing listens
        client_id="x",
        client_secret="y",
    )
    response = client.get(reverse("sso:begin", kwargs={"slug": org_a.slug}))
    assert response.status_code == 502 and "could not be reached" in response.content.decode()


# --- Enforce-SSO ------------------------------------------------------------------------


def test_enforce_sso_blocks_password_login_only_for_that_organisation(client, oidc_provider, org_a, org_b):
    config = configure(org_a, oidc_provider)
    alice = member(org_a, "alice@a.example")
    bob = member(org_b, "bob@b.example")
    staff = StaffFactory()
    assert round_trip(client, org_a, "alice").status_code == 302  # proves single sign-on works
    client.logout()
    admin = Membership.objects.filter(organisation=org_a, role=Membership.Role.ADMIN).first().user
    sso_configuration_update(
        organisation=org_a,
        acting_user=admin,
        enabled=True,
        issuer=config.issuer,
        client_id=config.client_id,
        enforce_sso=True,
    )

    assert not password_login_allowed(alice) and not password_login_allowed(admin)
    assert password_login_allowed(bob) and password_login_allowed(staff)
    response = client.post(reverse("portal:login"), {"username": alice.username, "password": PASSWORD})
    assert response.status_code == 200 and signed_in_user_id(client) is None
    assert "requires single sign-on" in response.content.decode()
    assert AuditEvent.objects.filter(action="sso.password_login_refused", organisation_id=org_a.pk).count() == 1
    # A wrong password still says only "wrong": the SSO rule shows after a correct password.
    response = client.post(reverse("portal:login"), {"username": alice.username, "password": "wrong-password-1"})
    assert "requires single sign-on" not in response.content.decode()

    response = client.post(reverse("portal:login"), {"username": bob.username, "password": PASSWORD})
    assert response.status_code == 302 and signed_in_user_id(client) == str(bob.pk)
    client.logout()
    # Single sign-on itself still works for the enforced organisation.
    assert round_trip(client, org_a, "alice").status_code == 302


def test_requiring_sso_ends_password_sessions_opened_before(client, oidc_provider, org_a):
    from django.test import Client

    config = configure(org_a, oidc_provider)
    member(org_a, "alice@a.example")
    assert round_trip(client, org_a, "alice").status_code == 302  # verifies the provider settings
    carol = member(org_a, "carol@a.example")
    by_password = Client()
    signed_in = by_password.post(reverse("portal:login"), {"username": carol.username, "password": PASSWORD})
    assert signed_in.status_code == 302
    assert by_password.get(reverse("portal:home")).status_code == 200
    admin = Membership.objects.filter(organisation=org_a, role=Membership.Role.ADMIN).first().user
    sso_configuration_update(
        organisation=org_a,
        acting_user=admin,
        enabled=True,
        issuer=config.issuer,
        client_id=config.client_id,
        enforce_sso=True,
    )
    assert by_password.get(reverse("portal:home")).status_code == 302
    assert signed_in_user_id(by_password) is None
    event = AuditEvent.objects.get(action="orgsecurity.sessions_revoked", organisation_id=org_a.pk)
    assert event.data["reason"] == "sso_required"
    # Saving again (already required) ends nothing more.
    sso_configuration_update(
        organisation=org_a, acting_user=admin, enabled=True, issuer=config.issuer, client_id=config.client_id,
        enforce_sso=True, jit_membership=True,
    )  # fmt: skip
    assert AuditEvent.objects.filter(action="orgsecurity.sessions_revoked").count() == 1


def test_session_rule_tells_password_sessions_from_sso_sessions(client, oidc_provider, org_a, rf):
    config = configure(org_a, oidc_provider)
    alice = member(org_a, "alice@a.example")
    assert round_trip(client, org_a, "alice").status_code == 302
    SSOConfiguration.objects.filter(pk=config.pk).update(enforce_sso=True)
    sso_request = rf.get("/")
    sso_request.session = client.session
    password_request = rf.get("/")
    password_request.session = {}
    assert session_allowed(sso_request, alice)
    assert not session_allowed(password_request, alice)
    assert session_allowed(password_request, member(org_a.__class__.objects.create(name="C", slug="c"), "c@c.example"))


def test_enforcing_needs_a_successful_sign_in_first_and_provider_changes_reset_it(oidc_provider, org_a):
    config = configure(org_a, oidc_provider)
    admin = Membership.objects.get(organisation=org_a).user
    common = {"organisation": org_a, "acting_user": admin, "enabled": True, "client_id": config.client_id}
    with pytest.raises(Exception, match="Sign in once with single sign-on"):
        sso_configuration_update(issuer=config.issuer, enforce_sso=True, **common)
    SSOConfiguration.objects.filter(pk=config.pk).update(verified_at=timezone.now())
    sso_configuration_update(issuer=config.issuer, enforce_sso=True, **common)
    # A new issuer must be proven again before passwords stay off.
    with pytest.raises(Exception, match="Sign in once with single sign-on"):
        sso_configuration_update(issuer="https://login.example.com", enforce_sso=True, **common)


def test_disabled_configuration_never_blocks_passwords(oidc_provider, org_a):
    config = configure(org_a, oidc_provider)
    SSOConfiguration.objects.filter(pk=config.pk).update(enforce_sso=True, enabled=False)
    assert password_login_allowed(member(org_a, "x@a.example"))


# --- Configuration ----------------------------------------------------------------------


def test_client_secret_is_encrypted_at_rest(oidc_provider, org_a):
    config = configure(org_a, oidc_provider)
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM sso_ssoconfiguration WHERE id = %s", [config.pk])
        (raw,) = cursor.fetchone()
    raw = bytes(raw)
    assert b"secret-client-good" not in raw and raw[:1] == b"\x01"
    assert SSOConfiguration.objects.get(pk=config.pk).client_secret == "secret-client-good"


def test_customer_admin_edits_settings_audited_without_the_secret(client, org_a, org_b, oidc_provider):
    admin = MembershipFactory(organisation=org_a, role=Membership.Role.ADMIN).user
    client.force_login(admin)
    url = reverse("sso:settings")
    assert client.get(url).status_code == 200
    data = {
        "form": "provider",
        "enabled": "on",
        "issuer": oidc_provider.issuer,
        "client_id": "client-good",
        "client_secret": "typed-secret-value",
        "signing_algorithm": "RS256",
        "jit_membership": "on",
    }
    response = client.post(url, data)
    assert response.status_code == 302
    config = SSOConfiguration.objects.get(organisation=org_a)
    assert config.client_secret == "typed-secret-value" and config.jit_membership
    page = client.get(url).content.decode()
    assert "typed-secret-value" not in page and "http://testserver/portal/sso/callback/" in page
    # Empty secret keeps the stored one.
    assert client.post(url, {**data, "client_secret": "", "jit_membership": ""}).status_code == 302
    config.refresh_from_db()
    assert config.client_secret == "typed-secret-value" and not config.jit_membership
    events = list(AuditEvent.objects.filter(action__startswith="sso.configuration_", organisation_id=org_a.pk))
    assert len(events) == 2 and all(e.actor_id == admin.pk for e in events)
    assert all("typed-secret-value" not in json.dumps(e.data) for e in events)
    assert "client_secret" in events[-1].data["changed"] or "client_secret" in events[0].data["changed"]
    assert not SSOConfiguration.objects.filter(organisation=org_b).exists()


def test_viewers_cannot_change_single_sign_on(client, org_a):
    viewer = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    client.force_login(viewer)
    assert client.get(reverse("sso:settings")).status_code == 403
    response = client.post(
        reverse("sso:settings"), {"form": "provider", "issuer": "https://x.example", "client_id": "x"}
    )
    assert response.status_code == 403
    assert not SSOConfiguration.objects.exists()


@pytest.mark.parametrize(
    "issuer",
    ["http://login.example.com", "https://10.0.0.5/o", "https://169.254.169.254", "https://u:p@login.example.com"],
)
def test_issuer_must_be_public_https(client, org_a, issuer):
    admin = MembershipFactory(organisation=org_a).user
    client.force_login(admin)
    data = {"form": "provider", "enabled": "on", "issuer": issuer, "client_id": "c", "client_secret": "s"}
    data["signing_algorithm"] = "RS256"
    response = client.post(reverse("sso:settings"), data)
    assert response.status_code == 400
    assert not SSOConfiguration.objects.exists()


def test_loopback_issuer_refused_unless_allowed(org_a, settings):
    settings.SSO_ALLOW_LOOPBACK_HTTP = False
    admin = MembershipFactory(organisation=org_a).user
    with pytest.raises(Exception, match="https|not reachable"):
        sso_configuration_update(
            organisation=org_a,
            acting_user=admin,
            enabled=True,
            issuer="http://127.0.0.1:8000/o",
            client_id="c",
            client_secret="s",
        )


def test_start_page_finds_the_organisation_by_email_domain_or_sign_in_name(client, oidc_provider, org_a):
    configure(org_a, oidc_provider)
    staff = StaffFactory(is_superuser=True)
    sso_configuration_update(
        organisation=org_a,
        acting_user=staff,
        enabled=True,
        issuer=oidc_provider.issuer,
        client_id="client-good",
        email_domains=["A.example"],
    )
    begin = reverse("sso:begin", kwargs={"slug": org_a.slug})
    assert client.post(reverse("sso:start"), {"email": "someone@a.example"})["Location"] == begin
    assert client.post(reverse("sso:start"), {"organisation": org_a.slug})["Location"] == begin
    response = client.post(reverse("sso:start"), {"email": "someone@elsewhere.example"})
    assert response.status_code == 400 and "not set up" in response.content.decode()
    assert client.post(reverse("sso:start"), {}).status_code == 400
    # The password sign-in page links here.
    assert reverse("sso:start") in client.get(reverse("portal:login")).content.decode()


def test_email_domains_are_staff_only_and_unique(org_a, org_b, oidc_provider):
    configure(org_a, oidc_provider)
    admin_b = MembershipFactory(organisation=org_b).user
    staff = StaffFactory(is_superuser=True)
    common = {"enabled": True, "issuer": oidc_provider.issuer, "client_id": "client-good"}
    with pytest.raises(Exception, match="staff"):
        sso_configuration_update(
            organisation=org_b, acting_user=admin_b, client_secret="s", email_domains=["b.example"], **common
        )
    sso_configuration_update(organisation=org_a, acting_user=staff, email_domains=["a.example"], **common)
    with pytest.raises(Exception, match="Already used by another organisation"):
        sso_configuration_update(
            organisation=org_b, acting_user=staff, client_secret="s", email_domains=["a.example"], **common
        )


def test_staff_configure_in_the_admin_through_the_service(oidc_provider, org_a):
    from tests.helpers import otp_client

    staff = StaffFactory(is_superuser=True)
    client = otp_client(staff)
    data = {
        "organisation": org_a.pk,
        "enabled": "on",
        "issuer": oidc_provider.issuer,
        "client_id": "client-good",
        "client_secret": "admin-typed-secret",
        "signing_algorithm": "RS256",
        "email_domains": "a.example, A.example",
        "jit_membership": "",
        "enforce_sso": "on",  # refused: never signed in yet
    }
    add_url = reverse("admin:sso_ssoconfiguration_add")
    assert client.get(add_url).status_code == 200
    response = client.post(add_url, data)
    assert response.status_code == 200 and "Sign in once with single sign-on" in response.content.decode()
    assert not SSOConfiguration.objects.exists()
    response = client.post(add_url, {**data, "enforce_sso": ""})
    assert response.status_code == 302
    config = SSOConfiguration.objects.get(organisation=org_a)
    assert config.email_domains == ["a.example"] and config.client_secret == "admin-typed-secret"
    change_url = reverse("admin:sso_ssoconfiguration_change", args=[config.pk])
    page = client.get(change_url).content.decode()
    assert "admin-typed-secret" not in page
    response = client.post(change_url, {**data, "enforce_sso": "", "client_secret": "", "enabled": ""})
    assert response.status_code == 302
    config.refresh_from_db()
    assert not config.enabled and config.client_secret == "admin-typed-secret"
    events = AuditEvent.objects.filter(action__startswith="sso.configuration_", actor=staff)
    assert events.count() == 2


def test_start_page_lets_its_form_redirect_to_a_provider(client, settings):
    # Browsers check form-action along the redirect chain (form -> begin -> provider).
    settings.SSO_ALLOW_LOOPBACK_HTTP = False
    policy = client.get(reverse("sso:start"))["Content-Security-Policy"]
    form_action = next(d for d in policy.split(";") if "form-action" in d)
    assert "https:" in form_action and "http://127.0.0.1" not in form_action
    assert "https:" not in next(
        d for d in client.get(reverse("portal:login"))["Content-Security-Policy"].split(";") if "form-action" in d
    )


def _identities(org, issuer: str, count: int):
    return [
        SSOIdentity.objects.create(
            organisation=org, user=member(org, f"p{i}-{org.slug}@x.example"), issuer=issuer, subject=f"s{i}"
        )
        for i in range(count)
    ]


def test_customer_admin_unlinks_only_own_identities(client, org_a, org_b, oidc_provider):
    admin = MembershipFactory(organisation=org_a).user
    (own,) = _identities(org_a, oidc_provider.issuer, 1)
    (foreign,) = _identities(org_b, oidc_provider.issuer, 1)
    client.force_login(admin)
    page = client.get(reverse("sso:settings")).content.decode()
    assert own.user.username in page and foreign.user.username not in page
    # The list sits in the page body, once, not in the <title>.
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert "Single sign-on" in title and "<" not in title and page.count(own.user.username) == 1
    response = client.post(reverse("sso:settings"), {"form": "unlink", "identity": foreign.pk})
    assert response.status_code == 404 and SSOIdentity.objects.filter(pk=foreign.pk).exists()
    assert client.post(reverse("sso:settings"), {"form": "unlink", "identity": "x"}).status_code == 404
    response = client.post(reverse("sso:settings"), {"form": "unlink", "identity": own.pk})
    assert response.status_code == 302 and not SSOIdentity.objects.filter(pk=own.pk).exists()
    event = AuditEvent.objects.get(action="sso.identity_unlinked")
    assert event.organisation_id == org_a.pk and event.actor_id == admin.pk


def test_relinked_provider_account_is_refused_until_unlinked(client, oidc_provider, org_a):
    configure(org_a, oidc_provider)
    alice = member(org_a, "alice@a.example")
    SSOIdentity.objects.create(organisation=org_a, user=alice, issuer=oidc_provider.issuer, subject="old-subject")
    response = round_trip(client, org_a, "alice")
    assert response.status_code == 403 and refusals(org_a) == ["identity_mismatch"]
    SSOIdentity.objects.filter(user=alice).delete()
    assert round_trip(client, org_a, "alice").status_code == 302


@pytest.mark.parametrize("rows", [1, 12])
def test_settings_page_query_count_does_not_grow(client, org_a, oidc_provider, django_assert_num_queries, rows):
    configure(org_a, oidc_provider)
    admin = Membership.objects.get(organisation=org_a, role=Membership.Role.ADMIN).user
    _identities(org_a, oidc_provider.issuer, rows)
    client.force_login(admin)
    client.get(reverse("sso:settings"))  # warm per-process caches
    with django_assert_num_queries(QUERIES_SETTINGS_PAGE):
        assert client.get(reverse("sso:settings")).status_code == 200


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_malformed_or_unsigned_tokens_are_refused_not_500(token):
    from governance.sso.backends import OrganisationOIDCBackend, SSORefused

    backend = OrganisationOIDCBackend()
    backend.OIDC_RP_SIGN_ALGO, backend.OIDC_OP_JWKS_ENDPOINT = "RS256", "https://login.example.com/jwks"
    with pytest.raises(SSORefused):
        backend.verify_token(token, nonce="n")
