"""The backup register (C24), its daily policy check and artefact expiry (C22)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import storages
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from governance.audit.services import audit_record
from governance.retention.models import BackupPolicyCheck, BackupRecord

log = logging.getLogger(__name__)


def backup_register(
    *,
    kind: str,
    source: str,
    started_at: datetime,
    finished_at: datetime,
    size_bytes: int,
    checksum: str,
    encrypted: bool,
    location: str,
    artefact: str = "",
    succeeded: bool = True,
    reported_by: str,
) -> BackupRecord:
    """Record one backup run reported by an external tool; it expires after 90 days."""
    errors = {}
    if kind not in BackupRecord.Kind.values:
        errors["kind"] = f"Choose one of {', '.join(BackupRecord.Kind.values)}."
    if not source.strip():
        errors["source"] = "Name the tool and database."
    if not location.strip():
        errors["location"] = "Give the storage location."
    if timezone.is_naive(started_at) or timezone.is_naive(finished_at):
        errors["finished_at"] = "Give times with a time zone."
    elif finished_at < started_at:
        errors["finished_at"] = "The end is before the start."
    elif finished_at > timezone.now() + timedelta(minutes=5):
        errors["finished_at"] = "The end is in the future."
    if size_bytes < 0:
        errors["size_bytes"] = "The size cannot be negative."
    if errors:
        from django.core.exceptions import ValidationError

        raise ValidationError(errors)
    with transaction.atomic():
        record = BackupRecord.objects.create(
            kind=kind,
            source=source.strip()[:200],
            started_at=started_at,
            finished_at=finished_at,
            size_bytes=size_bytes,
            checksum=checksum.strip()[:128],
            encrypted=encrypted,
            location=location.strip()[:100],
            artefact=artefact.strip()[:500],
            expires_at=finished_at + timedelta(days=settings.RETENTION_BACKUP_DAYS),
            status=BackupRecord.Status.SUCCEEDED if succeeded else BackupRecord.Status.FAILED,
            reported_by=reported_by[:100],
        )
        audit_record(
            action="retention.backup_registered",
            actor_repr=reported_by,
            obj=record,
            data={"kind": kind, "encrypted": encrypted, "location": record.location, "status": record.status},
        )
    return record


def policy_misses(*, now: datetime | None = None) -> list[str]:
    """What the register shows against the backup policy, in words (empty: all good)."""
    now = now or timezone.now()
    misses = []
    limits = {
        BackupRecord.Kind.FULL: settings.RETENTION_FULL_BACKUP_MAX_AGE_DAYS,
        BackupRecord.Kind.INCREMENTAL: settings.RETENTION_INCREMENTAL_BACKUP_MAX_AGE_DAYS,
    }
    live = BackupRecord.objects.exclude(status=BackupRecord.Status.EXPIRED)
    for kind, days in limits.items():
        last = live.filter(kind=kind, status=BackupRecord.Status.SUCCEEDED).order_by("-finished_at").first()
        if last is None:
            misses.append(f"No successful {kind} backup is registered.")
        elif last.finished_at < now - timedelta(days=days):
            misses.append(
                f"The last {kind} backup finished {last.finished_at:%Y-%m-%d %H:%M} UTC, more than {days} day(s) ago."
            )
    recent = live.filter(finished_at__gte=now - timedelta(days=settings.RETENTION_BACKUP_DAYS))
    if n := recent.filter(encrypted=False).count():
        misses.append(f"{n} backup(s) within the retention period are not encrypted.")
    primary = settings.RETENTION_PRIMARY_LOCATION
    if n := recent.exclude(location=primary).count():
        misses.append(f"{n} backup(s) are stored outside the primary location ({primary}).")
    if n := live.filter(status=BackupRecord.Status.FAILED, finished_at__gte=now - timedelta(days=1)).count():
        misses.append(f"{n} backup run(s) failed in the last day.")
    return misses


def backup_policy_check(*, now: datetime | None = None) -> BackupPolicyCheck:
    """Record the check; on any miss email the security officers (after commit)."""
    now = now or timezone.now()
    misses = policy_misses(now=now)
    with transaction.atomic():
        check = BackupPolicyCheck.objects.create(checked_at=now, misses=misses, alerted=bool(misses))
        audit_record(action="retention.backup_policy_checked", obj=check, data={"misses": misses})
        if misses:
            transaction.on_commit(lambda: _alert(check))
    return check


def _alert(check: BackupPolicyCheck) -> None:
    from governance.access.services import internal_approvers

    recipients = sorted({u.email for u in internal_approvers() if u.email})
    if not recipients:
        log.error("backup policy misses but no security officer has an email address: %s", check.misses)
        return
    body = render_to_string(
        "retention/email/backup_policy.txt",
        {
            "check": check,
            "full_days": settings.RETENTION_FULL_BACKUP_MAX_AGE_DAYS,
            "incremental_days": settings.RETENTION_INCREMENTAL_BACKUP_MAX_AGE_DAYS,
            "location": settings.RETENTION_PRIMARY_LOCATION,
        },
    )
    send_mail("Backup policy check: action needed", body, settings.DEFAULT_FROM_EMAIL, recipients)


def backups_expire(*, now: datetime | None = None) -> int:
    """Delete every artefact past its expiry from the backup storage; keep the record."""
    now = now or timezone.now()
    storage = storages[settings.RETENTION_BACKUP_STORAGE]
    done = 0
    due = BackupRecord.objects.filter(expires_at__lte=now).exclude(status=BackupRecord.Status.EXPIRED)
    for pk in due.values_list("pk", flat=True).iterator():
        with transaction.atomic():
            record = (
                BackupRecord.objects.select_for_update(skip_locked=True)
                .filter(pk=pk)
                .exclude(status=BackupRecord.Status.EXPIRED)
                .first()
            )
            if record is None:
                continue
            # Storage first: if it fails the record stays unexpired and the next run retries.
            existed = bool(record.artefact) and storage.exists(record.artefact)
            if existed:
                storage.delete(record.artefact)
            record.status = BackupRecord.Status.EXPIRED
            record.expired_at = now
            record.save(update_fields=["status", "expired_at"])
            audit_record(
                action="retention.backup_expired",
                obj=record,
                data={"artefact": record.artefact, "deleted_from_storage": existed},
            )
            done += 1
    return done
