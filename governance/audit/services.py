"""Writing and verifying the audit trail. `audit_record` is the only way to add an event."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from governance.audit.context import current_ip
from governance.audit.models import GENESIS_HASH, AuditEvent

# Arbitrary constant naming the advisory lock that serialises chain appends on PostgreSQL.
_CHAIN_LOCK_KEY = 0x41554449  # "AUDI"


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    # SQLite: transactions are BEGIN IMMEDIATE (settings), so writers are already serialised.


def audit_record(
    *,
    action: str,
    actor: Any = None,
    obj: models.Model | None = None,
    organisation_id: int | None = None,
    data: dict | None = None,
    actor_repr: str = "",
    object_repr: str = "",
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction."""
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if obj is not None and organisation_id is None:
        organisation_id = getattr(obj, "organisation_id", None)
        if organisation_id is None and obj._meta.label == "tenancy.Organisation":
            organisation_id = obj.pk
    with transaction.atomic():
        _lock_chain()
        prev = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
        event = AuditEvent(
            created_at=timezone.now(),
            actor=actor,
            actor_repr=(actor_repr or (actor.get_username() if actor else ""))[:200],
            action=action,
            object_type=obj._meta.label_lower if obj is not None else "",
            object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
            object_repr=(object_repr or (str(obj) if obj is not None else ""))[:200],
            organisation_id=organisation_id,
            ip_address=current_ip.get(),
            # Round-trip through JSON so the hash covers exactly what the database keeps.
            data=json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder)),
            prev_hash=prev,
        )
        event.hash = event.compute_hash()
        event.save()
    return event


@dataclass
class ChainBreak:
    event_id: int
    reason: str


def _iter_chain(batch_size: int = 2000) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        batch = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return
        yield from batch
        last_id = batch[-1].id


@dataclass(frozen=True)
class ChainAnchor:
    """The head of the chain as seen by an earlier verification (kept in its job run)."""

    event_id: int
    hash: str


def audit_chain_head() -> ChainAnchor | None:
    head = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
    return ChainAnchor(*head) if head else None


def audit_chain_verify(anchor: ChainAnchor | None = None) -> tuple[int, ChainBreak | None]:
    """Walk the chain in id order; return (events checked, first break or None).

    The chain alone cannot show that its newest events were removed; `anchor`, the head
    recorded by the previous verification, must still be there, unchanged.
    """
    if anchor is not None:
        still = AuditEvent.objects.filter(pk=anchor.event_id).values_list("hash", flat=True).first()
        if still != anchor.hash:
            return 0, ChainBreak(
                anchor.event_id, "the head recorded by the previous verification is missing or changed (truncated)"
            )
    expected_prev = GENESIS_HASH
    checked = 0
    for event in _iter_chain():
        if event.prev_hash != expected_prev:
            return checked, ChainBreak(event.id, "prev_hash does not match the preceding event (missing or reordered)")
        if event.compute_hash() != event.hash:
            return checked, ChainBreak(event.id, "content does not match its hash (edited)")
        expected_prev = event.hash
        checked += 1
    return checked, None
