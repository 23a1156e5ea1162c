"""The JSON API matches Statuspage's public v2 schema (C14): every endpoint, every object,
field names and enums as documented at https://metastatuspage.com/api/v2/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import Component, ComponentGroup
from incidents.status import cache as status_cache
from incidents.status.services import component_save, maintenance_create, maintenance_update_post
from tests.test_portal_incidents import make_incident, manager, post_update

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C14")]

# Statuspage's documented objects (public API v2).
PAGE = {"id", "name", "url", "time_zone", "updated_at"}
STATUS = {"indicator", "description"}
COMPONENT = {
    "id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
    "start_date", "group_id", "page_id", "group", "only_show_if_degraded",
}  # fmt: skip
GROUP = COMPONENT | {"components"}
UPDATE = {
    "id", "status", "body", "incident_id", "created_at", "updated_at", "display_at",
    "affected_components", "deliver_notifications",
}  # fmt: skip
INCIDENT = {
    "id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact",
    "shortlink", "started_at", "page_id", "incident_updates", "components",
}  # fmt: skip
MAINTENANCE = INCIDENT | {"scheduled_for", "scheduled_until"}
AFFECTED_COMPONENT = {"code", "name", "old_status", "new_status"}

INDICATORS = {"none", "minor", "major", "critical"}
COMPONENT_STATUSES = {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}
INCIDENT_STATUSES = {"investigating", "identified", "monitoring", "resolved", "postmortem"}
IMPACTS = {"none", "minor", "major", "critical"}
MAINTENANCE_STATUSES = {"scheduled", "in_progress", "verifying", "completed"}

ENDPOINTS = {
    "/api/v2/summary.json": {"page", "components", "incidents", "scheduled_maintenances", "status"},
    "/api/v2/status.json": {"page", "status"},
    "/api/v2/components.json": {"page", "components"},
    "/api/v2/incidents.json": {"page", "incidents"},
    "/api/v2/incidents/unresolved.json": {"page", "incidents"},
    "/api/v2/scheduled-maintenances.json": {"page", "scheduled_maintenances"},
    "/api/v2/scheduled-maintenances/upcoming.json": {"page", "scheduled_maintenances"},
    "/api/v2/scheduled-maintenances/active.json": {"page", "scheduled_maintenances"},
}


@pytest.fixture(autouse=True)
def _fresh_status_cache():
    status_cache.bump()
    yield
    status_cache.bump()


@pytest.fixture
def world(django_capture_on_commit_callbacks):
    staff = manager()
    with django_capture_on_commit_callbacks(execute=True):
        group = ComponentGroup.objects.create(name="Reporting")
        dashboards = component_save(component=Component(name="Dashboards", group=group), acting_user=staff)
        api = component_save(component=Component(name="API"), acting_user=staff)
        incident = make_incident(title="Slow dashboards", components=[dashboards])
        post_update(incident)
        from incidents.services import incident_update_post

        incident_update_post(
            incident=incident,
            acting_user=staff,
            visibility="public",
            status="monitoring",
            message="Fix deployed.",
            actions_for_customers="None.",
            component_statuses={dashboards.pk: "degraded_performance"},
        )
        start = timezone.now() + timedelta(days=2)
        maintenance_create(
            acting_user=staff, name="Upgrade", scheduled_for=start, scheduled_until=start + timedelta(hours=1)
        )
        active = maintenance_create(
            acting_user=staff,
            name="Network work",
            scheduled_for=timezone.now(),
            scheduled_until=start,
            components=[api],
        )
        maintenance_update_post(
            maintenance=active,
            acting_user=staff,
            status="in_progress",
            body="Started.",
            component_statuses={api.pk: "under_maintenance"},
        )
    return incident


def _check_incident(incident: dict, keys: set[str], statuses: set[str]) -> None:
    assert set(incident) == keys
    assert incident["status"] in statuses
    assert incident["impact"] in IMPACTS | {"maintenance"}
    for update in incident["incident_updates"]:
        assert set(update) == UPDATE
        assert update["incident_id"] == incident["id"]
        for affected in update["affected_components"] or []:
            assert set(affected) == AFFECTED_COMPONENT
    for component in incident["components"]:
        assert set(component) == COMPONENT


@pytest.mark.parametrize("url", ENDPOINTS)
def test_every_endpoint_matches_the_statuspage_schema(client, world, url):
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Access-Control-Allow-Origin"] == "*"
    data = response.json()
    assert set(data) == ENDPOINTS[url]
    assert set(data["page"]) == PAGE and data["page"]["url"].endswith("/status/")
    if "status" in data:
        assert set(data["status"]) == STATUS and data["status"]["indicator"] in INDICATORS
    for component in data.get("components", []):
        assert set(component) == (GROUP if component["group"] else COMPONENT)
        assert component["status"] in COMPONENT_STATUSES
        assert isinstance(component["id"], str)
    for incident in data.get("incidents", []):
        _check_incident(incident, INCIDENT, INCIDENT_STATUSES)
    for maintenance in data.get("scheduled_maintenances", []):
        _check_incident(maintenance, MAINTENANCE, MAINTENANCE_STATUSES)
    assert client.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


def test_endpoints_carry_the_expected_content(client, world):
    summary = client.get("/api/v2/summary.json").json()
    (incident,) = summary["incidents"]
    assert incident["name"] == "Slow dashboards" and incident["status"] == "monitoring"
    assert incident["monitoring_at"] is not None and incident["resolved_at"] is None
    newest = incident["incident_updates"][0]
    assert newest["affected_components"] == [
        {"code": newest["affected_components"][0]["code"], "name": "Dashboards", "old_status": "operational",
         "new_status": "degraded_performance"}
    ]  # fmt: skip
    assert [c["name"] for c in incident["components"]] == ["Dashboards"]
    groups = [c for c in summary["components"] if c["group"]]
    assert [g["name"] for g in groups] == ["Reporting"] and groups[0]["status"] == "degraded_performance"
    assert summary["status"]["indicator"] == "minor"
    assert {m["name"] for m in summary["scheduled_maintenances"]} == {"Upgrade", "Network work"}
    upcoming = client.get("/api/v2/scheduled-maintenances/upcoming.json").json()["scheduled_maintenances"]
    active = client.get("/api/v2/scheduled-maintenances/active.json").json()["scheduled_maintenances"]
    assert [m["name"] for m in upcoming] == ["Upgrade"] and [m["name"] for m in active] == ["Network work"]
    assert active[0]["status"] == "in_progress"


def test_incidents_json_lists_the_50_most_recent(client):
    for n in range(52):
        make_incident(title=f"Incident {n}")
    status_cache.bump()
    incidents = client.get("/api/v2/incidents.json").json()["incidents"]
    assert len(incidents) == 50


def test_resolved_incidents_leave_unresolved_json(client, world, django_capture_on_commit_callbacks):
    from incidents.services import incident_update_post

    with django_capture_on_commit_callbacks(execute=True):
        incident_update_post(
            incident=world,
            acting_user=manager(),
            visibility="public",
            status="resolved",
            message="Resolved.",
            actions_for_customers="None.",
        )
    assert client.get("/api/v2/incidents/unresolved.json").json()["incidents"] == []
    (incident,) = client.get("/api/v2/incidents.json").json()["incidents"]
    assert incident["status"] == "resolved" and incident["resolved_at"] is not None
