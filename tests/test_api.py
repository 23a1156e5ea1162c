"""Integration API (/api/v1/): tokens, scopes, tenant separation, idempotency, errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.api.demo import service_account, token_for
from governance.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def call(client, method, path, secret=None, data=None, **headers):
    if secret:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    kwargs = {"content_type": "application/json"} if data is not None else {}
    return (
        getattr(client, method)(path, data=data, **kwargs, **headers)
        if data is not None
        else getattr(client, method)(path, **headers)
    )


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


@pytest.mark.commitment("C25")
def test_create_and_read_incident(client, monitor):
    token, secret = monitor
    r = call(client, "post", "/api/v1/incidents/", secret, incident_body())
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    assert r["Location"] == f"/api/v1/incidents/{pk}/"
    r = call(client, "get", f"/api/v1/incidents/{pk}/", secret)
    assert r.status_code == 200
    assert r.json()["title"] == "Database failover"
    r = call(client, "get", "/api/v1/incidents/", secret)
    assert [i["id"] for i in r.json()["results"]] == [pk]
    assert AuditEvent.objects.filter(action="api.call", data__token=token.pk).count() == 3
