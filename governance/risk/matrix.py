"""The risk matrix as data: the default 5x5, validation of a matrix, and the active one."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from governance.risk.models import RiskMatrix

DEFAULT_NAME = "Assyst 5x5"
DEFAULT_LIKELIHOOD = ["Rare", "Unlikely", "Possible", "Likely", "Almost certain"]
DEFAULT_IMPACT = ["Negligible", "Minor", "Moderate", "Major", "Severe"]
# Review interval per level: never more than 12 months (C26), shorter the higher the level.
DEFAULT_LEVELS = [
    {"key": "low", "name": "Low", "colour": "#2e7d32", "review_months": 12},
    {"key": "medium", "name": "Medium", "colour": "#f9a825", "review_months": 9},
    {"key": "high", "name": "High", "colour": "#ef6c00", "review_months": 6},
    {"key": "critical", "name": "Critical", "colour": "#c62828", "review_months": 3},
]
MAX_REVIEW_MONTHS = 12


def _default_level(likelihood: int, impact: int) -> str:
    score = likelihood * impact
    if score <= 4:
        return "low"
    if score <= 9:
        return "medium"
    if score <= 16:
        return "high"
    return "critical"


DEFAULT_GRID = [[_default_level(li, im) for im in range(1, 6)] for li in range(1, 6)]


def matrix_validate(*, likelihood_labels: list, impact_labels: list, levels: list, grid: list) -> None:
    """Refuse a matrix that could not score every cell or that would allow reviews more than
    12 months apart."""
    errors = []
    if not 2 <= len(likelihood_labels) <= 9 or not 2 <= len(impact_labels) <= 9:
        errors.append("Both axes need between 2 and 9 labels.")
    keys = []
    for level in levels:
        if not isinstance(level, dict) or not {"key", "name", "colour", "review_months"} <= set(level):
            errors.append("Each level needs key, name, colour and review_months.")
            break
        keys.append(level["key"])
        if not (isinstance(level["review_months"], int) and 1 <= level["review_months"] <= MAX_REVIEW_MONTHS):
            errors.append(f"Level {level['key']}: review_months must be 1-{MAX_REVIEW_MONTHS}.")
        colour = str(level["colour"])
        if not (len(colour) == 7 and colour.startswith("#") and all(c in "0123456789abcdefABCDEF" for c in colour[1:])):
            errors.append(f"Level {level['key']}: colour must look like #1a2b3c.")
    if len(set(keys)) != len(keys) or not keys:
        errors.append("Level keys must be present and unique.")
    if len(grid) != len(likelihood_labels) or any(len(row) != len(impact_labels) for row in grid):
        errors.append("The grid needs one row per likelihood and one cell per impact.")
    elif any(cell not in keys for row in grid for cell in row):
        errors.append("Every grid cell must name one of the levels.")
    if errors:
        raise ValidationError(errors)


def matrix_active() -> RiskMatrix:
    """The matrix new scores use; the default 5x5 is created on first use."""
    matrix = RiskMatrix.objects.filter(is_active=True).first()
    if matrix is not None:
        return matrix
    try:
        with transaction.atomic():
            return RiskMatrix.objects.create(
                name=DEFAULT_NAME,
                version=1 + (RiskMatrix.objects.filter(name=DEFAULT_NAME).count()),
                is_active=True,
                likelihood_labels=DEFAULT_LIKELIHOOD,
                impact_labels=DEFAULT_IMPACT,
                levels=DEFAULT_LEVELS,
                grid=DEFAULT_GRID,
            )
    except IntegrityError:  # created concurrently
        return RiskMatrix.objects.get(is_active=True)


@transaction.atomic
def matrix_publish(
    *, acting_user, name: str, likelihood_labels: list, impact_labels: list, levels: list, grid: list
) -> RiskMatrix:
    """Publish a new matrix version and make it the active one. Risks keep the version they
    were scored with until they are next re-scored."""
    from django.db.models import Max

    from governance.audit.services import audit_record

    matrix_validate(likelihood_labels=likelihood_labels, impact_labels=impact_labels, levels=levels, grid=grid)
    previous = RiskMatrix.objects.select_for_update().filter(is_active=True).first()
    if previous is not None:
        previous.is_active = False
        previous.save(update_fields=["is_active"])
    version = (RiskMatrix.objects.filter(name=name).aggregate(m=Max("version"))["m"] or 0) + 1
    matrix = RiskMatrix.objects.create(
        name=name,
        version=version,
        is_active=True,
        likelihood_labels=likelihood_labels,
        impact_labels=impact_labels,
        levels=levels,
        grid=grid,
        created_by=acting_user,
    )
    audit_record(
        action="risk_matrix.publish",
        actor=acting_user,
        obj=matrix,
        data={"previous": str(previous) if previous else None, "levels": levels, "grid": grid},
    )
    return matrix
