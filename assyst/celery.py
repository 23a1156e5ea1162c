"""The Celery application and the one place where periodic schedules are declared."""

from __future__ import annotations

import os
import ssl

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assyst.settings")

app = Celery("assyst")


def _configure(app: Celery) -> None:
    from django.conf import settings

    broker_url = settings.CELERY_BROKER_URL
    options: dict = {"visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT}
    extra: dict = {}
    if broker_url.startswith("filesystem://"):
        # Embedded default: one folder on disk is the queue, shared by web, worker and beat.
        folder = settings.CELERY_BROKER_DIR
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            # Exchange bindings; kombu's default is "control" in the working directory.
            "control_folder": str(folder / "control"),
            "store_processed": False,
            # kombu polls the folder once a second by default, which caps a worker at about
            # one task a second while it holds a prefetched task (measured in bench/).
            "polling_interval": 0.1,
        }
        # The filesystem transport has no fan-out: no remote control, gossip or mingle.
        extra["worker_enable_remote_control"] = False
    elif broker_url.startswith("rediss://"):
        cert_reqs = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
        extra["broker_use_ssl"] = {"ssl_cert_reqs": cert_reqs[settings.REDIS_SSL_CERT_REQS]}

    app.conf.update(
        broker_url=broker_url,
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        task_ignore_result=True,
        result_backend=None,
        # Safe defaults for every task; idempotent tasks opt in to acks_late themselves.
        task_acks_late=False,
        task_reject_on_worker_lost=False,
        task_soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
        task_time_limit=settings.CELERY_TASK_TIME_LIMIT,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        beat_schedule=BEAT_SCHEDULE,
        beat_schedule_filename=settings.CELERY_BEAT_SCHEDULE_FILE,
        **extra,
    )


# Every periodic task of the portal, each with the reason it runs at that rate.
# Deadlines are rows in the database scanned by these tasks, never long ETAs.
BEAT_SCHEDULE: dict[str, dict] = {
    "heartbeat": {
        # Evidence that worker and beat are alive; /healthz reports the last one.
        "task": "governance.core.tasks.heartbeat",
        "schedule": 60.0,
    },
    "expire-support-access": {
        # Undecided requests expire and ended grants lose their permissions within a minute
        # (access checks already honour the end time; this is the second line).
        "task": "governance.access.tasks.expire_support_access",
        "schedule": 60.0,
    },
    "verify-audit-chain": {
        # Daily proof that the audit trail is unbroken (C25), kept as a job run.
        "task": "governance.audit.tasks.verify_audit_chain",
        "schedule": crontab(hour=3, minute=17),
    },
    "open-access-review": {
        # Daily idempotent check rather than once a quarter, so beat downtime on day one only delays the review (C05).
        "task": "governance.access.tasks_reviews.open_access_review",
        "schedule": crontab(hour=2, minute=0),
    },
    "escalate-access-reviews": {
        # Daily reminder to security officers and the DPO while a review is overdue (at most one per 24 h).
        "task": "governance.access.tasks_reviews.escalate_access_reviews",
        "schedule": crontab(hour=8, minute=0),
    },
    "remind-report-requests": {
        # Daily before the UK working day: reminders a working day before a report's target, overdue flags (C16).
        "task": "incidents.tasks_reports.remind_report_requests",
        "schedule": crontab(hour=6, minute=30),
    },
    "watch-notice-deadlines": {
        # Breach-notice deadlines (C12, C13) escalate at 50/75/90 % and are marked missed within a minute of the time.
        "task": "incidents.tasks_deadlines.watch_notice_deadlines",
        "schedule": 60.0,
    },
    "sweep-outbox": {
        # Notices whose task was lost (broker down, worker killed) or whose retry is due go out within a minute (C15).
        "task": "incidents.tasks.sweep_outbox",
        "schedule": 60.0,
    },
    "remind-legal-requests": {
        # Daily: legal response deadlines within 2 days, expired non-disclosure orders with customers not told (C27).
        "task": "governance.legal.tasks.remind_legal_requests",
        "schedule": crontab(hour=7, minute=15),
    },
    "remind-vulnerability-reports": {
        # Daily before the UK working day: reports near or past the 3-working-day first-response target (C11).
        "task": "governance.disclosure.tasks.remind_vulnerability_reports",
        "schedule": crontab(hour=6, minute=45),
    },
    "retention-cleanup": {
        # Daily "is a clean-up due?" check: the 6-12-monthly run starts (or resumes after a crash) within a day (C21).
        "task": "governance.retention.tasks.run_cleanup_if_due",
        "schedule": crontab(hour=1, minute=30),
    },
    "backup-policy-check": {
        # Daily: full <= 7 days, incremental <= 1 day, encrypted, primary location; misses email officers (C24).
        "task": "governance.retention.tasks.check_backup_policy",
        "schedule": crontab(hour=7, minute=30),
    },
    "expire-backups": {
        # Daily: artefacts past 90 days are deleted from storage and marked expired (C22).
        "task": "governance.retention.tasks.expire_backups",
        "schedule": crontab(hour=4, minute=10),
    },
    "remind-risk-reviews": {
        # Daily: owners emailed 30 and 7 days before a risk's review and on the day; overdue risks flagged (C26).
        "task": "governance.risk.tasks.remind_risk_reviews",
        "schedule": crontab(hour=6, minute=15),
    },
    "expire-risk-acceptances": {
        # Daily: acceptances past their expiry reopen the risk and notify its owner (C26).
        "task": "governance.risk.tasks.expire_risk_acceptances",
        "schedule": crontab(hour=0, minute=20),
    },
    "check-continuity-plans": {
        # Daily: continuity plans with an overdue review or no exercise within a year are flagged to owners (C23).
        "task": "governance.risk.tasks.check_continuity_plans",
        "schedule": crontab(hour=6, minute=20),
    },
    "backup-portal-db-full": {
        # Weekly full backup of the portal's own database, encrypted and registered (C24).
        "task": "governance.retention.tasks.backup_portal_database",
        "schedule": crontab(hour=0, minute=40, day_of_week="sun"),
        "args": ("full",),
    },
    "backup-portal-db-incremental": {
        # Daily on the other six days, so no restore point is older than a day (C24); before the 07:30 policy check.
        "task": "governance.retention.tasks.backup_portal_database",
        "schedule": crontab(hour=0, minute=40, day_of_week="mon-sat"),
        "args": ("incremental",),
    },
    "purge-idempotency-records": {
        # Daily: API Idempotency-Key records (with the first response) live API_IDEMPOTENCY_HOURS only.
        "task": "governance.api.tasks.purge_idempotency_records",
        "schedule": crontab(hour=3, minute=30),
    },
}

_configure(app)
app.autodiscover_tasks()
