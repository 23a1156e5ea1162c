"""A JSON API compatible with Statuspage's public v2 endpoints (C14), so status
aggregators and monitoring tools read it unchanged. Field names and enums are
Statuspage's; ids are strings. Incidents come only from `public_incidents()`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse

from incidents.models import Component, ComponentGroup, Incident, ScheduledMaintenance
from incidents.selectors import public_incidents
from incidents.status import snapshot
from incidents.status.cache import public_cached
from incidents.status.meta import PAGE_ID, page_meta, shortlink

RECENT = 50


def _ts(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if at else None


def _page() -> dict:
    meta = page_meta()
    return {**meta, "updated_at": _ts(meta["updated_at"])}


def _component(c: Component) -> dict:
    return {
        "id": f"c{c.pk}",
        "name": c.name,
        "status": c.status,
        "created_at": _ts(c.created_at),
        "updated_at": _ts(c.updated_at),
        "position": c.position,
        "description": c.description or None,
        "showcase": c.showcase,
        "start_date": c.start_date.isoformat() if c.start_date else None,
        "group_id": f"g{c.group_id}" if c.group_id else None,
        "page_id": PAGE_ID,
        "group": False,
        "only_show_if_degraded": c.only_show_if_degraded,
    }


def _group(g: ComponentGroup, members: list[Component]) -> dict:
    """Statuspage lists a group as a component with `group: true` and its members' ids."""
    worst = max((c.status for c in members), key=snapshot.STATUS_RANK.__getitem__, default="operational")
    return {
        "id": f"g{g.pk}",
        "name": g.name,
        "status": worst,
        "created_at": _ts(g.created_at),
        "updated_at": _ts(g.updated_at),
        "position": g.position,
        "description": g.description or None,
        "showcase": False,
        "start_date": None,
        "group_id": None,
        "page_id": PAGE_ID,
        "group": True,
        "only_show_if_degraded": False,
        "components": [f"c{c.pk}" for c in members],
    }


def _components(components: list[Component]) -> list[dict]:
    members: dict[int, list[Component]] = {}
    for c in components:
        if c.group_id:
            members.setdefault(c.group_id, []).append(c)
    return [*(_group(g, members.get(g.pk, [])) for g in snapshot.groups()), *map(_component, components)]


def _component_refs(components: Iterable[Component]) -> list[dict]:
    return [_component(c) for c in components]


def _public_incidents(*, unresolved: bool = False):
    return public_incidents(unresolved=unresolved).prefetch_related("public_updates__component_changes__component")


def _incident(i: Incident) -> dict:
    updates = i.public_updates  # public only: the visibility rule's prefetch
    first_at = {}
    for u in reversed(updates):
        first_at.setdefault(u.status, u.created_at)
    return {
        "id": str(i.pk),
        "name": i.title,
        "status": i.public_status,
        "created_at": _ts(i.created_at),
        "updated_at": _ts(i.public_updated_at),
        "monitoring_at": _ts(first_at.get(Incident.Status.MONITORING)),
        "resolved_at": _ts(first_at.get(Incident.Status.RESOLVED)),
        "impact": i.severity,
        "shortlink": shortlink(i.pk),
        "started_at": _ts(i.aware_at),
        "page_id": PAGE_ID,
        "incident_updates": [
            {
                "id": str(u.pk),
                "status": u.status,
                "body": u.message
                + (f"\n\nWhat you should do: {u.actions_for_customers}" if u.actions_for_customers else ""),
                "incident_id": str(i.pk),
                "created_at": _ts(u.created_at),
                "updated_at": _ts(u.created_at),
                "display_at": _ts(u.created_at),
                "affected_components": [
                    {
                        "code": f"c{change.component_id}",
                        "name": change.component.name,
                        "old_status": change.previous_status or change.status,
                        "new_status": change.status,
                    }
                    for change in u.component_changes.all()
                ]
                or None,
                "deliver_notifications": True,
            }
            for u in updates
        ],
        "components": _component_refs(i.status_components.all()),
    }


