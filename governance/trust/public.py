"""The public trust page's content: live summaries of the published commitments only.

Computed without any request, user or session, and cached for everyone under a version
that publishing or unpublishing bumps on commit.
"""

from __future__ import annotations

import secrets

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

CACHE_SECONDS = 600
_VERSION_KEY = "trust:public:version"


def _version() -> str:
    # A random token, not a counter: a cache that outlives the database (a test run, a
    # restored backup) never serves an entry computed from other data.
    return cache.get_or_set(_VERSION_KEY, lambda: secrets.token_hex(8), timeout=None)


def invalidate() -> None:
    cache.set(_VERSION_KEY, secrets.token_hex(8), timeout=None)


def invalidate_on_commit() -> None:
    transaction.on_commit(invalidate)


def public_summaries() -> dict:
    """{"generated_at", "since", "until", "items": [{commitment, title, status, summary}]}.

    Only the status and one-line summary leave the building: no figures, no records."""
    key = f"trust:public:{_version()}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    from governance.trust.models import PublishedCommitment
    from governance.trust.report import default_period, trust_report

    ids = tuple(sorted(PublishedCommitment.objects.values_list("commitment_id", flat=True)))
    report = trust_report(default_period(), ids=ids)
    content = {
        "generated_at": timezone.now(),
        "since": report.period.since,
        "until": report.period.until,
        "items": [
            {"commitment": e.commitment, "title": e.title, "status": e.status, "summary": e.summary}
            for e in report.items
        ],
    }
    cache.set(key, content, CACHE_SECONDS)
    return content
