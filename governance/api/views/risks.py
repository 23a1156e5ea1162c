"""Risks and change records (C26): read, and create through the risk register's services."""

from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from governance.access.models import User
from governance.api import examples
from governance.api.pagination import PageParams, page_serializer
from governance.api.serializers import BoundedDateTimeField, text
from governance.api.views.base import ApiView
from governance.api.views.common import IDEMPOTENCY_PARAM, page_response, query_params
from governance.risk import changes
from governance.risk import services as risk_services
from governance.risk.models import Category, Change, Risk

SCORE = {"min_value": 1, "max_value": 9, "help_text": "1 up to the active matrix's size (5 by default)."}


class RiskSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    category = serializers.ChoiceField(choices=Category.choices)
    owner = serializers.CharField(source="owner.username", allow_null=True, default=None)
    owner_team = serializers.CharField(source="owner_team.name", allow_null=True, default=None)
    inherent_likelihood = serializers.IntegerField()
    inherent_impact = serializers.IntegerField()
    inherent_level = serializers.CharField()
    residual_likelihood = serializers.IntegerField()
    residual_impact = serializers.IntegerField()
    residual_level = serializers.CharField()
    treatment = serializers.ChoiceField(choices=Risk.Treatment.choices)
    status = serializers.ChoiceField(choices=Risk.Status.choices)
    last_reviewed_on = serializers.DateField(allow_null=True)
    next_review_on = serializers.DateField()
    created_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class RiskCreateSerializer(serializers.Serializer):
    title = text(200)
    description = text(10_000, allow_blank=True, default="")
    category = serializers.ChoiceField(choices=Category.choices, default=Category.SECURITY)
    owner = text(150, help_text="Username of the staff member who owns the risk.")
    assets = text(5000, allow_blank=True, default="")
    threat = text(5000, allow_blank=True, default="")
    vulnerability = text(5000, allow_blank=True, default="")
    inherent_likelihood = serializers.IntegerField(**SCORE)
    inherent_impact = serializers.IntegerField(**SCORE)
    residual_likelihood = serializers.IntegerField(**SCORE)
    residual_impact = serializers.IntegerField(**SCORE)
    treatment = serializers.ChoiceField(choices=Risk.Treatment.choices, default=Risk.Treatment.MITIGATE)


class RiskListParams(serializers.Serializer):
    status = serializers.ChoiceField(choices=Risk.Status.choices, required=False)
    category = serializers.ChoiceField(choices=Category.choices, required=False)


class ChangeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    requester = serializers.CharField(source="requester.username")
    change_type = serializers.ChoiceField(choices=Change.Type.choices)
    status = serializers.ChoiceField(choices=Change.Status.choices)
    affects_customer_data = serializers.BooleanField()
    affects_security_controls = serializers.BooleanField()
    expects_downtime = serializers.BooleanField()
    pre_approved_routine = serializers.BooleanField()
    planned_start = serializers.DateTimeField()
    planned_end = serializers.DateTimeField()
    rollback_plan = serializers.CharField()
    created_at = serializers.DateTimeField()


class ChangeCreateSerializer(serializers.Serializer):
    title = text(200)
    description = text(10_000)
    affects_customer_data = serializers.BooleanField(default=False)
    affects_security_controls = serializers.BooleanField(default=False)
    expects_downtime = serializers.BooleanField(default=False)
    pre_approved_routine = serializers.BooleanField(default=False)
    planned_start = BoundedDateTimeField()
    planned_end = BoundedDateTimeField()
    rollback_plan = text(10_000)


class ChangeListParams(serializers.Serializer):
    status = serializers.ChoiceField(choices=Change.Status.choices, required=False)
    change_type = serializers.ChoiceField(choices=Change.Type.choices, required=False)


RiskPage = page_serializer("RiskPage", RiskSerializer)
ChangePage = page_serializer("ChangePage", ChangeSerializer)


def _risks():
    return Risk.objects.select_related("owner", "owner_team")


class RiskList(ApiView):
    required_scopes = {"GET": "risks:read", "POST": "risks:write"}

    @extend_schema(
        operation_id="risks_list",
        summary="The risk register, newest first",
        parameters=[RiskListParams, PageParams],
        responses={200: RiskPage},
    )
    def get(self, request):
        params = query_params(request, RiskListParams, PageParams)
        qs = _risks()
        for name in ("status", "category"):
            if name in params:
                qs = qs.filter(**{name: params[name]})
        return page_response(request, qs, RiskSerializer, params)

    @extend_schema(
        operation_id="risks_create",
        examples=[examples.RISK],
        summary="Register a risk (scored on the active matrix)",
        request=RiskCreateSerializer,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: RiskSerializer},
    )
    def post(self, request):
        return self.idempotent(request, lambda: self._create(request))

    def _create(self, request) -> Response:
        body = RiskCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        owner = User.objects.filter(
            username=data.pop("owner"), is_active=True, is_staff=True, service_account__isnull=True
        ).first()
        if owner is None:
            raise ValidationError({"owner": ["Name an active staff member."]})
        risk = risk_services.risk_create(acting_user=request.user, owner=owner, **data)
        risk = _risks().get(pk=risk.pk)
        return Response(
            RiskSerializer(risk).data, status=201, headers={"Location": reverse("api:risk", args=[risk.pk])}
        )


class RiskDetail(ApiView):
    required_scopes = {"GET": "risks:read"}

    @extend_schema(operation_id="risks_read", summary="One risk", responses={200: RiskSerializer})
    def get(self, request, pk: int):
        risk = _risks().filter(pk=pk).first()
        if risk is None:
            raise Http404
        return Response(RiskSerializer(risk).data)


class ChangeList(ApiView):
    required_scopes = {"GET": "risks:read", "POST": "risks:write"}

    @extend_schema(
        operation_id="changes_list",
        summary="Change records, newest first",
        parameters=[ChangeListParams, PageParams],
        responses={200: ChangePage},
    )
    def get(self, request):
        params = query_params(request, ChangeListParams, PageParams)
        qs = Change.objects.select_related("requester")
        for name in ("status", "change_type"):
            if name in params:
                qs = qs.filter(**{name: params[name]})
        return page_response(request, qs, ChangeSerializer, params)

    @extend_schema(
        operation_id="changes_create",
        examples=[examples.CHANGE],
        summary="Record a change (a draft; its type follows from the criteria, major ones need an "
        "assessment and approval in the admin)",
        request=ChangeCreateSerializer,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: ChangeSerializer},
    )
    def post(self, request):
        return self.idempotent(request, lambda: self._create(request))

    def _create(self, request) -> Response:
        body = ChangeCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        change = changes.change_create(acting_user=request.user, **body.validated_data)
        change = Change.objects.select_related("requester").get(pk=change.pk)
        return Response(
            ChangeSerializer(change).data, status=201, headers={"Location": reverse("api:changes") + f"#{change.pk}"}
        )
