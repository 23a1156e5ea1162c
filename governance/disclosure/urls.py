from django.urls import path
from django.views.generic import RedirectView

from governance.disclosure import views

app_name = "disclosure"

urlpatterns = [
    path(".well-known/security.txt", views.security_txt, name="security_txt"),
    # RFC 9116 section 3: the legacy top-level location redirects to the canonical one.
    path("security.txt", RedirectView.as_view(pattern_name="disclosure:security_txt", permanent=True)),
    path("security/policy/", views.policy, name="policy"),
    path("security/report/", views.report, name="report"),
]
