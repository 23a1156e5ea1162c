"""Backup runs, the audit trail, support-access requests and the organisation's access log."""

from __future__ import annotations

from datetime import timedelta

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from governance.access import services as access_services
from governance.access.models import AccessLogEntry, SupportAccessRequest, User
from governance.api import examples
from governance.api import serializers as s
from governance.api.pagination import page_serializer
from governance.api.views.base import ApiView
from governance.api.views.common import IDEMPOTENCY_PARAM, PageParams, page_response, query_params
from governance.audit.models import AuditEvent
from governance.retention.backups import backup_register
from governance.retention.models import BackupRecord
from governance.tenancy.models import Organisation

BackupPage = page_serializer("BackupRecordPage", s.BackupRecordSerializer)
AuditPage = page_serializer("AuditEventPage", s.AuditEventSerializer)
SupportPage = page_serializer("SupportRequestPage", s.SupportRequestSerializer)
AccessLogPage = page_serializer("AccessLogPage", s.AccessLogEntrySerializer)


# --- backups (C24) ------------------------------------------------------------------------


class BackupList(ApiView):
    required_scopes = {"GET": "backups:read", "POST": "backups:write"}

    @extend_schema(
        operation_id="backups_list",
        summary="Backup runs in the register, newest first",
        parameters=[s.BackupListParams, PageParams],
        responses={200: BackupPage},
    )
    def get(self, request):
        params = query_params(request, s.BackupListParams, PageParams)
        qs = BackupRecord.objects.all()
        if "kind" in params:
            qs = qs.filter(kind=params["kind"])
        if "status" in params:
            qs = qs.filter(status=params["status"])
        if "finished_since" in params:
            qs = qs.filter(finished_at__gte=params["finished_since"])
        return page_response(request, qs, s.BackupRecordSerializer, params)

    @extend_schema(
        operation_id="backups_register",
        examples=[examples.BACKUP],
        summary="Register a backup run (expires after 90 days)",
        request=s.BackupRegisterSerializer,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: s.BackupRecordSerializer},
    )
    def post(self, request):
        return self.idempotent(request, lambda: self._create(request))

    def _create(self, request) -> Response:
        body = s.BackupRegisterSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        record = backup_register(**body.validated_data, reported_by=f"api:{self.token.prefix}")
        return Response(
            s.BackupRecordSerializer(record).data,
            status=201,
            headers={"Location": reverse("api:backups") + f"#{record.pk}"},
        )


# --- audit trail (C25) ------------------------------------------------------------------------


class AuditEventList(ApiView):
    required_scopes = {"GET": "audit:read"}

    @extend_schema(
        operation_id="audit_events_list",
        summary="The audit trail, oldest first; poll with next_cursor to get only new events",
        parameters=[s.AuditListParams, PageParams],
        responses={200: AuditPage},
    )
    def get(self, request):
        params = query_params(request, s.AuditListParams, PageParams)
        qs = AuditEvent.objects.all()
        if "since" in params:
            qs = qs.filter(created_at__gte=params["since"])
        if "until" in params:
            qs = qs.filter(created_at__lt=params["until"])
        if action := params.get("action"):
            qs = qs.filter(action__startswith=action) if action.endswith(".") else qs.filter(action=action)
        return page_response(request, qs, s.AuditEventSerializer, params, ascending=True)


# --- support-access requests (C03, C04) ----------------------------------------------------


def _support_queryset():
    return SupportAccessRequest.objects.select_related("organisation", "requester").prefetch_related("named_staff")


class SupportRequestSerializerOut(s.SupportRequestSerializer):
    named_staff = s.serializers.SerializerMethodField()

    def get_named_staff(self, obj) -> list[str]:
        return [u.username for u in obj.named_staff.all()]

    def to_representation(self, instance):
        instance.requested_duration_hours = instance.requested_duration.total_seconds() / 3600
        return super().to_representation(instance)


class SupportRequestList(ApiView):
    required_scopes = {"GET": "access-requests:read", "POST": "access-requests:write"}

    @extend_schema(
        operation_id="access_requests_list",
        summary="Support-access requests, newest first",
        parameters=[s.SupportListParams, PageParams],
        responses={200: SupportPage},
    )
    def get(self, request):
        params = query_params(request, s.SupportListParams, PageParams)
        qs = _support_queryset()
        if "status" in params:
            qs = qs.filter(status=params["status"])
        if "organisation" in params:
            qs = qs.filter(organisation__slug=params["organisation"])
        return page_response(request, qs, SupportRequestSerializerOut, params)

    @extend_schema(
        operation_id="access_requests_create",
        summary="Open a support-access request (needs a security officer's approval and the customer's consent)",
        request=s.SupportRequestCreateSerializer,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: s.SupportRequestSerializer},
    )
    def post(self, request):
        return self.idempotent(request, lambda: self._create(request))

    def _create(self, request) -> Response:
        body = s.SupportRequestCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organisation = Organisation.objects.filter(slug=data["organisation"]).first()
        if organisation is None:
            raise ValidationError({"organisation": ["Unknown organisation."]})
        names = sorted(set(data["named_staff"]))
        # Only people act on customer data: a service account is never named.
        named = list(User.objects.filter(username__in=names, service_account__isnull=True))
        if unknown := sorted(set(names) - {u.username for u in named}):
            raise ValidationError({"named_staff": [f"Unknown staff: {', '.join(unknown)}."]})
        created = access_services.support_request_create(
            organisation=organisation,
            requester=request.user,
            reason_type=data["reason_type"],
            ticket_reference=data["ticket_reference"],
            justification=data["justification"],
            scope=data["scope"],
            requested_start=data["requested_start"],
            requested_duration=timedelta(hours=data["requested_duration_hours"]),
            named_staff=named,
        )
        row = _support_queryset().get(pk=created.pk)
        return Response(
            SupportRequestSerializerOut(row).data,
            status=201,
            headers={"Location": reverse("api:access-request", args=[row.pk])},
        )


class SupportRequestDetail(ApiView):
    required_scopes = {"GET": "access-requests:read"}

    @extend_schema(
        operation_id="access_requests_read",
        summary="One support-access request and its status",
        responses={200: s.SupportRequestSerializer},
    )
    def get(self, request, pk: int):
        row = _support_queryset().filter(pk=pk).first()
        if row is None:
            raise Http404
        return Response(SupportRequestSerializerOut(row).data)


# --- the organisation's access log (organisation tokens, C02) --------------------------------


class AccessLogList(ApiView):
    required_scopes = {"GET": "access-log:read"}

    @extend_schema(
        operation_id="access_log_list",
        summary="Every view or change of your organisation's data by staff, newest first",
        parameters=[s.AccessLogParams, PageParams],
        responses={200: AccessLogPage},
    )
    def get(self, request):
        params = query_params(request, s.AccessLogParams, PageParams)
        # Scoped model: under the token's tenant scope only its organisation's rows exist (C09).
        qs = AccessLogEntry.objects.select_related("staff")
        if "since" in params:
            qs = qs.filter(at__gte=params["since"])
        if "until" in params:
            qs = qs.filter(at__lt=params["until"])
        return page_response(request, qs, s.AccessLogEntrySerializer, params)
