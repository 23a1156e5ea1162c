"""When the next clean-up run is due (C21): every 6-12 months."""

from __future__ import annotations

import calendar
from datetime import date, datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from governance.retention.models import CleanupRun

INTERVAL_LIMITS = (6, 12)


def cleanup_interval_months() -> int:
    """The configured cadence, checked again here so an override cannot slip past the limits."""
    months = settings.RETENTION_CLEANUP_INTERVAL_MONTHS
    low, high = INTERVAL_LIMITS
    if not low <= months <= high:
        raise ImproperlyConfigured(f"RETENTION_CLEANUP_INTERVAL_MONTHS must be between {low} and {high}.")
    return months


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def last_completed_run() -> CleanupRun | None:
    return CleanupRun.objects.filter(status=CleanupRun.Status.COMPLETED).order_by("-finished_at").first()


def next_cleanup_date(*, now: datetime | None = None) -> date:
    """The last completed run's date + the interval; before any run, the configured anchor."""
    months = cleanup_interval_months()
    last = last_completed_run()
    if last is None:
        return settings.RETENTION_CLEANUP_ANCHOR
    return add_months(timezone.localdate(last.finished_at), months)


def cleanup_due(*, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return timezone.localdate(now) >= next_cleanup_date(now=now)
