"""Termination and clean-up (C21): every state change is one function here.

Called the same way from the admin, the management command and the Celery tasks. Each
runs in a transaction, checks its rule and writes its audit event in it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from governance.access import services as access
from governance.access.models import SupportAccessRequest, SupportGrant, User
from governance.access.roles import SECURITY_OFFICER
from governance.audit.services import audit_record
from governance.retention import purge
from governance.retention.cadence import next_cleanup_date
from governance.retention.models import CleanupRun, DeletionCertificate, Termination
from governance.tenancy.models import Membership, Organisation

log = logging.getLogger(__name__)

TERMINATION_PERMISSION = "retention.confirm_termination"


def is_retention_officer(user: User) -> bool:
    return (
        user.is_active
        and user.is_staff
        and user.groups.filter(name=SECURITY_OFFICER).exists()
        and user.has_perm(TERMINATION_PERMISSION)
    )


# --- termination ------------------------------------------------------------------------------


def termination_request(*, organisation: Organisation, acting_user: User, reason: str) -> Termination:
    """A security officer, or the organisation's own customer admin, asks to terminate it."""
    if is_retention_officer(acting_user):
        via = Termination.Via.STAFF
    elif access.is_customer_admin(acting_user, organisation):
        via = Termination.Via.CUSTOMER
    else:
        raise PermissionDenied("Only a security officer or this organisation's customer admin can ask for termination.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the account is terminated."})
    with transaction.atomic():
        organisation = Organisation._base_manager.select_for_update().get(pk=organisation.pk)
        if organisation.status != Organisation.Status.ACTIVE:
            raise ValidationError("This organisation is already terminated.")
        if (
            Termination.objects.filter(organisation_pk=organisation.pk)
            .exclude(status=Termination.Status.CANCELLED)
            .exists()
        ):
            raise ValidationError("A termination of this organisation is already open.")
        termination = Termination.objects.create(
            organisation=organisation,
            organisation_pk=organisation.pk,
            organisation_name=organisation.name,
            reason=reason.strip(),
            requested_via=via,
            requested_by=acting_user,
            requested_by_repr=acting_user.get_username(),
            requested_at=timezone.now(),
        )
        audit_record(
            action="retention.termination_requested",
            actor=acting_user,
            obj=termination,
            organisation_id=organisation.pk,
            data={"reason": termination.reason, "via": via},
        )
        if via == Termination.Via.CUSTOMER:
            from governance.retention.tasks import email_termination_requested

            transaction.on_commit(lambda: email_termination_requested.delay(termination.pk))
    return termination


def termination_cancel(*, termination: Termination, acting_user: User, reason: str) -> Termination:
    """Withdraw a request that has not been confirmed yet."""
    if not is_retention_officer(acting_user) and acting_user.pk != termination.requested_by_id:
        raise PermissionDenied("Only a security officer or the requester can cancel this request.")
    with transaction.atomic():
        termination = Termination.objects.select_for_update().get(pk=termination.pk)
        if termination.status != Termination.Status.REQUESTED:
            raise ValidationError("Only a request awaiting confirmation can be cancelled.")
        termination.status = Termination.Status.CANCELLED
        termination.save(update_fields=["status"])
        audit_record(
            action="retention.termination_cancelled",
            actor=acting_user,
            obj=termination,
            organisation_id=termination.organisation_pk,
            data={"reason": reason.strip()},
        )
    return termination


def termination_confirm(*, termination: Termination, acting_user: User) -> Termination:
    """The second person confirms: the account ends now and waits for the next clean-up.

    Ends every customer login (accounts deactivated, sessions deleted), every support
    grant and pending support request, and marks the organisation terminated so customer
    views and the portal refuse it.
    """
    if not is_retention_officer(acting_user):
        raise PermissionDenied("Only a security officer can confirm a termination.")
    now = timezone.now()
    with transaction.atomic():
        termination = Termination.objects.select_for_update().get(pk=termination.pk)
        if termination.status != Termination.Status.REQUESTED:
            raise ValidationError(f"This termination is already {termination.get_status_display().lower()}.")
        if termination.requested_by_id == acting_user.pk:
            raise PermissionDenied("A termination must be confirmed by someone other than its requester.")
        organisation = Organisation._base_manager.select_for_update().get(pk=termination.organisation_pk)
        memberships = Membership._base_manager.filter(organisation=organisation).select_related("user")
        admins = sorted({m.user.email for m in memberships if m.role == Membership.Role.ADMIN and m.user.email})
        user_ids = [m.user_id for m in memberships]

        organisation.status = Organisation.Status.TERMINATED
        organisation.save(update_fields=["status"])
        User.objects.filter(pk__in=user_ids).update(is_active=False)
        sessions_ended = _delete_sessions(set(user_ids))
        grants = _end_support_access(organisation, acting_user)

        termination.status = Termination.Status.CONFIRMED
        termination.confirmed_by = acting_user
        termination.confirmed_by_repr = acting_user.get_username()
        termination.confirmed_at = now
        termination.certificate_recipients = "\n".join(admins)
        termination.save(
            update_fields=["status", "confirmed_by", "confirmed_by_repr", "confirmed_at", "certificate_recipients"]
        )
        audit_record(
            action="retention.terminated",
            actor=acting_user,
            obj=termination,
            organisation_id=organisation.pk,
            data={
                "requested_by": termination.requested_by_repr,
                "reason": termination.reason,
                "accounts_deactivated": len(user_ids),
                "sessions_ended": sessions_ended,
                "grants_revoked": grants,
                "scheduled_cleanup": next_cleanup_date(),
            },
        )
        from governance.retention.tasks import email_termination_notice

        transaction.on_commit(lambda: email_termination_notice.delay(termination.pk))
    return termination


