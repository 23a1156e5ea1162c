"""The purge engine: which rows belong to an organisation, and deleting them in batches.

Models are discovered, never listed: every model with a foreign key to Organisation,
every model that depends on those (CASCADE or PROTECT), recursively, and the
organisation's customer accounts with whatever cascades from them. New apps are
therefore covered without touching this file (a test checks that every model with an
organisation foreign key is in the plan).

Deletion is by primary-key ranges in batches, one transaction per batch, children
before parents, so memory stays bounded and a killed worker leaves a consistent
database. The batch and the progress counter commit together: a rerun re-queries what
is left and deletes only that, so nothing is deleted twice or counted twice.

Rows are deleted with `QuerySet._raw_delete` (one DELETE per batch, no rows loaded): the
order of the plan already removes every referencing row first, and Django's collector
would otherwise load rows, fire per-row signals and try to null the audit trail's
`actor` (which the append-only triggers refuse). The audit trail is never purged: its
events hold usernames and actions, no other personal data, and are our evidence (C25);
`AuditEvent.actor` has no database constraint, so deleted accounts leave its username
text behind only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.db.models import Q

from governance.tenancy.models import Organisation

# Our own evidence and the audit trail are never customer data to purge.
EXCLUDED_APPS = frozenset({"retention", "audit"})
USER_KEY = "customer accounts"


class PurgeBlocked(Exception):
    """A row outside the organisation still references its data; a human must decide."""


@dataclass
class Step:
    """Delete rows of `model` matching any of `paths` (lookups ending at the root's pk)."""

    model: type[models.Model]
    root: str  # "organisation" or "user"
    paths: list[str] = field(default_factory=list)
    # Nullable foreign keys from elsewhere to set NULL before deleting (SET_NULL).
    nullify: list[tuple[type[models.Model], str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.model._meta.label

    def queryset(self, root_ids: Iterable[int]):
        ids = list(root_ids)
        q = Q()
        for path in self.paths:
            q |= Q(**{f"{path}__in": ids})
        return self.model._base_manager.filter(q)


def _reverse_fks(model: type[models.Model]):
    """Concrete FK/one-to-one fields on any model (auto-created m2m tables included) pointing at `model`."""
    for other in apps.get_models(include_auto_created=True):
        for f in other._meta.concrete_fields:
            if f.is_relation and (f.many_to_one or f.one_to_one) and f.related_model is model:
                yield other, f


def _discover(root: type[models.Model], root_name: str, *, follow_protect: bool) -> tuple[list[Step], list]:
    """Breadth-first over reverse foreign keys; returns steps (unordered) and guards."""
    steps: dict[type[models.Model], Step] = {}
    guards: list[tuple[type[models.Model], str]] = []
    frontier: list[tuple[type[models.Model], str]] = [(root, "pk")]
    while frontier:
        parent, parent_path = frontier.pop(0)
        for child, fk in _reverse_fks(parent):
            if child._meta.app_label in EXCLUDED_APPS:
                continue
            on_delete = fk.remote_field.on_delete
            path = fk.name if parent_path == "pk" else f"{fk.name}__{parent_path}"
            if on_delete is models.CASCADE or (on_delete is models.PROTECT and follow_protect):
                step = steps.setdefault(child, Step(child, root_name))
                if path not in step.paths and path.count("__") < 4:
                    step.paths.append(path)
                    frontier.append((child, path))
            elif on_delete is models.PROTECT:
                guards.append((child, path))
            # SET_NULL and DO_NOTHING rows survive; `nullify` below handles the constraint.
    return list(steps.values()), guards


def _order(steps: list[Step]) -> list[Step]:
    """Children first: a step runs after every step whose model references it."""
    by_model = {s.model: s for s in steps}
    ordered: list[Step] = []
    done: set = set()
    visiting: set = set()

    def visit(step: Step) -> None:
        if step.model in done:
            return
        if step.model in visiting:
            raise PurgeBlocked(f"foreign-key cycle through {step.label}")
        visiting.add(step.model)
        for other, _fk in _reverse_fks(step.model):
            if other in by_model and other is not step.model:
                visit(by_model[other])
        visiting.discard(step.model)
        done.add(step.model)
        ordered.append(step)

    for step in sorted(steps, key=lambda s: s.label):
        visit(step)
    return ordered


def _nullable_references(model: type[models.Model]) -> list[tuple[type[models.Model], str]]:
    return [
        (other, fk.name)
        for other, fk in _reverse_fks(model)
        if fk.remote_field.on_delete is models.SET_NULL and fk.db_constraint
    ]


@dataclass
class Plan:
    steps: list[Step]
    user_guards: list[tuple[type[models.Model], str]]


def purge_plan() -> Plan:
    """The ordered steps for one organisation: its records, then its customer accounts."""
    User = get_user_model()
    org_steps, _ = _discover(Organisation, "organisation", follow_protect=True)
    user_steps, user_guards = _discover(User, "user", follow_protect=False)
    org_models = {s.model for s in org_steps}
    # Account-side steps for models already purged per organisation add only their user path.
    merged = [s for s in user_steps if s.model not in org_models]
    ordered = _order(org_steps) + _order(merged) + [Step(User, "user", ["pk"])]
    for step in ordered:
        step.nullify = _nullable_references(step.model)
    return Plan(ordered, [(m, p) for m, p in user_guards if m not in org_models])


def count_remaining(plan: Plan, *, organisation_id: int, user_ids: list[int]) -> dict[str, int]:
    """What a purge of this organisation would delete now (the dry run)."""
    counts = {}
    for step in plan.steps:
        ids = [organisation_id] if step.root == "organisation" else user_ids
        n = step.queryset(ids).count() if ids else 0
        if n:
            counts[_key(step)] = n
    return counts


def _key(step: Step) -> str:
    return USER_KEY if step.model is get_user_model() else step.label


def check_guards(plan: Plan, user_ids: list[int]) -> None:
    """Refuse to delete accounts that records outside the organisation still reference."""
    for model, path in plan.user_guards:
        if user_ids and model._base_manager.filter(**{f"{path}__in": user_ids}).exists():
            raise PurgeBlocked(
                f"{model._meta.label} rows outside the organisation reference its customer accounts ({path})."
            )


def purge_batches(
    plan: Plan,
    *,
    organisation_id: int,
    user_ids: list[int],
    batch_size: int,
    on_batch: Callable[[str, int], None],
) -> None:
    """Delete everything in the plan, about `batch_size` rows per transaction.

    `on_batch(kind, n)` runs inside each batch's transaction (it records progress), so
    the deletion and its count commit or roll back together.
    """
    for step in plan.steps:
        ids = [organisation_id] if step.root == "organisation" else user_ids
        if not ids:
            continue
        for path in step.paths:
            _purge_path(step, step.model._base_manager.filter(**{f"{path}__in": ids}), batch_size, on_batch)


def _purge_path(step: Step, qs, batch_size: int, on_batch: Callable[[str, int], None]) -> None:
    """Delete `qs` window by window over primary-key ranges.

    Each batch is one `DELETE ... WHERE <path> AND pk >= lo AND pk < hi`: nothing is
    loaded into Python (memory stays flat), no batch re-reads the rows (or the dead
    tuples) of the batches before it, and no `ORDER BY ... LIMIT` needs a composite
    index. The window widens while batches come back under-filled (an organisation
    spread thinly over a big table) and narrows when one overfills, so a transaction
    stays near `batch_size` rows. After a crash the bounds are recomputed over what is
    left, so a resumed run neither misses nor re-counts anything.
    """
    bounds = qs.aggregate(lo=models.Min("pk"), hi=models.Max("pk"))
    if bounds["lo"] is None:
        return
    lo, hi = bounds["lo"], bounds["hi"]
    width = batch_size
    max_width = batch_size * 64
    while lo <= hi:
        window = qs.filter(pk__gte=lo, pk__lt=lo + width)
        with transaction.atomic():
            _async_commit()
            for other, fk_name in step.nullify:
                other._base_manager.filter(**{f"{fk_name}__in": window.values("pk")}).update(**{fk_name: None})
            deleted = window._raw_delete(step.model._base_manager.db)
            if deleted:
                on_batch(_key(step), deleted)
        lo += width
        if deleted * 2 < batch_size:
            width = min(width * 2, max_width)
        elif deleted > batch_size * 2:
            width = max(batch_size, width // 2)


def _async_commit() -> None:
    """PostgreSQL: this batch's COMMIT does not wait for its WAL flush.

    Safe here because a batch and its progress count are one transaction: a server crash
    can only lose the last few batches whole (rows back, counts back), and the resumed
    run deletes and counts them again, once. It saves a disk flush per batch, which was
    most of a batch's cost. SET LOCAL: the setting ends with the transaction.
    """
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
