"""Incidents seen by the customer (C09, C14, C16, C19, C20).

Every view loads through incidents.selectors: the organisation sees general incidents
and the specific ones that name it, their public updates only, the evidence shared
with it, and the RCA once published. Anything else is 404, missing or forbidden alike.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from governance.portal.access import customer_required
from incidents import evidence as evidence_services
from incidents import reports, selectors
from incidents.models import Incident, ReportRequest
from incidents.status import snapshot
from incidents.status import views as status_views

KINDS = dict(ReportRequest.Kind.choices)


def _private_file(data: bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


@customer_required
@require_GET
def incident_list(request):
    incidents = selectors.customer_incidents_with_last_update(request.organisation)
    return render(request, "portal/incidents/list.html", {"incidents": incidents})


@customer_required
@require_GET
@never_cache
def status(request):
    """The status page as a customer sees it: the public components and maintenance, and
    the unresolved incidents they may see (general ones and their own specific ones)."""
    components = snapshot.components()
    incidents = status_views.labelled(
        selectors.with_public_timeline(selectors.customer_incidents(request.organisation)).exclude(
            public_status__in=selectors.RESOLVED
        )
    )
    public = [i for i in incidents if i.kind == Incident.Kind.GENERAL]
    indicator, description = snapshot.indicator(components, public)
    maintenances = snapshot.maintenances(statuses=(*snapshot.ACTIVE, *status_views.UPCOMING))
    return render(
        request,
        "portal/incidents/status.html",
        {
            "indicator": indicator,
            "description": description,
            "sections": snapshot.sections(snapshot.groups(), components),
            "incidents": incidents,
            "maintenances": maintenances,
        },
    )


@customer_required
@require_http_methods(["GET", "POST"])
def incident_detail(request, pk: int):
    organisation = request.organisation
    status = 200
    if request.method == "POST":
        kind = request.POST.get("kind", "")
        if kind not in KINDS:
            messages.error(request, "Choose the complete report or the root cause analysis.")
            status = 400
    incident = selectors.customer_incident_or_404(organisation, pk)
    if request.method == "POST" and status == 200:
        try:
            reports.report_request_create(
                incident=incident, organisation=organisation, acting_user=request.user, kind=kind
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            status = 400
        except PermissionDenied as exc:
            messages.error(request, str(exc))
            status = 403
        else:
            messages.success(request, f"{KINDS[kind]} requested.")
            return redirect("portal:incident_detail", pk=incident.pk)
    rca = selectors.published_rca(incident)
    requests = {
        r.kind: r
        for r in ReportRequest.objects.filter(incident=incident, organisation=organisation)
        .select_related("requested_by")
        .order_by("requested_at")
    }
    return render(
        request,
        "portal/incidents/detail.html",
        {
            "incident": incident,
            "updates": selectors.public_updates(incident),
            "evidence": selectors.shared_evidence(organisation, incident),
            "rca": rca,
            "rca_html": reports.rca_html(rca) if rca else "",
            "report_request": requests.get(ReportRequest.Kind.REPORT),
            "rca_request": requests.get(ReportRequest.Kind.RCA),
        },
        status=status,
    )


@customer_required
@require_GET
@never_cache
def incident_rca_pdf(request, pk: int):
    incident = selectors.customer_incident_or_404(request.organisation, pk)
    rca = selectors.published_rca(incident)
    if rca is None:
        raise Http404("No published RCA.")  # not published yet looks like no incident at all
    return _private_file(reports.rca_pdf(rca), f"rca-incident-{incident.pk}.pdf", "application/pdf")


@customer_required
@require_GET
@never_cache
def evidence_download(request, pk: int):
    evidence = selectors.customer_evidence_or_404(request.organisation, pk)
    data, filename, content_type = evidence_services.evidence_open(evidence=evidence, user=request.user)
    return _private_file(data, filename, content_type)
