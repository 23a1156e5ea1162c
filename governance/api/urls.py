from django.urls import path, re_path

from governance.api.docs import SchemaView, StaffOnlyDocs
from governance.api.problems import not_found
from governance.api.views import incidents, records, risks

app_name = "api"

urlpatterns = [
    path("incidents/", incidents.IncidentList.as_view(), name="incidents"),
    path("incidents/<int:pk>/", incidents.IncidentDetail.as_view(), name="incident"),
    path("incidents/<int:pk>/updates/", incidents.IncidentUpdates.as_view(), name="incident-updates"),
    path("incidents/<int:pk>/organisations/", incidents.IncidentOrganisations.as_view(), name="incident-organisations"),
    path("incidents/<int:pk>/close/", incidents.IncidentClose.as_view(), name="incident-close"),
    path("backups/", records.BackupList.as_view(), name="backups"),
    path("audit-events/", records.AuditEventList.as_view(), name="audit-events"),
    path("access-requests/", records.SupportRequestList.as_view(), name="access-requests"),
    path("access-requests/<int:pk>/", records.SupportRequestDetail.as_view(), name="access-request"),
    path("access-log/", records.AccessLogList.as_view(), name="access-log"),
    path("risks/", risks.RiskList.as_view(), name="risks"),
    path("risks/<int:pk>/", risks.RiskDetail.as_view(), name="risk"),
    path("changes/", risks.ChangeList.as_view(), name="changes"),
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", StaffOnlyDocs.as_view(url_name="api:schema"), name="docs"),
    # Everything else under /api/v1/ answers 404 as problem+json, never an HTML page.
    re_path(r"^", not_found),
]
