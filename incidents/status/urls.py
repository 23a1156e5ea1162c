"""Public URLs: the status page, its feeds and the Statuspage-compatible API (C14)."""

from django.urls import path

from incidents.status import api, feeds, views

app_name = "status"

urlpatterns = [
    path("status/", views.status_page, name="page"),
    path("status/incidents/<int:pk>/", views.incident_page, name="incident"),
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
