"""The public transparency report (C27): the one query behind `/transparency/`.

Per completed half-year (H1 = January-June, H2 = July-December, by the date a request
was received, UTC) and per jurisdiction (ISO country code only): requests received,
complied with, complied with in part, objected to, rejected, and customers notified
(customer notices recorded). Nothing else leaves this module: no agency, organisation,
person, free text or date finer than the half-year.

Counts below LEGAL_TRANSPARENCY_BAND are shown as a band ("0-4"), zero included, so a
single request cannot be picked out. There is deliberately no total row: a total with
exact jurisdiction counts would give away a banded one by subtraction. The half-year
still running is left out for the same reason: a count watched day by day would show
each new request as it arrives.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from governance.legal.models import Decision, LegalRequest

COLUMNS = (
    ("received", "Requests received"),
    ("complied", "Complied"),
    ("partial", "Complied in part"),
    ("objected", "Objected to"),
    ("rejected", "Rejected"),
    ("notified", "Customers notified"),
)


@dataclass(frozen=True)
class Row:
    jurisdiction: str
    cells: tuple[str, ...]


@dataclass(frozen=True)
class Period:
    year: int
    half: int
    rows: tuple[Row, ...]

    @property
    def label(self) -> str:
        return f"H{self.half} {self.year} ({'January-June' if self.half == 1 else 'July-December'})"


def band(count: int, threshold: int | None = None) -> str:
    """An exact count from the threshold up; below it, the band "0-<threshold-1>"."""
    threshold = settings.LEGAL_TRANSPARENCY_BAND if threshold is None else threshold
    if threshold <= 1 or count >= threshold:
        return str(count)
    return f"0-{threshold - 1}"


def _half_start(day: date) -> date:
    return date(day.year, 1 if day.month <= 6 else 7, 1)


def transparency_report(*, today: date | None = None) -> list[Period]:
    """Banded counts per completed half-year and jurisdiction, newest half-year first."""
    today = today or timezone.localdate(timezone.now(), UTC)
    current = _half_start(today)
    cutoff = datetime(current.year, current.month, 1, tzinfo=UTC)
    Outcome = Decision.Outcome
    rows = (
        LegalRequest.objects.filter(received_at__lt=cutoff)
        .values("pk", "received_at", "jurisdiction_country")
        .annotate(
            notices=Count("notices", distinct=True),
            outcome_comply=Count("pk", filter=Q(decision__outcome=Outcome.COMPLY)),
            outcome_partial=Count("pk", filter=Q(decision__outcome=Outcome.PARTIAL)),
            outcome_object=Count("pk", filter=Q(decision__outcome=Outcome.OBJECT)),
            outcome_reject=Count("pk", filter=Q(decision__outcome=Outcome.REJECT)),
        )
    )
    counts: dict[tuple[int, int], dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys([k for k, _ in COLUMNS], 0))
    )
    for row in rows:
        received = timezone.localtime(row["received_at"], UTC)
        cell = counts[(received.year, 1 if received.month <= 6 else 2)][row["jurisdiction_country"]]
        cell["received"] += 1
        cell["complied"] += bool(row["outcome_comply"])
        cell["partial"] += bool(row["outcome_partial"])
        cell["objected"] += bool(row["outcome_object"])
        cell["rejected"] += bool(row["outcome_reject"])
        cell["notified"] += row["notices"]
    return [
        Period(
            year=year,
            half=half,
            rows=tuple(
                Row(jurisdiction=code, cells=tuple(band(numbers[k]) for k, _ in COLUMNS))
                for code, numbers in sorted(counts[(year, half)].items())
            ),
        )
        for year, half in sorted(counts, reverse=True)
    ]