def _delete_sessions(user_ids: set[int]) -> int:
    """Delete the database sessions of these accounts (sessions do not index the user)."""
    if not user_ids:
        return 0
    doomed = []
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator(chunk_size=2000):
        uid = session.get_decoded().get(SESSION_KEY)
        if uid is not None and int(uid) in user_ids:
            doomed.append(session.pk)
    Session.objects.filter(pk__in=doomed).delete()
    return len(doomed)


def _end_support_access(organisation: Organisation, acting_user: User) -> int:
    now = timezone.now()
    reason = "Organisation terminated."
    grants = SupportGrant.objects.with_scopes_disabled().filter(
        organisation=organisation, revoked_at__isnull=True, ends_at__gt=now
    )
    revoked = 0
    for grant in grants:
        access.grant_revoke(grant=grant, acting_user=acting_user, reason=reason)
        revoked += 1
    pending = SupportAccessRequest.objects.with_scopes_disabled().filter(
        organisation=organisation, status=SupportAccessRequest.Status.PENDING
    )
    for request in pending:
        access.support_request_cancel(request=request, acting_user=acting_user)
    return revoked


def termination_for(organisation: Organisation) -> Termination | None:
    return (
        Termination.objects.filter(organisation_pk=organisation.pk)
        .exclude(status=Termination.Status.CANCELLED)
        .order_by("-requested_at")
        .first()
    )


# --- clean-up run -----------------------------------------------------------------------------


def _pending_terminations():
    return Termination.objects.filter(status__in=[Termination.Status.CONFIRMED, Termination.Status.PURGING]).order_by(
        "confirmed_at", "pk"
    )


def cleanup_preview() -> list[tuple[Termination, dict[str, int]]]:
    """The dry run: per pending termination, what would be deleted now. Changes nothing."""
    plan = purge.purge_plan()
    result = []
    for termination in _pending_terminations():
        user_ids = termination.customer_user_ids or _customer_user_ids(termination.organisation_pk)
        counts = purge.count_remaining(plan, organisation_id=termination.organisation_pk, user_ids=user_ids)
        if Organisation._base_manager.filter(pk=termination.organisation_pk).exists():
            counts["tenancy.Organisation"] = 1
        result.append((termination, counts))
    return result


def _customer_user_ids(organisation_id: int) -> list[int]:
    return sorted(Membership._base_manager.filter(organisation_id=organisation_id).values_list("user_id", flat=True))


def cleanup_run(*, batch_size: int | None = None) -> CleanupRun:
    """Purge every terminated organisation, one after another, and certify each.

    A run that fails stays FAILED; the next attempt starts a new run that resumes each
    organisation where its progress stopped.
    """
    batch_size = batch_size or settings.RETENTION_PURGE_BATCH_SIZE
    run = CleanupRun.objects.create(started_at=timezone.now())
    audit_record(action="retention.cleanup_started", obj=run)
    try:
        plan = purge.purge_plan()
        for termination in _pending_terminations():
            organisation_purge(termination=termination, run=run, plan=plan, batch_size=batch_size)
            run.organisations += 1
            run.save(update_fields=["organisations"])
    except BaseException as exc:
        run.status = CleanupRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"[:5000]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        audit_record(action="retention.cleanup_failed", obj=run, data={"error": run.error})
        raise
    run.status = CleanupRun.Status.COMPLETED
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at"])
    audit_record(
        action="retention.cleanup_completed",
        obj=run,
        data={"organisations": run.organisations, "next_run": next_cleanup_date()},
    )
    return run


