"""Re-encrypt every encrypted field under the current data key (C06).

Operator flow: set CRYPTOGRAPHY_KEY=<new> and CRYPTOGRAPHY_KEY_FALLBACKS=<old>, restart the
app, run this command, then drop the old key from the fallbacks.

Each value carries the id of the key that wrote it (governance/core/encryption.py), so the
command rewrites only values not yet under the current key and blind indexes that differ
from their value under the current key. A rerun after a crash therefore resumes where the
last committed batch ended and rewrites nothing twice.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction
from django.db.models import ExpressionWrapper, F, Value
from django_scopes import scopes_disabled
from tqdm import tqdm

from governance.audit.services import audit_record
from governance.core.encryption import (
    ROTATION_HOOKS,
    BlindIndexField,
    DataKey,
    DecryptionError,
    current_key,
    decrypt_value,
    encrypt_value,
    encrypted_fields,
    key_id_of,
    keyring,
)

_RAW_PREFIX = "_raw_"


@dataclass
class ModelPlan:
    """What to read and rewrite for one model."""

    model: type[models.Model]
    encrypted: list[models.Field]
    indexes: list[BlindIndexField]

    @property
    def label(self) -> str:
        return self.model._meta.label

    @property
    def plain_sources(self) -> list[str]:
        """Blind-index sources that are not encrypted (read as ordinary columns)."""
        encrypted = {f.name for f in self.encrypted}
        return sorted({f.source for f in self.indexes if f.source not in encrypted})

    def read_batch(self, after_pk: Any, batch_size: int, *, lock: bool) -> list[dict[str, Any]]:
        """The next rows by pk, with encrypted columns as raw ciphertext bytes."""
        # _base_manager: every row, whatever a default manager or tenant scope would hide.
        qs = self.model._base_manager.order_by("pk")
        if after_pk is not None:
            qs = qs.filter(pk__gt=after_pk)
        if lock:
            qs = qs.select_for_update()  # a no-op on backends without row locks (SQLite)
        # Wrapping the column as a BinaryField skips the encrypted field's decrypting converter.
        raw = {
            _RAW_PREFIX + f.attname: ExpressionWrapper(F(f.attname), output_field=models.BinaryField())
            for f in self.encrypted
        }
        names = ["pk", *raw, *(f.attname for f in self.indexes), *self.plain_sources]
        return list(qs.annotate(**raw).values(*names)[:batch_size])


@dataclass
class ModelStats:
    rows_checked: int = 0
    rows_rewritten: int = 0
    values_reencrypted: int = 0
    indexes_recomputed: int = 0


def model_plans() -> list[ModelPlan]:
    plans = []
    for model in apps.get_models():
        encrypted = encrypted_fields(model)
        indexes = [f for f in model._meta.concrete_fields if isinstance(f, BlindIndexField)]
        if encrypted or indexes:
            plans.append(ModelPlan(model=model, encrypted=encrypted, indexes=indexes))
    return plans


def _write_row(model: type[models.Model], pk: Any, changes: dict[str, Any]) -> None:
    """One UPDATE of raw ciphertext and index values; the fields' own encryption is bypassed."""
    model._base_manager.filter(pk=pk).update(**changes)


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted field under CRYPTOGRAPHY_KEY (reading old values with "
        "CRYPTOGRAPHY_KEY_FALLBACKS) and recompute blind indexes. Resumable; safe to rerun."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction (default 500).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bars on stderr.")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be rewritten.")

    def handle(self, *args, batch_size: int, no_progress: bool, dry_run: bool, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        self._progress_file = options.get("stderr") or sys.stderr
        self._no_progress = no_progress
        key = current_key()
        plans = model_plans()
        with scopes_disabled():
            # Refuse before writing anything if some value was written under a key we no
            # longer hold (cheap: compares key-id headers, decrypts nothing).
            self._check_key_ids(plans, batch_size)
            stats = {plan.label: self._rotate(plan, key, batch_size, dry_run=dry_run) for plan in plans}
            files = {name: hook(key=key, dry_run=dry_run) for name, hook in ROTATION_HOOKS.items()}

        verb = "would be rewritten" if dry_run else "rewritten"
        for label, s in stats.items():
            self.stdout.write(
                f"{label}: {s.rows_checked} rows checked, {s.rows_rewritten} {verb} "
                f"({s.values_reencrypted} values re-encrypted, {s.indexes_recomputed} blind indexes recomputed)"
            )
        for name, (checked, rewritten) in files.items():
            self.stdout.write(f"{name}: {checked} checked, {rewritten} {verb}")
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")
            return
        audit_record(
            action="encryption.key_rotated",
            data={
                "key_id": key.key_id.hex(),
                "fallback_keys": len(keyring()) - 1,
                "models": {label: asdict(s) for label, s in stats.items()},
                "files": {name: {"checked": c, "rewritten": r} for name, (c, r) in files.items()},
            },
        )
        self.stdout.write(self.style.SUCCESS(f"Every encrypted value is under key {key.key_id.hex()}."))

    def _bar(self, plan: ModelPlan, desc: str) -> tqdm:
        return tqdm(
            total=plan.model._base_manager.count(),
            desc=desc,
            unit="row",
            file=self._progress_file,
            disable=self._no_progress,
        )

    def _walk(self, plan: ModelPlan, batch_size: int, handle_batch, *, write: bool, desc: str) -> None:
        """Hand each batch of rows to `handle_batch`; when writing, a transaction and row locks per batch."""
        after_pk = None
        with self._bar(plan, desc) as bar:
            while True:
                with transaction.atomic() if write else nullcontext():
                    rows = plan.read_batch(after_pk, batch_size, lock=write)
                    if not rows:
                        return
                    handle_batch(rows)
                after_pk = rows[-1]["pk"]
                bar.update(len(rows))

    def _check_key_ids(self, plans: list[ModelPlan], batch_size: int) -> None:
        known = {k.key_id for k in keyring()}
        for plan in plans:
            if not plan.encrypted:
                continue

            def check(rows: list[dict[str, Any]], plan: ModelPlan = plan) -> None:
                for row in rows:
                    for field in plan.encrypted:
                        raw = row[_RAW_PREFIX + field.attname]
                        if raw is not None and _key_id_or_none(raw) not in known:
                            raise _undecryptable(plan, row["pk"], field)

            self._walk(plan, batch_size, check, write=False, desc=f"{plan.label} (checking key ids)")

    def _rotate(self, plan: ModelPlan, key: DataKey, batch_size: int, *, dry_run: bool) -> ModelStats:
        stats = ModelStats()

        def rotate(rows: list[dict[str, Any]]) -> None:
            for row in rows:
                stats.rows_checked += 1
                changes = self._changes(plan, row, key, stats)
                if changes:
                    stats.rows_rewritten += 1
                    if not dry_run:
                        _write_row(plan.model, row["pk"], changes)

        self._walk(plan, batch_size, rotate, write=not dry_run, desc=plan.label)
        return stats

    def _changes(self, plan: ModelPlan, row: dict[str, Any], key: DataKey, stats: ModelStats) -> dict[str, Any]:
        """Column -> new value for every stale ciphertext or blind index of one row."""
        changes: dict[str, Any] = {}
        plain: dict[str, Any] = {name: row[name] for name in plan.plain_sources}
        index_sources = {f.source for f in plan.indexes}
        for field in plan.encrypted:
            raw = row[_RAW_PREFIX + field.attname]
            if raw is None:
                plain[field.name] = None
                continue
            stale = key_id_of(raw) != key.key_id
            if not stale and field.name not in index_sources:
                continue  # current and not needed for an index: never decrypted
            try:
                plain[field.name] = decrypt_value(raw)
            except DecryptionError as exc:
                raise _undecryptable(plan, row["pk"], field) from exc
            if stale:
                token = encrypt_value(plain[field.name], key)
                changes[field.attname] = Value(token, output_field=models.BinaryField())
                stats.values_reencrypted += 1
        for index in plan.indexes:
            expected = index.compute(SimpleNamespace(**{index.source: plain[index.source]}), key=key)
            if row[index.attname] != expected:
                changes[index.attname] = expected
                stats.indexes_recomputed += 1
        return changes


def _undecryptable(plan: ModelPlan, pk: Any, field: models.Field) -> CommandError:
    return CommandError(
        f"{plan.label} pk={pk} field {field.name!r} cannot be decrypted with any configured key. "
        "Put the key it was written with in CRYPTOGRAPHY_KEY_FALLBACKS (or restore the value) and run "
        "the command again; batches already committed stay readable under the current key."
    )


def _key_id_or_none(raw: bytes) -> bytes | None:
    try:
        return key_id_of(raw)
    except DecryptionError:
        return None
