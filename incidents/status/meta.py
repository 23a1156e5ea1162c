"""The status page's identity, as Statuspage's `page` object describes it."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from incidents.status.cache import current_version

PAGE_ID = "assyst"
PAGE_NAME = "Assyst"
TIME_ZONE = "Etc/UTC"


def page_meta() -> dict:
    _, updated_at = current_version()
    return {
        "id": PAGE_ID,
        "name": PAGE_NAME,
        "url": settings.SITE_URL.rstrip("/") + reverse("status:page"),
        "time_zone": TIME_ZONE,
        "updated_at": updated_at,
    }


def shortlink(incident_pk: int) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("status:incident", args=[incident_pk])
