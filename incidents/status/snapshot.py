"""Reads behind the status page, the portal's status view and the JSON API, each in a
fixed number of queries whatever the number of incidents or days of history."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.utils import timezone

from incidents.models import (
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusChange,
    Incident,
    MaintenanceUpdate,
    ScheduledMaintenance,
)
from incidents.models.status import STATUS_RANK

HISTORY_DAYS = 90
ACTIVE = (ScheduledMaintenance.Status.IN_PROGRESS, ScheduledMaintenance.Status.VERIFYING)
LABELS = dict(ComponentStatus.choices)
NO_DATA = "no_data"

# Statuspage's overall indicator and its wording.
INDICATOR_TEXT = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major Service Outage",
}
_COMPONENT_INDICATOR = {
    ComponentStatus.DEGRADED_PERFORMANCE: "minor",
    ComponentStatus.PARTIAL_OUTAGE: "major",
    ComponentStatus.MAJOR_OUTAGE: "critical",
}
_INDICATOR_RANK = {"none": 0, "minor": 1, "major": 2, "critical": 3}


def today() -> date:
    return timezone.now().astimezone(UTC).date()


def components() -> list[Component]:
    return list(Component.objects.select_related("group").order_by("group__position", "position", "name"))


def groups() -> list[ComponentGroup]:
    return list(ComponentGroup.objects.order_by("position", "name"))


@dataclass
class Section:
    """A group heading and its components (group None: the components without one)."""

    group: ComponentGroup | None
    components: list[Component] = field(default_factory=list)


def sections(all_groups: list[ComponentGroup], all_components: list[Component]) -> list[Section]:
    by_group = {g.pk: Section(g) for g in all_groups}
    loose = Section(None)
    for c in all_components:
        if c.only_show_if_degraded and c.status == ComponentStatus.OPERATIONAL:
            continue
        (by_group.get(c.group_id) or loose).components.append(c)
    return [s for s in [loose, *by_group.values()] if s.components]


def indicator(all_components: list[Component], unresolved: list[Incident]) -> tuple[str, str]:
    """Statuspage's `status`: the worst of component statuses and open incident impacts."""
    level = "none"
    for c in all_components:
        candidate = _COMPONENT_INDICATOR.get(c.status, "none")
        level = max(level, candidate, key=_INDICATOR_RANK.__getitem__)
    for incident in unresolved:
        level = max(level, incident.severity, key=_INDICATOR_RANK.__getitem__)
    if level == "none" and any(c.status == ComponentStatus.UNDER_MAINTENANCE for c in all_components):
        return level, "Service Under Maintenance"
    return level, INDICATOR_TEXT[level]


def maintenances(*, statuses=None, limit: int | None = None) -> list[ScheduledMaintenance]:
    qs: QuerySet[ScheduledMaintenance] = ScheduledMaintenance.objects.prefetch_related(
        Prefetch("updates", queryset=MaintenanceUpdate.objects.order_by("-created_at", "-id")),
        "components",
    )
    if statuses is not None:
        qs = qs.filter(status__in=statuses)
    qs = qs.order_by("scheduled_for", "pk") if statuses else qs.order_by("-scheduled_for", "-pk")
    return list(qs[:limit] if limit else qs)


@dataclass(frozen=True)
class Day:
    day: date
    status: str  # a ComponentStatus value, or NO_DATA before the component existed

    @property
    def label(self) -> str:
        text = "No data" if self.status == NO_DATA else LABELS[self.status]
        return f"{self.day:%-d %b %Y}: {text}"


@dataclass
class History:
    days: list[Day]

    @property
    def summary(self) -> str:
        known = [d for d in self.days if d.status != NO_DATA]
        if not known:
            return "No history yet."
        bad = Counter(LABELS[d.status].lower() for d in known if d.status != ComponentStatus.OPERATIONAL)
        if not bad:
            return f"Operational on all {len(known)} days."
        detail = ", ".join(f"{n} day{'s' if n > 1 else ''} {label}" for label, n in bad.most_common())
        return f"Operational on {len(known) - sum(bad.values())} of {len(known)} days; {detail}."

    @property
    def problem_days(self) -> list[Day]:
        return [d for d in self.days if d.status not in (NO_DATA, ComponentStatus.OPERATIONAL)]


def history(all_components: list[Component], *, last_day: date | None = None) -> dict[int, History]:
    """For each component, one cell per day of the last 90: the worst status it had that
    day. Two queries: the status each component had when the window opened, and the
    changes inside the window."""
    last_day = last_day or today()
    first_day = last_day - timedelta(days=HISTORY_DAYS - 1)
    start = datetime.combine(first_day, time.min, tzinfo=UTC)
    before = ComponentStatusChange.objects.filter(component=OuterRef("pk"), at__lt=start).order_by("-at", "-pk")
    baseline = dict(Component.objects.annotate(s=Subquery(before.values("status")[:1])).values_list("pk", "s"))
    changes: dict[int, dict[date, list[str]]] = defaultdict(lambda: defaultdict(list))
    for component_id, status, at in (
        ComponentStatusChange.objects.filter(at__gte=start)
        .order_by("at", "pk")
        .values_list("component_id", "status", "at")
    ):
        changes[component_id][at.astimezone(UTC).date()].append(status)
    result = {}
    for c in all_components:
        began = c.start_date or c.created_at.astimezone(UTC).date()
        current = baseline.get(c.pk) or ComponentStatus.OPERATIONAL
        days = []
        for offset in range(HISTORY_DAYS):
            day = first_day + timedelta(days=offset)
            todays = changes[c.pk].get(day, [])
            worst = max([current, *todays], key=lambda s: STATUS_RANK[s])
            current = todays[-1] if todays else current
            days.append(Day(day, NO_DATA if day < began else worst))
        result[c.pk] = History(days)
    return result
