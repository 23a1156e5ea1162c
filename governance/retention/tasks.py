"""Celery adapters for retention: re-fetch by id, call services, record job runs."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string

from governance.core.jobs import EMAIL_TASK_OPTIONS, job_run
from governance.retention import backups, services
from governance.retention.cadence import cleanup_due, next_cleanup_date
from governance.retention.models import DeletionCertificate, Termination

log = logging.getLogger(__name__)

CLEANUP_TASK = "governance.retention.tasks.run_cleanup_if_due"
POLICY_TASK = "governance.retention.tasks.check_backup_policy"
EXPIRY_TASK = "governance.retention.tasks.expire_backups"
OWN_BACKUP_TASK = "governance.retention.tasks.backup_portal_database"
# The lease outlives any single run's time limit; a killed worker's lease lapses and the
# next daily check resumes the purge from its recorded progress.
CLEANUP_LEASE = timedelta(hours=2)


@shared_task(name=CLEANUP_TASK, ignore_result=True)
def run_cleanup_if_due() -> None:
    """Daily: start (or resume) the clean-up run when its date has come (C21)."""
    with job_run(CLEANUP_TASK, lock_ttl=CLEANUP_LEASE) as rec:
        if rec is None:
            return
        if not cleanup_due():
            rec.add("not_due")
            return
        run = services.cleanup_run()
        rec.add("organisations", run.organisations)
        log.info("clean-up run %s done; next due %s", run.pk, next_cleanup_date())


@shared_task(name="governance.retention.tasks.email_certificate", **EMAIL_TASK_OPTIONS)
def email_certificate(certificate_id: int) -> None:
    """Send a deletion certificate to the organisation's former admins, then forget them."""
    cert = DeletionCertificate.objects.select_related("termination").filter(pk=certificate_id).first()
    if cert is None or cert.emailed_at is not None:
        return
    recipients = [a for a in cert.termination.certificate_recipients.splitlines() if a.strip()]
    if recipients:
        body = render_to_string(
            "retention/email/certificate.txt",
            {"certificate": cert, "content": services.certificate_content(cert)},
        )
        # One message per address: former admins of one customer need not see each other's.
        for address in recipients:
            send_mail(
                f"Deletion certificate: {cert.organisation_name}",
                body,
                settings.DEFAULT_FROM_EMAIL,
                [address],
            )
    services.certificate_mark_emailed(certificate=cert, recipients=len(recipients))


@shared_task(name="governance.retention.tasks.email_termination_requested", **EMAIL_TASK_OPTIONS)
def email_termination_requested(termination_id: int) -> None:
    """A customer admin asked to terminate: tell the security officers, one of whom must confirm."""
    from governance.access.services import internal_approvers

    termination = Termination.objects.filter(pk=termination_id, status=Termination.Status.REQUESTED).first()
    if termination is None:
        return
    recipients = sorted({u.email for u in internal_approvers() if u.email})
    if recipients:
        body = render_to_string("retention/email/termination_requested.txt", {"termination": termination})
        send_mail(
            f"Termination requested by {termination.organisation_name}: confirm or cancel",
            body,
            settings.DEFAULT_FROM_EMAIL,
            recipients,
        )


@shared_task(name="governance.retention.tasks.email_termination_notice", **EMAIL_TASK_OPTIONS)
def email_termination_notice(termination_id: int) -> None:
    """The termination notice: to the organisation's admins and primary contact, one message each."""
    from governance.retention.views_portal import notice_context
    from governance.tenancy.models import Organisation

    termination = Termination.objects.filter(pk=termination_id, status=Termination.Status.CONFIRMED).first()
    if termination is None:
        return
    organisation = Organisation._base_manager.filter(pk=termination.organisation_pk).first()
    addresses = {a.strip() for a in termination.certificate_recipients.splitlines() if a.strip()}
    if organisation is not None and organisation.primary_contact_email:
        addresses.add(organisation.primary_contact_email)
    body = render_to_string("retention/email/termination_notice.txt", notice_context(termination))
    for address in sorted(addresses):
        send_mail(f"Termination notice: {termination.organisation_name}", body, settings.DEFAULT_FROM_EMAIL, [address])


@shared_task(name=POLICY_TASK, **EMAIL_TASK_OPTIONS)
def check_backup_policy() -> None:
    """Daily: full <= 7 days, incremental <= 1 day, encrypted, primary location (C24)."""
    with job_run(POLICY_TASK, lock_ttl=timedelta(minutes=30)) as rec:
        if rec is None:
            return
        check = backups.backup_policy_check()
        rec.add("misses", len(check.misses))


@shared_task(name=EXPIRY_TASK, ignore_result=True)
def expire_backups() -> None:
    """Daily: delete artefacts past their 90 days from storage; keep the record (C22)."""
    with job_run(EXPIRY_TASK, lock_ttl=timedelta(hours=1)) as rec:
        if rec is None:
            return
        rec.add("expired", backups.backups_expire())


@shared_task(name=OWN_BACKUP_TASK, ignore_result=True)
def backup_portal_database(kind: str) -> None:
    """Weekly full, daily incremental: the portal's own database, encrypted and registered (C24).

    Not retried: a failed run is registered as failed, the daily policy check alerts, and
    the next scheduled run tries again.
    """
    from governance.retention.owndb import database_backup

    with job_run(OWN_BACKUP_TASK, lock_ttl=timedelta(hours=2)) as rec:
        if rec is None:
            return
        record = database_backup(kind=kind)
        rec.add(kind)
        rec.add("bytes", record.size_bytes)
