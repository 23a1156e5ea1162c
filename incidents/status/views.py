"""The public status page and its incident pages (C14).

Public and cached: they render without the request (no user, session or CSRF token can
reach the output) and show only what `public_incidents()` lets through.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.template.loader import render_to_string

from incidents.models import Incident
from incidents.selectors import public_incidents
from incidents.status import snapshot
from incidents.status.cache import public_cached
from incidents.status.meta import page_meta

UPCOMING = (snapshot.ScheduledMaintenance.Status.SCHEDULED,)


def labelled(incidents) -> list[Incident]:
    """The status the public sees is the last public update's (see `with_public_timeline`)."""
    incidents = list(incidents)
    for incident in incidents:
        incident.public_status_label = Incident.Status(incident.public_status).label
    return incidents


def page_context() -> dict:
    """Everything the page shows, in a fixed number of queries."""
    components = snapshot.components()
    unresolved = labelled(public_incidents(unresolved=True))
    indicator, description = snapshot.indicator(components, unresolved)
    history = snapshot.history(components)
    maintenances = snapshot.maintenances(statuses=(*snapshot.ACTIVE, *UPCOMING))
    return {
        "page": page_meta(),
        "indicator": indicator,
        "description": description,
        "sections": [
            (section.group, [(c, history[c.pk]) for c in section.components])
            for section in snapshot.sections(snapshot.groups(), components)
        ],
        "incidents": unresolved,
        "active_maintenances": [m for m in maintenances if m.status in snapshot.ACTIVE],
        "upcoming_maintenances": [m for m in maintenances if m.status not in snapshot.ACTIVE],
        "history_days": snapshot.HISTORY_DAYS,
    }


@public_cached("page")
def status_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(render_to_string("status/page.html", page_context()))


@public_cached("incident")
def incident_page(request: HttpRequest, pk: int) -> HttpResponse:
    incident = next(iter(labelled(public_incidents().filter(pk=pk))), None)
    if incident is None:
        raise Http404("No such public incident.")  # specific incidents look missing
    return HttpResponse(render_to_string("status/incident.html", {"page": page_meta(), "incident": incident}))
