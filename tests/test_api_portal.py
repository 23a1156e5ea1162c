"""Customer portal pages for organisation API tokens (C09, C25)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from governance.api.demo import organisation_token
from governance.api.models import ApiToken
from governance.audit.models import AuditEvent
from governance.tenancy.models import Membership
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _create(client, **over):
    data = {
        "name": "Our SIEM",
        "scopes": ["incidents:read", "access-log:read"],
        "expires_on": (timezone.now() + timedelta(days=30)).date().isoformat(),
        **over,
    }
    return client.post("/portal/api-tokens/", data)


@pytest.mark.commitment("C09")
def test_customer_admin_creates_a_token_seen_once_that_reads_only_its_organisation(client, customer_a, org_a, org_b):
    organisation_token(org_b)
    client.force_login(customer_a)
    r = _create(client)
    assert r.status_code == 200
    assert r["Cache-Control"].startswith("max-age=0") or "no-store" in r["Cache-Control"]
    secret = re.search(r'<pre id="api-token-secret">([^<]+)</pre>', r.content.decode()).group(1)
    token = ApiToken.objects.get(organisation=org_a)
    assert token.user == customer_a and token.kind == "customer" and secret.startswith(token.prefix)
    # Never shown again, and the list holds only this organisation's tokens.
    page = client.get("/portal/api-tokens/").content.decode()
    assert secret not in page and token.prefix in page
    assert ApiToken.objects.filter(organisation=org_b).get().prefix not in page
    # The token works against the API.
    api = client.get("/api/v1/incidents/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.status_code == 200


@pytest.mark.commitment("C25")
def test_only_customer_admins_manage_tokens_and_only_read_scopes(client, org_a):
    viewer = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    client.force_login(viewer)
    assert client.get("/portal/api-tokens/").status_code == 403
    assert _create(client).status_code == 403
    admin = MembershipFactory(organisation=org_a).user
    client.force_login(admin)
    r = _create(client, scopes=["incidents:write"])
    assert r.status_code == 400 and not ApiToken.objects.exists()
    r = _create(client, expires_on=(timezone.now() + timedelta(days=400)).date().isoformat())
    assert r.status_code == 400 and not ApiToken.objects.exists()


@pytest.mark.commitment("C09")
def test_revoke_own_token_and_never_another_organisations(client, customer_a, org_a, org_b):
    mine, secret = organisation_token(org_a)
    theirs, _ = organisation_token(org_b)
    client.force_login(customer_a)
    assert client.get(f"/portal/api-tokens/{theirs.pk}/revoke/").status_code == 404
    assert client.post(f"/portal/api-tokens/{theirs.pk}/revoke/", {"reason": "x"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert client.get(f"/portal/api-tokens/{mine.pk}/revoke/").status_code == 200
    r = client.post(f"/portal/api-tokens/{mine.pk}/revoke/", {"reason": "Leaked in a ticket"})
    assert r.status_code == 302
    mine.refresh_from_db()
    assert mine.revoked_at is not None and mine.revoked_by == customer_a
    assert AuditEvent.objects.filter(action="api.token_revoked", organisation_id=org_a.pk).exists()
    assert client.get("/api/v1/incidents/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