def organisation_purge(
    *, termination: Termination, run: CleanupRun, plan: purge.Plan | None = None, batch_size: int = 1000
) -> DeletionCertificate:
    """Delete one terminated organisation's data, resumably, and issue its certificate."""
    plan = plan or purge.purge_plan()
    with transaction.atomic():
        termination = Termination.objects.select_for_update().get(pk=termination.pk)
        if termination.status not in (Termination.Status.CONFIRMED, Termination.Status.PURGING):
            raise ValidationError("Only a confirmed termination can be purged.")
        if termination.status == Termination.Status.CONFIRMED:
            # Snapshot the accounts before the memberships that link them are deleted.
            termination.customer_user_ids = _customer_user_ids(termination.organisation_pk)
            termination.purge_started_at = timezone.now()
            termination.purge_counts = {}
            termination.status = Termination.Status.PURGING
            audit_record(action="retention.purge_started", obj=termination, organisation_id=termination.organisation_pk)
        termination.cleanup_run = run
        termination.save(
            update_fields=["customer_user_ids", "purge_started_at", "purge_counts", "status", "cleanup_run"]
        )
    user_ids = termination.customer_user_ids
    purge.check_guards(plan, user_ids)

    def record(kind: str, n: int) -> None:
        # Inside the batch's transaction: the count commits with the deletion.
        progress = Termination.objects.select_for_update().only("purge_counts").get(pk=termination.pk)
        progress.purge_counts = _bump(progress.purge_counts, kind, n)
        progress.save(update_fields=["purge_counts"])

    purge.purge_batches(
        plan, organisation_id=termination.organisation_pk, user_ids=user_ids, batch_size=batch_size, on_batch=record
    )
    with transaction.atomic():
        termination = Termination.objects.select_for_update().get(pk=termination.pk)
        deleted = _delete_organisation_row(termination.organisation_pk)
        counts = dict(termination.purge_counts)
        if deleted:
            counts = _bump(counts, "tenancy.Organisation", deleted)
        now = timezone.now()
        termination.purge_counts = counts
        termination.purge_finished_at = now
        termination.status = Termination.Status.PURGED
        termination.save(update_fields=["purge_counts", "purge_finished_at", "status"])
        certificate = _certificate_issue(termination, now)
        audit_record(
            action="retention.purged",
            obj=termination,
            organisation_id=termination.organisation_pk,
            data={"counts": counts, "certificate_digest": certificate.digest},
        )
        if termination.certificate_recipients:
            from governance.retention.tasks import email_certificate

            transaction.on_commit(lambda: email_certificate.delay(certificate.pk))
    return certificate


def _bump(counts: dict, kind: str, n: int) -> dict:
    counts = dict(counts)
    counts[kind] = counts.get(kind, 0) + n
    return counts


def _delete_organisation_row(organisation_id: int) -> int:
    """The organisation row goes too: it holds the (encrypted) contact name and email.

    Deleted rather than anonymised: an anonymised stub would still be a customer record
    to explain; the certificate and Termination keep its id and company name.
    """
    for other, fk_name in purge._nullable_references(Organisation):
        other._base_manager.filter(**{fk_name: organisation_id}).update(**{fk_name: None})
    return Organisation._base_manager.filter(pk=organisation_id)._raw_delete(Organisation._base_manager.db)


def certificate_content(cert: DeletionCertificate) -> dict:
    return {
        "organisation_id": cert.organisation_pk,
        "organisation_name": cert.organisation_name,
        "termination_id": cert.termination_id,
        "purge_started_at": cert.purge_started_at,
        "purge_finished_at": cert.purge_finished_at,
        "counts": dict(sorted(cert.counts.items())),
        "backups_clear_at": cert.backups_clear_at,
    }


def certificate_digest(cert: DeletionCertificate) -> str:
    body = json.dumps(certificate_content(cert), sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(body.encode()).hexdigest()


def _certificate_issue(termination: Termination, now) -> DeletionCertificate:
    cert = DeletionCertificate(
        termination=termination,
        organisation_pk=termination.organisation_pk,
        organisation_name=termination.organisation_name,
        purge_started_at=termination.purge_started_at,
        purge_finished_at=termination.purge_finished_at,
        counts=dict(sorted(termination.purge_counts.items())),
        issued_at=now,
        backups_clear_at=termination.purge_finished_at + timedelta(days=settings.RETENTION_BACKUP_DAYS),
    )
    cert.digest = certificate_digest(cert)
    cert.save()
    return cert


def certificate_mark_emailed(*, certificate: DeletionCertificate, recipients: int) -> None:
    """After sending: record it and erase the former admins' addresses (kept for nothing else)."""
    with transaction.atomic():
        certificate.emailed_at = timezone.now()
        certificate.emailed_to_count = recipients
        certificate.save(update_fields=["emailed_at", "emailed_to_count"])
        Termination.objects.filter(pk=certificate.termination_id).update(certificate_recipients="")
        audit_record(
            action="retention.certificate_emailed",
            obj=certificate,
            organisation_id=certificate.organisation_pk,
            data={"recipients": recipients},
        )
