"""Query counts of every /api/v1/ list are fixed: the same at two sizes (C25 evidence pages
must not slow down as the trail grows)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from governance.access.services import access_log_record
from governance.api import services
from governance.api.demo import service_account, token_for
from governance.retention.backups import backup_register
from governance.risk.changes import change_create
from governance.risk.services import risk_create
from incidents.services import incident_create
from tests.factories import OrganisationFactory, StaffFactory, approved_grant, support_request

pytestmark = pytest.mark.django_db
NOW = "2026-11-27 10:00:00Z"
# Per call: the token with its user (1); for a staff token the role's permissions (2), for an
# organisation token its security policy (1); the page (1, +1 prefetch of named staff); the
# audit event: savepoint, chain head, insert, release (4; +1 advisory lock on PostgreSQL).


def _get(client, path, secret) -> None:
    r = client.get(path, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert r.status_code == 200, r.content
    assert r.json()["results"]


def _grow(kind, org, n):
    manager = StaffFactory(role="Incident manager")
    now = timezone.now()
    for i in range(n):
        if kind == "incidents":
            incident_create(
                acting_user=manager,
                title=f"I{i}",
                description="d",
                kind="specific",
                detected_at=now - timedelta(hours=2),
                aware_at=now - timedelta(hours=1),
                organisations=[org],
            )
        elif kind == "backups":
            backup_register(
                kind="full",
                source="pg",
                started_at=now - timedelta(hours=1),
                finished_at=now,
                size_bytes=1,
                checksum="",
                encrypted=True,
                location="uk-south",
                reported_by="t",
            )
        elif kind == "requests":
            support_request(org)
        elif kind == "risks":
            risk_create(
                acting_user=manager,
                title=f"R{i}",
                owner=manager,
                inherent_likelihood=2,
                inherent_impact=2,
                residual_likelihood=1,
                residual_impact=1,
            )
        elif kind == "changes":
            change_create(
                acting_user=manager,
                title=f"C{i}",
                description="d",
                planned_start=now,
                planned_end=now + timedelta(hours=1),
                rollback_plan="back",
            )
        elif kind == "log":
            grant = approved_grant(org)
            access_log_record(user=grant.request.named_staff.first(), organisation=org, scope="people", objects=[org])


CASES = [
    ("incidents", "/api/v1/incidents/", ["incidents:read"], "Incident manager", False, 8),
    ("incidents", "/api/v1/incidents/", ["incidents:read"], None, True, 7),
    ("incidents", "/api/v1/audit-events/", ["audit:read"], "Auditor", False, 8),
    ("backups", "/api/v1/backups/", ["backups:read"], "Backup reporter", False, 8),
    ("requests", "/api/v1/access-requests/", ["access-requests:read"], "Support engineer", False, 9),
    ("log", "/api/v1/access-log/", ["access-log:read"], None, True, 7),
    ("risks", "/api/v1/risks/", ["risks:read"], "Risk owner", False, 8),
    ("changes", "/api/v1/changes/", ["risks:read"], "Risk owner", False, 8),
]


@pytest.mark.commitment("C25")
@pytest.mark.parametrize(("kind", "path", "scopes", "role", "customer", "queries"), CASES)
def test_list_query_count_does_not_grow(
    client, settings, django_assert_num_queries, kind, path, scopes, role, customer, queries
):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "apiq"}}
    cache.clear()
    org = OrganisationFactory(slug="acme")
    if customer:
        from tests.factories import MembershipFactory

        admin = MembershipFactory(organisation=org).user
        _, secret = services.customer_token_issue(
            organisation=org, name="t", scopes=scopes, expires_at=timezone.now() + timedelta(days=5), acting_user=admin
        )
    else:
        _, secret = token_for(service_account("svc-q", role).user, scopes)
    if connection.vendor == "postgresql":
        queries += 1
    with time_machine.travel(NOW, tick=False):
        client.get(path, HTTP_AUTHORIZATION=f"Bearer {secret}")  # the minute's last-used write
        for grow in (2, 10):
            _grow(kind, org, grow)
            with django_assert_num_queries(queries):
                _get(client, path, secret)
