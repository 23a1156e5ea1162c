from django.contrib.auth import views as auth_views
from django.urls import path

from governance.api import portal_views as views_api_tokens
from governance.orgsecurity import views as views_security
from governance.portal import views, views_access, views_incidents
from governance.portal.forms import PortalAuthenticationForm
from governance.retention import views_portal as views_termination

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="portal/login.html",
            redirect_authenticated_user=True,
            authentication_form=PortalAuthenticationForm,
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("members/", views.member_list, name="member_list"),
    path("members/<int:pk>/", views.member_detail, name="member_detail"),
    path("access/", views_access.access_overview, name="access_overview"),
    path("access/requests/<int:pk>/", views_access.access_request_detail, name="access_request_detail"),
    path("access/grants/<int:pk>/", views_access.access_grant_detail, name="access_grant_detail"),
    path("access/log/", views_access.access_log, name="access_log"),
    path("access/log.csv", views_access.access_log_csv, name="access_log_csv"),
    path("access/settings/", views_access.access_settings, name="access_settings"),
    # The organisation's own security settings (C28): governance/orgsecurity/views.py.
    path("security/", views_security.security_settings, name="security_settings"),
    path("security/members/<int:pk>/", views_security.member_security, name="member_security"),
    path("security/audit/", views_security.audit_log, name="security_audit_log"),
    path("security/audit.csv", views_security.audit_log_csv, name="security_audit_log_csv"),
    path("security/two-factor/", views_security.two_factor_setup, name="two_factor_setup"),
    path("security/two-factor/check/", views_security.two_factor_verify, name="two_factor_verify"),
    # Read-only API tokens of the organisation (governance/api/portal_views.py).
    path("api-tokens/", views_api_tokens.token_list, name="api_tokens"),
    path("api-tokens/<int:pk>/revoke/", views_api_tokens.token_revoke, name="api_token_revoke"),
    path("incidents/", views_incidents.incident_list, name="incident_list"),
    path("status/", views_incidents.status, name="status"),
    path("incidents/<int:pk>/", views_incidents.incident_detail, name="incident_detail"),
    path("incidents/<int:pk>/rca.pdf", views_incidents.incident_rca_pdf, name="incident_rca_pdf"),
    path("incidents/evidence/<int:pk>/download/", views_incidents.evidence_download, name="evidence_download"),
    # Account termination (C21): ask, see the notice, withdraw (governance/retention/views_portal.py).
    path("termination/", views_termination.termination, name="termination"),
]
