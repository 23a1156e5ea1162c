"""Risk register test data: through the services (so history exists), or in bulk."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from governance.access.roles import RISK_OWNER, SECURITY_OFFICER
from governance.risk import changes, services
from governance.risk.matrix import matrix_active
from governance.risk.models import Change, Risk
from tests.factories import StaffFactory

_n = {"risk": 0}


def risk_owner(**kwargs):
    return StaffFactory(role=RISK_OWNER, **kwargs)


def security_officer(**kwargs):
    return StaffFactory(role=SECURITY_OFFICER, **kwargs)


def make_risk(*, owner=None, acting_user=None, **overrides) -> Risk:
    owner = owner if owner is not None or "owner_team" in overrides else risk_owner()
    _n["risk"] += 1
    fields = {
        "title": f"Risk {_n['risk']}: stolen support laptop exposes customer data",
        "description": "A support engineer's laptop with cached exports is lost or stolen.",
        "category": "security",
        "owner": owner,
        "assets": "Support laptops; customer exports",
        "threat": "Theft",
        "vulnerability": "Local caches",
        "inherent_likelihood": 4,
        "inherent_impact": 4,
        "residual_likelihood": 2,
        "residual_impact": 3,
        "treatment": "mitigate",
        **overrides,
    }
    return services.risk_create(acting_user=acting_user or owner, **fields)


def bulk_risks(n: int, *, owner) -> None:
    """`n` risks straight into the table (query-count tests need 1,000 quickly)."""
    matrix = matrix_active()
    now = timezone.now()
    start = Risk.objects.count()
    Risk.objects.bulk_create(
        [
            Risk(
                code=f"BLK-{start + i:05d}",
                title=f"Bulk risk {i}",
                owner=owner,
                matrix=matrix,
                inherent_likelihood=1 + i % 5,
                inherent_impact=1 + (i // 5) % 5,
                inherent_level=matrix.level_key(1 + i % 5, 1 + (i // 5) % 5),
                residual_likelihood=1 + i % 3,
                residual_impact=1 + i % 4,
                residual_level=matrix.level_key(1 + i % 3, 1 + i % 4),
                residual_rank=matrix.rank(matrix.level_key(1 + i % 3, 1 + i % 4)),
                next_review_on=now.date() + timedelta(days=i % 400),
                created_at=now,
                updated_at=now,
            )
            for i in range(n)
        ],
        batch_size=500,
    )


def make_change(*, requester=None, major: bool = True, **overrides) -> Change:
    requester = requester or risk_owner()
    now = timezone.now()
    fields = {
        "title": "Move customer exports to the new object store",
        "description": "Exports are written to the new encrypted bucket.",
        "affects_customer_data": major,
        "planned_start": now + timedelta(days=3),
        "planned_end": now + timedelta(days=3, hours=2),
        "rollback_plan": "Point the exporter back at the old bucket; no data migration needed.",
        **overrides,
    }
    return changes.change_create(acting_user=requester, **fields)
