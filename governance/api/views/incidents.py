"""Incidents: list, read, open, add affected organisations, post timeline updates, close
(the same services as the admin's incident pages)."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from governance.api import examples
from governance.api import serializers as s
from governance.api.pagination import page_serializer
from governance.api.views.base import ApiView
from governance.api.views.common import IDEMPOTENCY_PARAM, PageParams, page_response, query_params
from governance.tenancy.models import Organisation
from incidents import services
from incidents.models import AffectedOrganisation, Incident, IncidentUpdate
from incidents.selectors import customer_incidents

PUBLIC = IncidentUpdate.Visibility.PUBLIC
IncidentPage = page_serializer("IncidentPage", s.IncidentSerializer)
AffectedPage = page_serializer("AffectedOrganisationPage", s.AffectedOrganisationSerializer)


def _public_status(qs: QuerySet[Incident]) -> QuerySet[Incident]:
    """Organisation tokens see the status of the last public update, like the portal."""
    last = IncidentUpdate.objects.filter(incident=OuterRef("pk"), visibility=PUBLIC).order_by("-created_at", "-id")
    return qs.annotate(status_shown=Coalesce(Subquery(last.values("status")[:1]), Value("investigating")))


class CustomerIncidentSerializer(s.IncidentSerializer):
    status = s.serializers.ChoiceField(choices=Incident.Status.choices, source="status_shown")


class IncidentViewMixin:
    def incidents(self) -> QuerySet[Incident]:
        if self.is_customer:
            return _public_status(customer_incidents(self.token.organisation))
        return Incident.objects.defer("sensitive_details")  # never sent through the API

    def load(self, pk: int) -> Incident:
        """One incident the token may see: 404 for missing and forbidden alike."""
        try:
            return self.incidents().get(pk=pk)
        except Incident.DoesNotExist as exc:
            raise Http404 from exc

    def shown(self, incident: Incident) -> Incident:
        if hasattr(incident, "status_shown"):
            incident.status = incident.status_shown
        return incident

    def detail(self, incident: Incident) -> dict:
        updates = incident.updates.order_by("-created_at", "-id")
        if self.is_customer:
            updates = updates.filter(visibility=PUBLIC)
        data = s.IncidentSerializer(self.shown(incident)).data
        data["updates"] = s.IncidentUpdateSerializer(updates, many=True).data
        return data


class IncidentList(IncidentViewMixin, ApiView):
    required_scopes = {"GET": "incidents:read", "POST": "incidents:write"}

    @extend_schema(
        operation_id="incidents_list",
        summary="Incidents, newest first",
        parameters=[s.IncidentListParams, PageParams],
        responses={200: IncidentPage},
    )
    def get(self, request):
        params = query_params(request, s.IncidentListParams, PageParams)
        qs = self.incidents()
        if "status" in params:
            qs = qs.filter(**{"status_shown" if self.is_customer else "status": params["status"]})
        if "kind" in params:
            qs = qs.filter(kind=params["kind"])
        if params.get("open") is not None:
            qs = qs.filter(closed_at__isnull=params["open"])
        return page_response(
            request, qs, CustomerIncidentSerializer if self.is_customer else s.IncidentSerializer, params
        )

    @extend_schema(
        operation_id="incidents_create",
        examples=[examples.INCIDENT],
        summary="Open an incident",
        request=s.IncidentCreateSerializer,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: s.IncidentDetailSerializer},
    )
    def post(self, request):
        return self.idempotent(request, lambda: self._create(request))

    def _create(self, request) -> Response:
        body = s.IncidentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        slugs = data.pop("organisations")
        organisations = list(Organisation.objects.filter(slug__in=slugs))
        if unknown := sorted(set(slugs) - {o.slug for o in organisations}):
            raise ValidationError({"organisations": [f"Unknown organisations: {', '.join(unknown)}."]})
        incident = services.incident_create(acting_user=request.user, organisations=organisations, **data)
        incident = self.load(incident.pk)
        return Response(
            self.detail(incident), status=201, headers={"Location": reverse("api:incident", args=[incident.pk])}
        )


class IncidentDetail(IncidentViewMixin, ApiView):
    required_scopes = {"GET": "incidents:read"}

    @extend_schema(
        operation_id="incidents_read",
        summary="One incident with its timeline",
        responses={200: s.IncidentDetailSerializer},
    )
    def get(self, request, pk: int):
        return Response(self.detail(self.load(pk)))


class IncidentUpdates(IncidentViewMixin, ApiView):
    required_scopes = {"POST": "incidents:write"}

    @extend_schema(
        operation_id="incidents_updates_create",
        examples=[examples.INCIDENT_UPDATE],
        summary="Post a timeline update (public updates of specific incidents notify the affected organisations)",
        request=s.IncidentUpdateCreateSerializer,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: s.IncidentUpdateSerializer},
    )
    def post(self, request, pk: int):
        return self.idempotent(request, lambda: self._create(request, pk))

    def _create(self, request, pk: int) -> Response:
        incident = self.load(pk)
        body = s.IncidentUpdateCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        update = services.incident_update_post(incident=incident, acting_user=request.user, **body.validated_data)
        return Response(s.IncidentUpdateSerializer(update).data, status=201)


class IncidentOrganisations(IncidentViewMixin, ApiView):
    required_scopes = {"GET": "incidents:read", "POST": "incidents:write"}

    @extend_schema(
        operation_id="incidents_organisations_list",
        summary="Affected organisations and their notice deadlines (an organisation token sees its own row)",
        parameters=[PageParams],
        responses={200: AffectedPage},
    )
    def get(self, request, pk: int):
        params = query_params(request, PageParams)
        incident = self.load(pk)
        # Scoped model: under an organisation token's scope only its own row exists.
        qs = AffectedOrganisation.objects.filter(incident=incident).select_related("organisation")
        if not self.is_customer:
            qs = qs.defer("organisation__primary_contact_name", "organisation__primary_contact_email")
        return page_response(request, qs, s.AffectedOrganisationSerializer, params, ascending=True)

    @extend_schema(
        operation_id="incidents_organisations_create",
        summary="Add an affected organisation (its notice deadline starts from awareness)",
        request=s.AffectedOrganisationCreateSerializer,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: s.AffectedOrganisationSerializer},
    )
    def post(self, request, pk: int):
        return self.idempotent(request, lambda: self._create(request, pk))

    def _create(self, request, pk: int) -> Response:
        incident = self.load(pk)
        body = s.AffectedOrganisationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        organisation = get_object_or_404(Organisation, slug=body.validated_data["organisation"])
        affected = services.incident_organisation_add(
            incident=incident,
            organisation=organisation,
            acting_user=request.user,
            role=body.validated_data.get("role") or None,
        )
        return Response(s.AffectedOrganisationSerializer(affected).data, status=201)


class IncidentClose(IncidentViewMixin, ApiView):
    required_scopes = {"POST": "incidents:write"}

    @extend_schema(
        operation_id="incidents_close",
        summary="Close a resolved incident (refused while corrective actions are open, C18)",
        request=None,
        parameters=[IDEMPOTENCY_PARAM],
        responses={200: s.IncidentDetailSerializer},
    )
    def post(self, request, pk: int):
        return self.idempotent(request, lambda: self._close(request, pk))

    def _close(self, request, pk: int) -> Response:
        incident = self.load(pk)
        services.incident_close(incident=incident, acting_user=request.user)
        return Response(self.detail(self.load(pk)))


__all__ = ["IncidentClose", "IncidentDetail", "IncidentList", "IncidentOrganisations", "IncidentUpdates"]
