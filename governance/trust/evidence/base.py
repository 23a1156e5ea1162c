"""The shape of one commitment's evidence, the registry, and small helpers.

Each evidence function takes a `Period` and returns an `Evidence`: a status (kept,
failing, no data), a one-line summary with real figures, the figures themselves, and the
records behind a failure (each with a link to the admin page where it is acted on).
Evidence functions read with a fixed number of queries whatever the data volume.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.urls import NoReverseMatch, reverse

KEPT = "kept"
FAILING = "failing"
NO_DATA = "no data"
STATUSES = (KEPT, FAILING, NO_DATA)

# Failing records listed per commitment; the count in the figures is always complete.
MAX_RECORDS = 20


@dataclass(frozen=True)
class Period:
    """A half-open window [since, until) in aware UTC datetimes."""

    since: datetime
    until: datetime

    @property
    def days(self) -> int:
        return max(1, round((self.until - self.since) / timedelta(days=1)))

    def label(self) -> str:
        return f"{self.since:%Y-%m-%d} to {self.until:%Y-%m-%d}"


@dataclass
class Record:
    """One record behind a failure: what it is, what is wrong, where to act on it."""

    label: str
    problem: str
    url: str = ""


@dataclass
class Evidence:
    commitment: str
    title: str
    status: str
    summary: str
    figures: dict = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    source: str = ""

    @property
    def failing(self) -> bool:
        return self.status == FAILING

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Entry:
    commitment: str
    title: str
    func: Callable[[Period], Evidence]
    # Summary that may appear on the public trust page (no personal data by construction:
    # counts and dates only). False for commitments whose summary names records.
    publishable: bool = True


REGISTRY: dict[str, Entry] = {}


def commitment(cid: str, title: str, *, publishable: bool = True):
    """Register the decorated function as the evidence of commitment `cid`."""

    def register(func: Callable[..., Evidence]) -> Callable[..., Evidence]:
        if cid in REGISTRY:
            raise ValueError(f"Evidence for {cid} is registered twice.")

        def run(period: Period) -> Evidence:
            evidence = func(period)
            evidence.commitment, evidence.title = cid, title
            evidence.summary = f"{cid}: {evidence.summary}"
            return evidence

        REGISTRY[cid] = Entry(cid, title, run, publishable)
        return func

    return register


def result(status: str, summary: str, figures: dict | None = None, records: Iterable[Record] = (), source: str = ""):
    return Evidence(
        commitment="",
        title="",
        status=status,
        summary=summary,
        figures=figures or {},
        records=list(records)[:MAX_RECORDS],
        source=source,
    )


def no_source(what: str) -> Evidence:
    """Honest placeholder: the portal does not record this yet, so no figures are shown."""
    return result(NO_DATA, f"no evidence source yet ({what} not recorded in the portal)")


def admin_url(obj_or_label, pk=None) -> str:
    """The admin change page of an object (or of "app.model" + pk); "" if not registered."""
    if pk is None:
        label, pk = obj_or_label._meta.label_lower, obj_or_label.pk
    else:
        label = obj_or_label
    app, model = label.split(".")
    try:
        return reverse(f"admin:{app}_{model}_change", args=[pk])
    except NoReverseMatch:
        return ""


def changelist_url(label: str, query: str = "") -> str:
    app, model = label.split(".")
    try:
        url = reverse(f"admin:{app}_{model}_changelist")
    except NoReverseMatch:
        return ""
    return f"{url}?{query}" if query else url


def hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def median_hours(deltas: list[timedelta]) -> float | None:
    return round(statistics.median(hours(d) for d in deltas), 2) if deltas else None


def fmt_hours(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 60:.0f} min"
    return f"{value:.0f} h" if value >= 10 else f"{value:.1f} h"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def day(moment) -> str:
    return f"{moment:%Y-%m-%d}" if moment else "-"


def as_of(period: Period) -> datetime:
    """The moment "overdue" is judged at: the period's end, or now for a running period."""
    from django.utils import timezone

    return min(period.until, timezone.now())
