"""Evidence for deletion and backups (C21, C22, C24): terminations, clean-up runs,
deletion certificates, the backup register and the daily policy checks."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Max, Q
from django.utils import timezone

from governance.retention.models import (
    BackupPolicyCheck,
    BackupRecord,
    CleanupRun,
    DeletionCertificate,
    Termination,
)
from governance.trust.evidence.base import (
    FAILING,
    KEPT,
    NO_DATA,
    Period,
    Record,
    admin_url,
    as_of,
    commitment,
    day,
    plural,
    result,
)

# The expiry task runs daily: an artefact kept a day past its expiry is a miss.
EXPIRY_GRACE = timedelta(days=1)


@commitment("C21", "Terminated accounts' data deleted at the next clean-up (every 6-12 months)")
def deletion_at_next_cleanup(period: Period):
    from governance.retention.cadence import next_cleanup_date

    now = as_of(period)
    last_run = (
        CleanupRun.objects.filter(status=CleanupRun.Status.COMPLETED, finished_at__lt=period.until)
        .order_by("-finished_at")
        .first()
    )
    next_date = next_cleanup_date(now=now)
    waiting = Termination.objects.filter(status__in=[Termination.Status.CONFIRMED, Termination.Status.PURGING])
    overdue = timezone.localdate(now) > next_date
    # A termination confirmed before the last completed run started should have been in it.
    missed = list(waiting.filter(confirmed_at__lt=last_run.started_at)[:20]) if last_run else []
    late_waiting = list(waiting[:20]) if overdue else []
    certs = DeletionCertificate.objects.filter(issued_at__gte=period.since, issued_at__lt=period.until).count()
    confirmed = Termination.objects.filter(confirmed_at__gte=period.since, confirmed_at__lt=period.until).count()
    records = [
        Record(str(t), "confirmed before the last clean-up run but not purged by it", admin_url(t)) for t in missed
    ]
    records += [
        Record(str(t), f"waiting for a clean-up that was due {next_date:%Y-%m-%d}", admin_url(t))
        for t in late_waiting
        if t not in missed
    ]
    figures = {
        "terminations_confirmed": confirmed,
        "deletion_certificates": certs,
        "waiting_for_cleanup": waiting.count(),
        "last_cleanup": day(last_run.finished_at) if last_run else None,
        "next_cleanup": f"{next_date:%Y-%m-%d}",
        "interval_months": settings.RETENTION_CLEANUP_INTERVAL_MONTHS,
    }
    summary = (
        f"{plural(confirmed, 'termination')} confirmed, {plural(certs, 'deletion certificate')} issued; "
        f"last clean-up {figures['last_cleanup'] or 'not run yet'}, next {figures['next_cleanup']} "
        f"(every {figures['interval_months']} months), {figures['waiting_for_cleanup']} waiting"
    )
    if not confirmed and not certs and not figures["waiting_for_cleanup"] and last_run is None:
        return result(NO_DATA, summary, figures)
    return result(FAILING if records else KEPT, summary, figures, records, source="terminations, clean-up runs")


@commitment("C22", "Deleted data gone from backups after 3 months")
def gone_from_backups(period: Period):
    now = as_of(period)
    days = settings.RETENTION_BACKUP_DAYS
    certs = DeletionCertificate.objects.filter(issued_at__gte=period.since, issued_at__lt=period.until).aggregate(
        purged=Count("pk"), clear_by=Max("backups_clear_at")
    )
    kept_too_long = list(
        BackupRecord.objects.exclude(status=BackupRecord.Status.EXPIRED)
        .filter(Q(expires_at__lt=now - EXPIRY_GRACE) | Q(expires_at__gt=F("finished_at") + timedelta(days=days)))
        .order_by("expires_at")[:20]
    )
    expired = BackupRecord.objects.filter(expired_at__gte=period.since, expired_at__lt=period.until).count()
    records = [
        Record(
            str(b),
            f"artefact still kept; it expired {day(b.expires_at)}"
            if b.expires_at < now
            else "expiry set beyond the retention period",
            admin_url(b),
        )
        for b in kept_too_long
    ]
    figures = {
        "organisations_purged": certs["purged"],
        "last_backup_copies_expire_by": day(certs["clear_by"]) if certs["clear_by"] else None,
        "artefacts_expired": expired,
        "artefacts_kept_too_long": len(records),
        "retention_days": days,
    }
    if not certs["purged"] and not expired and not records:
        return result(
            NO_DATA,
            f"no organisations purged and no backup artefacts expired in the period (kept {days} days)",
            figures,
        )
    summary = (
        f"{plural(certs['purged'], 'organisation')} purged"
        + (f"; their last backup copies expire by {figures['last_backup_copies_expire_by']}" if certs["purged"] else "")
        + f"; {plural(expired, 'backup artefact')} deleted after {days} days, {len(records)} kept too long"
    )
    return result(
        FAILING if records else KEPT, summary, figures, records, source="deletion certificates, backup register"
    )


@commitment("C24", "Weekly full and daily incremental backups, encrypted, kept 3 months")
def backups(period: Period):
    backups_in = BackupRecord.objects.filter(finished_at__gte=period.since, finished_at__lt=period.until)
    totals = backups_in.aggregate(
        full=Count("pk", filter=Q(kind=BackupRecord.Kind.FULL, status__in=["succeeded", "expired"])),
        incremental=Count("pk", filter=Q(kind=BackupRecord.Kind.INCREMENTAL, status__in=["succeeded", "expired"])),
        failed=Count("pk", filter=Q(status=BackupRecord.Status.FAILED)),
        unencrypted=Count("pk", filter=Q(encrypted=False)),
    )
    checks = BackupPolicyCheck.objects.filter(checked_at__gte=period.since, checked_at__lt=period.until)
    check_totals = checks.aggregate(checks=Count("pk"), last=Max("checked_at"))
    # `alerted` is set exactly when a check found misses.
    missed = list(checks.filter(alerted=True).order_by("-checked_at")[:20])
    n_missed = checks.filter(alerted=True).count()
    figures = {**totals, "policy_checks": check_totals["checks"], "checks_with_misses": n_missed}
    if not check_totals["checks"] and not any(totals.values()):
        return result(NO_DATA, "no backups registered and no policy checks in the period", figures)
    records = [
        Record(f"Policy check {c.checked_at:%Y-%m-%d %H:%M}", "; ".join(c.misses)[:300], admin_url(c)) for c in missed
    ]
    summary = (
        f"{plural(totals['full'], 'full backup')} and {plural(totals['incremental'], 'incremental')}, "
        f"{totals['unencrypted']} unencrypted, {totals['failed']} failed; "
        f"{plural(check_totals['checks'], 'daily policy check')}, "
        f"{n_missed} with misses"
    )
    return result(FAILING if records else KEPT, summary, figures, records, source="backup register, policy checks")