def _maintenance(m: ScheduledMaintenance) -> dict:
    updates = list(m.updates.all())
    started = [u.created_at for u in updates if u.status == ScheduledMaintenance.Status.IN_PROGRESS]
    completed = [u.created_at for u in updates if u.status == ScheduledMaintenance.Status.COMPLETED]
    return {
        "id": f"m{m.pk}",
        "name": m.name,
        "status": m.status,
        "created_at": _ts(m.created_at),
        "updated_at": _ts(m.updated_at),
        "monitoring_at": None,
        "resolved_at": _ts(min(completed)) if completed else None,
        "impact": "maintenance",
        "shortlink": page_meta()["url"],
        "started_at": _ts(min(started)) if started else _ts(m.scheduled_for),
        "page_id": PAGE_ID,
        "incident_updates": [
            {
                "id": f"mu{u.pk}",
                "status": u.status,
                "body": u.body,
                "incident_id": f"m{m.pk}",
                "created_at": _ts(u.created_at),
                "updated_at": _ts(u.created_at),
                "display_at": _ts(u.created_at),
                "affected_components": None,
                "deliver_notifications": True,
            }
            for u in updates
        ],
        "components": _component_refs(m.components.all()),
        "scheduled_for": _ts(m.scheduled_for),
        "scheduled_until": _ts(m.scheduled_until),
    }


def _status(components: list[Component], unresolved: list[Incident]) -> dict:
    indicator, description = snapshot.indicator(components, unresolved)
    return {"indicator": indicator, "description": description}


def _json(data: dict) -> HttpResponse:
    return HttpResponse(json.dumps(data, separators=(",", ":")), content_type="application/json")


UPCOMING = (ScheduledMaintenance.Status.SCHEDULED,)


@public_cached("api:summary")
def summary(request: HttpRequest) -> HttpResponse:
    components = snapshot.components()
    unresolved = list(_public_incidents(unresolved=True))
    return _json(
        {
            "page": _page(),
            "components": _components(components),
            "incidents": [_incident(i) for i in unresolved],
            "scheduled_maintenances": [
                _maintenance(m) for m in snapshot.maintenances(statuses=(*snapshot.ACTIVE, *UPCOMING))
            ],
            "status": _status(components, unresolved),
        }
    )


@public_cached("api:status")
def status(request: HttpRequest) -> HttpResponse:
    # The indicator needs impacts only, not timelines: skip the prefetches.
    unresolved = list(public_incidents(unresolved=True).prefetch_related(None).only("pk", "severity"))
    return _json({"page": _page(), "status": _status(snapshot.components(), unresolved)})


@public_cached("api:components")
def components(request: HttpRequest) -> HttpResponse:
    return _json({"page": _page(), "components": _components(snapshot.components())})


@public_cached("api:incidents")
def incidents(request: HttpRequest) -> HttpResponse:
    return _json({"page": _page(), "incidents": [_incident(i) for i in _public_incidents()[:RECENT]]})


@public_cached("api:incidents_unresolved")
def incidents_unresolved(request: HttpRequest) -> HttpResponse:
    return _json({"page": _page(), "incidents": [_incident(i) for i in _public_incidents(unresolved=True)]})


def _maintenance_view(name: str, statuses, limit=None):
    @public_cached(f"api:{name}")
    def view(request: HttpRequest) -> HttpResponse:
        found = snapshot.maintenances(statuses=statuses, limit=limit)
        return _json({"page": _page(), "scheduled_maintenances": [_maintenance(m) for m in found]})

    view.__name__ = name
    return view


maintenances = _maintenance_view("maintenances", None, RECENT)
maintenances_upcoming = _maintenance_view("maintenances_upcoming", UPCOMING)
maintenances_active = _maintenance_view("maintenances_active", snapshot.ACTIVE)
