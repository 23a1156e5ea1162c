"""Request and response shapes of /api/v1/ (they are the OpenAPI schema). Input
serializers only check types and bounds; the rules stay in the services."""

from __future__ import annotations

from datetime import UTC, datetime

from rest_framework import serializers

from governance.access.models import DataScope, ReasonType, SupportAccessRequest
from governance.retention.models import BackupRecord
from governance.tenancy.models import DataProtectionRole
from incidents.models import Incident, IncidentUpdate

# Dates outside this range are refused as input: nothing we record is earlier, and
# arithmetic on year-9999 dates (deadlines, expiry) would overflow.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_INT = 2_147_483_647
MAX_BIGINT = 2**63 - 1


class BoundedDateTimeField(serializers.DateTimeField):
    def to_internal_value(self, value):
        value = super().to_internal_value(value)
        if not EARLIEST <= value < LATEST:
            raise serializers.ValidationError("Give a time between 2000 and 2100.")
        return value


def text(max_length: int, **kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=max_length, **kwargs)


# --- incidents ---------------------------------------------------------------------------


class IncidentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    description = serializers.CharField()
    kind = serializers.ChoiceField(choices=Incident.Kind.choices)
    severity = serializers.ChoiceField(choices=Incident.Severity.choices)
    status = serializers.ChoiceField(
        choices=Incident.Status.choices, help_text="For organisation tokens: the status of the last public update."
    )
    personal_data_breach = serializers.BooleanField()
    detected_at = serializers.DateTimeField()
    aware_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class IncidentUpdateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    visibility = serializers.ChoiceField(choices=IncidentUpdate.Visibility.choices)
    status = serializers.ChoiceField(choices=Incident.Status.choices)
    message = serializers.CharField()
    actions_for_customers = serializers.CharField()
    created_at = serializers.DateTimeField()


class AffectedOrganisationSerializer(serializers.Serializer):
    organisation = serializers.SlugField(source="organisation.slug")
    organisation_name = serializers.CharField(source="organisation.name")
    role = serializers.ChoiceField(choices=DataProtectionRole.choices)
    deadline_at = serializers.DateTimeField(allow_null=True, help_text="Breach-notice deadline (C12, C13).")
    notified_at = serializers.DateTimeField(allow_null=True)
    missed_at = serializers.DateTimeField(allow_null=True)


class IncidentDetailSerializer(IncidentSerializer):
    updates = IncidentUpdateSerializer(many=True, help_text="Newest first; organisation tokens see public ones only.")


class IncidentCreateSerializer(serializers.Serializer):
    title = text(200)
    description = text(10_000, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=Incident.Kind.choices)
    severity = serializers.ChoiceField(choices=Incident.Severity.choices, default=Incident.Severity.MINOR)
    detected_at = BoundedDateTimeField()
    aware_at = BoundedDateTimeField()
    personal_data_breach = serializers.BooleanField(default=False)
    data_categories = serializers.ListField(child=text(100), max_length=50, default=list)
    approx_people = serializers.IntegerField(min_value=0, max_value=MAX_INT, required=False, allow_null=True)
    approx_records = serializers.IntegerField(min_value=0, max_value=MAX_INT, required=False, allow_null=True)
    affected_components = serializers.ListField(child=text(100), max_length=50, default=list)
    organisations = serializers.ListField(
        child=serializers.SlugField(max_length=80),
        max_length=1000,
        default=list,
        help_text="Slugs of the affected organisations (a specific incident names at least one).",
    )


class IncidentUpdateCreateSerializer(serializers.Serializer):
    visibility = serializers.ChoiceField(choices=IncidentUpdate.Visibility.choices)
    status = serializers.ChoiceField(choices=Incident.Status.choices)
    message = text(10_000)
    actions_for_customers = text(
        10_000, allow_blank=True, default="", help_text="Required on public updates: what customers should do (C17)."
    )
    late_reason = text(10_000, allow_blank=True, default="")


class AffectedOrganisationCreateSerializer(serializers.Serializer):
    organisation = serializers.SlugField(max_length=80)
    role = serializers.ChoiceField(choices=DataProtectionRole.choices, required=False, allow_null=True)


class IncidentListParams(serializers.Serializer):
    status = serializers.ChoiceField(choices=Incident.Status.choices, required=False)
    kind = serializers.ChoiceField(choices=Incident.Kind.choices, required=False)
    open = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="true: not closed; false: closed."
    )


# --- backups -----------------------------------------------------------------------------


class BackupRecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=BackupRecord.Kind.choices)
    source = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    size_bytes = serializers.IntegerField()
    checksum = serializers.CharField()
    encrypted = serializers.BooleanField()
    location = serializers.CharField()
    artefact = serializers.CharField()
    status = serializers.ChoiceField(choices=BackupRecord.Status.choices)
    expires_at = serializers.DateTimeField()
    expired_at = serializers.DateTimeField(allow_null=True)
    reported_by = serializers.CharField()


class BackupRegisterSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=BackupRecord.Kind.choices)
    source = text(200, help_text="Tool and database, e.g. 'pgbackrest:main'.")
    started_at = BoundedDateTimeField()
    finished_at = BoundedDateTimeField()
    size_bytes = serializers.IntegerField(min_value=0, max_value=MAX_BIGINT, default=0)
    checksum = text(128, allow_blank=True, default="")
    encrypted = serializers.BooleanField()
    location = text(100)
    artefact = text(500, allow_blank=True, default="", help_text="Name in the backup storage (relative path).")
    succeeded = serializers.BooleanField(default=True)

    def validate_artefact(self, value: str) -> str:
        if value.startswith(("/", "\\")) or ".." in value.replace("\\", "/").split("/"):
            raise serializers.ValidationError("Give a relative name inside the backup storage.")
        return value


class BackupListParams(serializers.Serializer):
    kind = serializers.ChoiceField(choices=BackupRecord.Kind.choices, required=False)
    status = serializers.ChoiceField(choices=BackupRecord.Status.choices, required=False)
    finished_since = BoundedDateTimeField(required=False)


# --- audit trail -------------------------------------------------------------------------


class AuditEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    actor_id = serializers.IntegerField(allow_null=True)
    actor = serializers.CharField(source="actor_repr")
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    object_repr = serializers.CharField()
    organisation_id = serializers.IntegerField(allow_null=True)
    ip_address = serializers.CharField(allow_null=True)
    data = serializers.DictField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField(help_text="SHA-256 over the event and prev_hash: the chain can be verified.")


class AuditListParams(serializers.Serializer):
    since = BoundedDateTimeField(required=False, help_text="Events at or after this time.")
    until = BoundedDateTimeField(required=False, help_text="Events before this time.")
    action = text(100, required=False, help_text="Exact action, or a prefix ending in '.' (e.g. 'incident.').")


# --- support access ----------------------------------------------------------------------


class SupportRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    organisation = serializers.SlugField(source="organisation.slug")
    requester = serializers.CharField(source="requester.username")
    reason_type = serializers.ChoiceField(choices=ReasonType.choices)
    ticket_reference = serializers.CharField()
    scope = serializers.ListField(child=serializers.ChoiceField(choices=DataScope.choices))
    requested_start = serializers.DateTimeField()
    requested_duration_hours = serializers.FloatField()
    named_staff = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(choices=SupportAccessRequest.Status.choices)
    internal_decision = serializers.ChoiceField(choices=SupportAccessRequest.Decision.choices)
    customer_decision = serializers.ChoiceField(choices=SupportAccessRequest.Decision.choices)
    decision_deadline = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class SupportRequestCreateSerializer(serializers.Serializer):
    organisation = serializers.SlugField(max_length=80)
    reason_type = serializers.ChoiceField(choices=ReasonType.choices)
    ticket_reference = text(100)
    justification = text(5000, help_text="Why access is needed (at least 20 characters).")
    scope = serializers.ListField(
        child=serializers.ChoiceField(choices=DataScope.choices), min_length=1, max_length=len(DataScope.values)
    )
    requested_start = BoundedDateTimeField()
    requested_duration_hours = serializers.IntegerField(min_value=1, max_value=72)
    named_staff = serializers.ListField(
        child=text(150), min_length=1, max_length=20, help_text="Usernames of the support engineers who will act."
    )


class SupportListParams(serializers.Serializer):
    status = serializers.ChoiceField(choices=SupportAccessRequest.Status.choices, required=False)
    organisation = serializers.SlugField(max_length=80, required=False)


# --- access log (organisation tokens) ---------------------------------------------------


class AccessLogEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    staff = serializers.CharField(source="staff.username")
    action = serializers.CharField()
    scope = serializers.CharField()
    object_type = serializers.CharField()
    object_repr = serializers.CharField()
    reason_type = serializers.CharField()
    ticket_reference = serializers.CharField()


class AccessLogParams(serializers.Serializer):
    since = BoundedDateTimeField(required=False)
    until = BoundedDateTimeField(required=False)
