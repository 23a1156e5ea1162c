"""Security officers manage service accounts and their tokens in the admin (C25)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from governance.api.demo import service_account, token_for
from governance.api.models import ApiToken, ServiceAccount
from governance.audit.models import AuditEvent
from tests.factories import StaffFactory
from tests.helpers import otp_client

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C25")]


def test_officer_creates_a_service_account_and_issues_a_token_shown_once():
    officer = StaffFactory(role="Security officer")
    client = otp_client(officer)
    r = client.post(
        "/admin/api/serviceaccount/add/",
        {"username": "svc-alerts", "description": "Alertmanager", "role": "Incident manager"},
    )
    assert r.status_code == 302, r.content[:2000]
    account = ServiceAccount.objects.get(user__username="svc-alerts")
    assert account.user.groups.get().name == "Incident manager"
    expires = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S")
    r = client.post(
        "/admin/api/apitoken/add/",
        {
            "service_account": account.pk,
            "name": "Alertmanager prod",
            "scopes": ["incidents:read", "incidents:write"],
            "expires_at": expires,
            "rate_limit_per_minute": "",
        },
    )
    assert r.status_code == 200, r.content[:3000]
    secret = re.search(r'<pre id="api-token-secret"[^>]*>([^<]+)</pre>', r.content.decode()).group(1)
    token = ApiToken.objects.get()
    assert secret.startswith(token.prefix) and token.created_by == officer
    # Never again: the change page shows the prefix, not the secret.
    page = client.get(f"/admin/api/apitoken/{token.pk}/change/").content.decode()
    assert token.prefix in page and secret not in page
    r = client.post(
        "/admin/api/apitoken/add/",
        {
            "service_account": account.pk,
            "name": "too much",
            "scopes": ["audit:read"],
            "expires_at": expires,
        },
    )
    assert r.status_code == 200 and b"lacks the permissions" in r.content


def test_officer_revokes_tokens_with_a_reason():
    officer = StaffFactory(role="Security officer")
    account = service_account("svc-alerts", "Incident manager")
    token, secret = token_for(account.user, ["incidents:read"])
    client = otp_client(officer)
    r = client.post("/admin/api/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert r.status_code == 200 and b"Revoke" in r.content
    r = client.post(
        "/admin/api/apitoken/", {"action": "revoke", "_selected_action": [token.pk], "apply": "1", "reason": "Leaked"}
    )
    assert r.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at and token.revoke_reason == "Leaked" and token.revoked_by == officer
    assert AuditEvent.objects.filter(action="api.token_revoked", actor=officer).exists()
    assert client.get("/api/v1/incidents/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def test_other_roles_cannot_issue_tokens_and_auditors_only_read():
    account = service_account("svc-alerts", "Incident manager")
    manager = otp_client(StaffFactory(role="Incident manager"))
    assert manager.get("/admin/api/apitoken/add/").status_code == 403
    auditor = otp_client(StaffFactory(role="Auditor"))
    assert auditor.get("/admin/api/apitoken/").status_code == 200
    assert auditor.get("/admin/api/apitoken/add/").status_code == 403
    assert auditor.get("/admin/api/serviceaccount/add/").status_code == 403
    assert account.pk
