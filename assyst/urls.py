from django.urls import include, path
from django.views.generic import RedirectView

from assyst.admin_site import site
from governance.core.views import healthz
from governance.retention.views import backup_report

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="portal:home", permanent=False)),
    path("admin/", site.urls),
    path("portal/sso/", include("governance.sso.urls")),  # single sign-on (C28)
    path("portal/", include("governance.portal.urls")),
    path("transparency/", include("governance.legal.urls")),
    path("trust/", include("governance.trust.urls")),
    path("", include("governance.disclosure.urls")),
    path("healthz", healthz, name="healthz"),
    # External backup tools report runs here with a bearer token (C24); no session, no CSRF.
    path("hooks/backups/", backup_report, name="backup_report"),
    # Integration API with scoped tokens (governance/api/); not public: tokens only.
    path("api/v1/", include("governance.api.urls")),
    # Public, cached, no session or CSRF: the status page, its feeds and JSON API (C14).
    path("", include("incidents.status.urls")),
]
