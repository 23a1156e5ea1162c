"""Reads of the risk register for the admin, the staff dashboard and the trust report.

Stable interface (the dashboard calls these): `heat_map`, `risks_due_for_review`,
`continuity_plans_overdue`, `last_overall_review`, `overall_review_overdue`,
`major_changes`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from governance.risk.matrix import matrix_active
from governance.risk.models import Change, ContinuityPlan, OverallRiskReview, Risk, RiskAssessment

KINDS = {"inherent": "Inherent risk", "residual": "Residual risk"}
LIVE = (Risk.Status.OPEN, Risk.Status.ACCEPTED)

# Geometry of the SVG heat map (templates/risk/_heatmap.html), in SVG units.
CELL, LEFT, TOP, BOTTOM = 56, 120, 8, 64


def _text_colour(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return "#000000" if (0.299 * r + 0.587 * g + 0.114 * b) > 150 else "#ffffff"


def heat_map(kind: str) -> dict:
    """Counts of live (open or accepted) risks per likelihood x impact cell of the active
    matrix, with level names, colours and a link to the filtered risk changelist.

    Two queries whatever the register's size. Rows run from the highest likelihood down,
    as people read a heat map.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}")
    matrix = matrix_active()
    l_field, i_field = f"{kind}_likelihood", f"{kind}_impact"
    counts = {
        (row[l_field], row[i_field]): row["n"]
        for row in Risk.objects.filter(status__in=LIVE).values(l_field, i_field).annotate(n=Count("id")).order_by()
    }
    rows_n, cols_n = matrix.size
    changelist = reverse("admin:risk_risk_changelist")
    level_counts: dict[str, int] = {lv["key"]: 0 for lv in matrix.levels}
    rows = []
    for y, likelihood in enumerate(range(rows_n, 0, -1)):
        cells = []
        for x, impact in enumerate(range(1, cols_n + 1)):
            key = matrix.level_key(likelihood, impact)
            level = matrix.level(key)
            count = counts.get((likelihood, impact), 0)
            level_counts[key] = level_counts.get(key, 0) + count
            query = urlencode({l_field: likelihood, i_field: impact, "status__in": ",".join(LIVE)})
            cells.append(
                {
                    "likelihood": likelihood,
                    "impact": impact,
                    "likelihood_label": matrix.likelihood_labels[likelihood - 1],
                    "impact_label": matrix.impact_labels[impact - 1],
                    "level": key,
                    "level_name": level["name"],
                    "colour": level["colour"],
                    "text_colour": _text_colour(level["colour"]),
                    "count": count,
                    "url": f"{changelist}?{query}",
                    "x": LEFT + x * CELL,
                    "y": TOP + y * CELL,
                    "cx": LEFT + x * CELL + CELL // 2,
                    "cy": TOP + y * CELL + CELL // 2 + 6,
                }
            )
        rows.append(
            {
                "likelihood": likelihood,
                "label": matrix.likelihood_labels[likelihood - 1],
                "label_y": TOP + y * CELL + CELL // 2 + 4,
                "cells": cells,
            }
        )
    impact_axis = [
        {"impact": i, "label": label, "x": LEFT + (i - 1) * CELL + CELL // 2}
        for i, label in enumerate(matrix.impact_labels, start=1)
    ]
    return {
        "kind": kind,
        "title": KINDS[kind],
        "matrix": str(matrix),
        "rows": rows,
        "impact_axis": impact_axis,
        "levels": [
            {"key": lv["key"], "name": lv["name"], "colour": lv["colour"], "count": level_counts.get(lv["key"], 0)}
            for lv in matrix.levels
        ],
        "total": sum(counts.values()),
        "cell": CELL,
        "width": LEFT + cols_n * CELL + 8,
        "height": TOP + rows_n * CELL + BOTTOM,
        "grid_bottom": TOP + rows_n * CELL,
        "axis_label_y": TOP + rows_n * CELL + 40,
        "axis_label_x": LEFT + cols_n * CELL // 2,
        "left": LEFT,
    }


def risks_due_for_review(*, now: datetime, within_days: int) -> QuerySet[Risk]:
    """Live risks whose review is overdue or due within `within_days`, soonest first."""
    horizon = timezone.localdate(now) + timedelta(days=within_days)
    return (
        Risk.objects.filter(status__in=LIVE, next_review_on__lte=horizon)
        .select_related("owner", "owner_team", "matrix")
        .order_by("next_review_on", "code")
    )


def risks_overdue(*, now: datetime) -> QuerySet[Risk]:
    return risks_due_for_review(now=now, within_days=-1)


def continuity_plans_overdue(*, now: datetime, today: date | None = None) -> list[ContinuityPlan]:
    """Plans whose review is overdue or whose last exercise is older than a year (or that
    were never exercised); each carries `.flags`, the reasons in words."""
    from governance.risk.continuity import plan_flags

    today = today or timezone.localdate(now)
    oldest_ok = today - timedelta(days=settings.CONTINUITY_EXERCISE_MAX_AGE_DAYS)
    plans = list(
        ContinuityPlan.objects.filter(
            Q(next_review_on__lt=today) | Q(last_exercised_on__isnull=True) | Q(last_exercised_on__lt=oldest_ok)
        )
        .select_related("owner")
        .order_by("operation")
    )
    for plan in plans:
        plan.flags = plan_flags(plan, today=today)
    return plans


def last_overall_review() -> OverallRiskReview | None:
    """The latest signed overall risk review, or None."""
    return (
        OverallRiskReview.objects.filter(status=OverallRiskReview.Status.SIGNED)
        .select_related("signed_by")
        .order_by("-signed_at")
        .first()
    )


def overall_review_overdue(*, now: datetime) -> bool:
    """True when no overall review was signed in the last year (the dashboard warns)."""
    last = last_overall_review()
    return last is None or last.signed_at < now - timedelta(days=365)


def major_changes(*, since: datetime, until: datetime) -> QuerySet[Change]:
    """Major changes recorded in [since, until), each annotated `assessed` (a completed risk
    assessment linking at least one risk) and `approved` (approved or later)."""
    completed = RiskAssessment.objects.filter(change=OuterRef("pk"), completed_at__isnull=False, risks__isnull=False)
    return (
        Change.objects.filter(change_type=Change.Type.MAJOR, created_at__gte=since, created_at__lt=until)
        .annotate(
            assessed=Exists(completed),
            approved=ExpressionWrapper(
                Q(status__in=[Change.Status.APPROVED, Change.Status.IMPLEMENTED, Change.Status.REVIEWED]),
                output_field=BooleanField(),
            ),
        )
        .select_related("requester", "approver")
        .order_by("-created_at")
    )
