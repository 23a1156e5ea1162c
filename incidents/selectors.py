"""What a customer organisation may see of incidents (C09, C14): one rule for every view.

A customer sees every general incident and the specific incidents that name its
organisation (an AffectedOrganisation row), and only their public updates. The
filter on the organisation is explicit, so it holds whether or not a tenant scope is
active (Incident itself is not a scoped model).
"""

from __future__ import annotations

from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404

from governance.tenancy.models import Organisation
from incidents.models import AffectedOrganisation, Evidence, Incident, IncidentUpdate, RootCauseAnalysis

PUBLIC = IncidentUpdate.Visibility.PUBLIC


def _affects(organisation: Organisation) -> Exists:
    return Exists(
        AffectedOrganisation.objects.with_scopes_disabled().filter(
            incident=OuterRef("pk"), organisation_id=organisation.pk
        )
    )


def customer_incidents(organisation: Organisation) -> QuerySet[Incident]:
    """General incidents and the specific ones affecting `organisation`, newest first."""
    return (
        Incident.objects.filter(Q(kind=Incident.Kind.GENERAL) | Q(_affects(organisation)))
        .defer("sensitive_details")
        .order_by("-aware_at", "-pk")
    )


def customer_incidents_with_last_update(organisation: Organisation) -> QuerySet[Incident]:
    """`customer_incidents` with the last public update's time and message, in one query."""
    last = IncidentUpdate.objects.filter(incident=OuterRef("pk"), visibility=PUBLIC).order_by("-created_at", "-id")
    return customer_incidents(organisation).annotate(
        last_public_at=Subquery(last.values("created_at")[:1]),
        last_public_message=Subquery(last.values("message")[:1]),
    )


def customer_incident_or_404(organisation: Organisation, pk: int) -> Incident:
    """One incident the organisation may see; 404 for missing and forbidden alike."""
    try:
        return customer_incidents(organisation).get(pk=pk)
    except (Incident.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404 from exc


def with_public_timeline(incidents: QuerySet[Incident]) -> QuerySet[Incident]:
    """What the public may know of `incidents`: only public updates, prefetched into
    `incident.public_updates` (newest first), the affected components, and the status and
    time of the last public update (`public_status`, `public_updated_at`): an internal
    update's status change is not public. Views never read `incident.updates`."""
    last = IncidentUpdate.objects.filter(incident=OuterRef("pk"), visibility=PUBLIC).order_by("-created_at", "-id")
    return (
        incidents.defer("sensitive_details")
        .annotate(
            public_status=Coalesce(Subquery(last.values("status")[:1]), Value(Incident.Status.INVESTIGATING.value)),
            public_updated_at=Coalesce(Subquery(last.values("created_at")[:1]), F("created_at")),
        )
        .prefetch_related(
            Prefetch(
                "updates",
                queryset=IncidentUpdate.objects.filter(visibility=PUBLIC).order_by("-created_at", "-id"),
                to_attr="public_updates",
            ),
            "status_components",
        )
    )


RESOLVED = (Incident.Status.RESOLVED, Incident.Status.POSTMORTEM)


def public_incidents(*, unresolved: bool = False) -> QuerySet[Incident]:
    """THE public visibility rule (C14): general incidents only, public updates only. The
    status page, its feeds, its JSON API (and later its notifications) read nothing else."""
    qs = with_public_timeline(Incident.objects.filter(kind=Incident.Kind.GENERAL))
    if unresolved:
        qs = qs.exclude(public_status__in=RESOLVED)
    return qs.order_by("-aware_at", "-pk")


def public_updates(incident: Incident) -> QuerySet[IncidentUpdate]:
    """The incident's public timeline; internal updates never leave staff screens."""
    return IncidentUpdate.objects.filter(incident=incident, visibility=PUBLIC).order_by("-created_at", "-id")


def shared_evidence(organisation: Organisation, incident: Incident | None = None) -> QuerySet[Evidence]:
    """Evidence shared with `organisation` on incidents it may see."""
    qs = Evidence.objects.filter(shared_with=organisation.pk, incident__in=customer_incidents(organisation))
    if incident is not None:
        qs = qs.filter(incident=incident)
    return qs.order_by("-uploaded_at", "-pk")


def customer_evidence_or_404(organisation: Organisation, pk: int) -> Evidence:
    try:
        return shared_evidence(organisation).select_related("incident").get(pk=pk)
    except (Evidence.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404 from exc


def published_rca(incident: Incident) -> RootCauseAnalysis | None:
    return RootCauseAnalysis.objects.filter(incident=incident, published_at__isnull=False).first()
