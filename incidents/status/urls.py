"""Public URLs: the status page, its feeds, the Statuspage-compatible API and the
subscription pages (C14)."""

from django.urls import path

from incidents.status import api, feeds, subscription_views, views

app_name = "status"

urlpatterns = [
    path("status/", views.status_page, name="page"),
    path("status/incidents/<int:pk>/", views.incident_page, name="incident"),
    # Not cached, outside the public cache: the form has a CSRF token.
    path("status/subscribe/", subscription_views.subscribe, name="subscribe"),
    path("status/subscribe/confirm/<str:token>/", subscription_views.subscribe_confirm, name="subscribe_confirm"),
    path("status/unsubscribe/<str:token>/", subscription_views.unsubscribe, name="unsubscribe"),
    path("status/feed.atom", feeds.atom, name="feed_atom"),
    path("status/feed.rss", feeds.rss, name="feed_rss"),
    path("api/v2/summary.json", api.summary, name="api_summary"),
    path("api/v2/status.json", api.status, name="api_status"),
    path("api/v2/components.json", api.components, name="api_components"),
    path("api/v2/incidents.json", api.incidents, name="api_incidents"),
    path("api/v2/incidents/unresolved.json", api.incidents_unresolved, name="api_incidents_unresolved"),
    path("api/v2/scheduled-maintenances.json", api.maintenances, name="api_maintenances"),
    path("api/v2/scheduled-maintenances/upcoming.json", api.maintenances_upcoming, name="api_maintenances_upcoming"),
    path("api/v2/scheduled-maintenances/active.json", api.maintenances_active, name="api_maintenances_active"),
]
