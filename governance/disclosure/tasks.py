"""Celery adapters for vulnerability disclosure: they re-fetch by id and call services."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from governance.core.jobs import job_run
from governance.disclosure import services
from governance.disclosure.models import VulnerabilityReport

log = logging.getLogger(__name__)

REMIND_TASK = "governance.disclosure.tasks.remind_vulnerability_reports"


# An acknowledgement sent twice is better than none, so redelivery after a lost worker is fine.
@shared_task(
    name="governance.disclosure.tasks.acknowledge_report",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OSError,),
    retry_backoff=30,
    max_retries=8,
)
def acknowledge_report(report_id: int) -> None:
    """Tell the reporter we received their report (only our text and the reference)."""
    report = VulnerabilityReport.objects.filter(pk=report_id).first()
    if report is None:
        log.warning("vulnerability report %s vanished before its acknowledgement", report_id)
        return
    services.report_acknowledge(report=report)


@shared_task(name=REMIND_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def remind_vulnerability_reports() -> None:
    """Daily: remind security officers of reports near or past the first-response target."""
    with job_run(REMIND_TASK, lock_ttl=timedelta(minutes=10)) as run:
        if run is None:
            return
        for key, amount in services.reports_remind(now=timezone.now()).items():
            run.add(key, amount)
