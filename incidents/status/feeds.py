"""Atom and RSS feeds of general incidents and their public updates (C14), one entry per
incident (updated whenever a public update is posted), as Statuspage's history feed."""

from __future__ import annotations

from django.contrib.syndication.views import Feed
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed

from incidents.models import Incident
from incidents.selectors import public_incidents
from incidents.status.cache import public_cached
from incidents.status.meta import PAGE_NAME

RECENT = 50


class IncidentsRss(Feed):
    title = f"{PAGE_NAME} status: incidents"
    description = f"Incidents affecting every {PAGE_NAME} customer, with each public update."
    description_template = "status/feed_item.html"

    def link(self):
        return reverse("status:page")

    def items(self):
        return list(public_incidents()[:RECENT])

    def item_title(self, item: Incident) -> str:
        return f"{item.title} ({Incident.Status(item.public_status).label})"

    def item_link(self, item: Incident) -> str:
        return reverse("status:incident", args=[item.pk])

    def item_guid(self, item: Incident) -> str:
        return f"tag:assyst,status:incident:{item.pk}"

    item_guid_is_permalink = False

    def item_pubdate(self, item: Incident):
        return item.created_at

    def item_updateddate(self, item: Incident):
        return item.public_updated_at


class IncidentsAtom(IncidentsRss):
    feed_type = Atom1Feed
    subtitle = IncidentsRss.description


rss = public_cached("feed:rss")(IncidentsRss())
atom = public_cached("feed:atom")(IncidentsAtom())
