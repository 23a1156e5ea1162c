"""Delivering the transactional outbox (C15): claim a row, send it, record the outcome.

A row is claimed in a short transaction (status SENDING, a lease, attempts + 1) that
commits before any network I/O; the send then runs without a transaction, and the
outcome is written in a second one. A worker that dies mid-send leaves a SENDING row
whose lease runs out; the sweep then takes it over. Delivery is therefore at least
once: the Message-ID is derived from the idempotency key, so a resend after a lost
acknowledgement carries the same Message-ID and receivers can de-duplicate it.

Webhook rows (status-page subscriptions) are POSTed as JSON, signed with HMAC-SHA256
over a timestamp and the body with the webhook's secret; a 2xx answer is delivery,
anything else (redirects included) is a failure retried with the same backoff. The
delivery id header is derived from the idempotency key, like the Message-ID.

A mail server's permanent refusal of the message or its recipient (SMTP 5xx, RFC 5321
4.2.1) fails the row at once: retrying cannot help and only delays the audit trail's
record of the failure. Refusals of our own login or sender address are configuration
faults and are retried, so fixing the configuration delivers everything. Staff with
`requeue_notification` can send failed rows again (`notifications_requeue`).
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from governance.audit.services import audit_record
from incidents.models import AffectedOrganisation, Notification
from incidents.status import subscriptions

log = logging.getLogger(__name__)

Status = Notification.Status

# SMTP connect/read timeout; it must stay well below OUTBOX_SEND_LEASE_SECONDS so a
# hanging server cannot outlive the lease and let a sweep send in parallel.
SEND_TIMEOUT_SECONDS = 30
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
MESSAGE_ID_DOMAIN = "assyst.notifications"


def message_id_for(idempotency_key: str) -> str:
    """The Message-ID every (re)send of one notification carries."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{MESSAGE_ID_DOMAIN}>"


def retry_delay(attempts: int) -> timedelta:
    """30 s, 60 s, 120 s, ... after the 1st, 2nd, 3rd failed attempt, capped at 1 h."""
    return timedelta(seconds=min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS))


def _due(now: datetime) -> Q:
    return Q(status=Status.PENDING, next_attempt_at__lte=now) | Q(status=Status.SENDING, lease_until__lt=now)


def outbox_claim(*, notification_id: int, now: datetime) -> Notification | None:
    """Take one due row for sending, or None if it is not due, already taken or gone.

    Due: pending and next_attempt_at <= now, or sending with an expired lease (its
    worker died). Commits before returning, so no transaction is held during SMTP.
    """
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("webhook")
            .filter(_due(now), pk=notification_id)
            .first()
        )
        if notification is None:
            return None
        notification.status = Status.SENDING
        notification.lease_until = now + timedelta(seconds=settings.OUTBOX_SEND_LEASE_SECONDS)
        notification.attempts += 1
        notification.save(update_fields=["status", "lease_until", "attempts"])
    return notification


def _build(notification: Notification, message_id: str) -> EmailMessage:
    return EmailMessage(
        subject=notification.subject,
        body=notification.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.recipient],
        headers={"Message-ID": message_id, **subscriptions.email_headers(notification)},
        connection=get_connection(timeout=SEND_TIMEOUT_SECONDS),
    )


def _error_text(exc: Exception, recipient: str) -> str:
    # last_error is not encrypted: keep the recipient's address out of it.
    text = f"{type(exc).__name__}: {exc}"
    if recipient:
        text = text.replace(recipient, "<recipient>")
    return text[:2000]


def outbox_send(notification: Notification) -> str:
    """Send a claimed row and record the outcome: "sent", "retry" or "failed".

    Must be called outside a transaction with a row returned by `outbox_claim`.
    """
    message_id = message_id_for(notification.idempotency_key)
    if notification.channel == Notification.Channel.WEBHOOK:
        return _send_webhook(notification, message_id)
    try:
        if _build(notification, message_id).send(fail_silently=False) != 1:
            raise RuntimeError("the mail backend accepted no message")
    except Exception as exc:  # any failure: the row is retried later, nothing is lost
        return _record_failure(notification, _error_text(exc, notification.recipient), give_up=_permanent(exc))
    _record_sent(notification, message_id)
    return "sent"


def _permanent(exc: Exception) -> bool:
    """The server refused this message or recipient for good (5xx)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(500 <= code < 600 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPDataError):
        return 500 <= exc.smtp_code < 600
    return False  # timeouts, 4xx, our own login or sender address: try again later


def notifications_requeue(*, notifications: Iterable[Notification], acting_user) -> int:
    """Send failed rows again with a fresh set of attempts (after a mailbox or receiver was
    fixed). Only failed rows move; each is audited with the error it had."""
    if not (acting_user.is_active and acting_user.is_staff and acting_user.has_perm("incidents.requeue_notification")):
        raise PermissionDenied("You cannot requeue notices.")
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            Notification.objects.select_for_update(of=("self",))
            .filter(pk__in=[n.pk for n in notifications], status=Status.FAILED)
            .only("pk", "attempts", "last_error", "incident_id", "organisation_id")
        )
        Notification.objects.filter(pk__in=[r.pk for r in rows]).update(
            status=Status.PENDING, attempts=0, next_attempt_at=now, lease_until=None
        )
        for row in rows:
            audit_record(
                action="incident.notice_requeued",
                actor=acting_user,
                obj=row,
                object_repr=f"notification {row.pk}",
                organisation_id=row.organisation_id,
                data={"notification": row.pk, "attempts": row.attempts, "error": row.last_error.split(":", 1)[0]},
            )
        ids = [r.pk for r in rows]

        def enqueue() -> None:
            from incidents.tasks import deliver_notification

            try:
                for pk in ids:
                    deliver_notification.delay(pk)
            except Exception:  # the sweep delivers what could not be queued
                log.exception("could not queue %s requeued notices; the outbox sweep will deliver them", len(ids))

        transaction.on_commit(enqueue)
    return len(ids)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect is not delivery: it could point the signed body anywhere.
    def redirect_request(self, *args, **kwargs):
        return None


def webhook_request(notification: Notification, delivery_id: str, *, now: datetime | None = None):
    """The signed POST for a webhook row (the URL is checked again: settings may have
    changed since the webhook was created)."""
    webhook = notification.webhook
    url = subscriptions.webhook_url_clean(webhook.url)
    subscriptions.webhook_target_check(url)
    body = notification.body.encode()
    timestamp = int((now or timezone.now()).timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Assyst-Status-Webhook/1",
        subscriptions.TIMESTAMP_HEADER: str(timestamp),
        subscriptions.SIGNATURE_HEADER: subscriptions.signature(webhook.secret, timestamp, body),
        subscriptions.DELIVERY_HEADER: delivery_id.strip("<>").split("@", 1)[0],
    }
    return urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (https or loopback)


def _send_webhook(notification: Notification, message_id: str) -> str:
    webhook = notification.webhook
    if webhook is None or not webhook.is_active:
        return _record_failure(notification, "WebhookDisabled: the webhook is disabled", give_up=True)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(
            webhook_request(notification, message_id), timeout=settings.STATUS_WEBHOOK_TIMEOUT_SECONDS
        ) as response:
            status = response.status
        if not 200 <= status < 300:
            raise RuntimeError(f"HTTP {status}")
    except Exception as exc:  # any failure (timeout, refused, non-2xx): retried later
        error = _error_text(exc, "")
        subscriptions.webhook_record_outcome(webhook_id=webhook.pk, ok=False, error=error)
        return _record_failure(notification, error)
    subscriptions.webhook_record_outcome(webhook_id=webhook.pk, ok=True)
    _record_sent(notification, message_id)
    return "sent"


def _record_sent(notification: Notification, message_id: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        # A row already marked sent (a slower sender whose lease was taken over also
        # succeeded) is left alone, so sent_at, notified_at and the audit happen once.
        marked = (
            Notification.objects.filter(pk=notification.pk)
            .exclude(status=Status.SENT)
            .update(status=Status.SENT, sent_at=now, message_id=message_id, lease_until=None, last_error="")
        )
        if not marked:
            log.info("notification %s was already marked sent", notification.pk)
            return
        if notification.incident_id and notification.organisation_id:
            # The first notice that reaches the organisation is the moment it was notified.
            AffectedOrganisation.objects.with_scopes_disabled().filter(
                incident_id=notification.incident_id,
                organisation_id=notification.organisation_id,
                notified_at__isnull=True,
            ).update(notified_at=now)
        audit_record(
            action="incident.notice_sent",
            obj=notification,
            object_repr=f"notification {notification.pk}",
            organisation_id=notification.organisation_id,
            data={
                "notification": notification.pk,
                "incident": notification.incident_id,
                "update": notification.update_id,
                "message_id": message_id,
                "attempts": notification.attempts,
            },
        )
    notification.status, notification.sent_at, notification.message_id = Status.SENT, now, message_id


def _record_failure(notification: Notification, error: str, *, give_up: bool = False) -> str:
    now = timezone.now()
    give_up = give_up or notification.attempts >= settings.OUTBOX_MAX_ATTEMPTS
    fields = {"status": Status.FAILED if give_up else Status.PENDING, "lease_until": None, "last_error": error}
    if not give_up:
        fields["next_attempt_at"] = now + retry_delay(notification.attempts)
    with transaction.atomic():
        # Only the holder of this claim (same attempt number, still sending) records it;
        # a sweep that took the row over after our lease ran out owns it now.
        changed = Notification.objects.filter(
            pk=notification.pk, status=Status.SENDING, attempts=notification.attempts
        ).update(**fields)
        if changed and give_up:
            audit_record(
                action="incident.notice_failed",
                obj=notification,
                object_repr=f"notification {notification.pk}",
                organisation_id=notification.organisation_id,
                data={
                    "notification": notification.pk,
                    "incident": notification.incident_id,
                    "update": notification.update_id,
                    "attempts": notification.attempts,
                    "error": error.split(":", 1)[0],
                },
            )
    for name, value in fields.items():
        setattr(notification, name, value)
    log.warning("notification %s attempt %s failed: %s", notification.pk, notification.attempts, error)
    return "failed" if give_up else "retry"


def outbox_deliver(*, notification_id: int, now: datetime | None = None) -> str:
    """Claim and send one row: "sent", "retry", "failed", "skipped" (not due or taken)
    or "missing" (the row is gone)."""
    notification = outbox_claim(notification_id=notification_id, now=now or timezone.now())
    if notification is None:
        return "skipped" if Notification.objects.filter(pk=notification_id).exists() else "missing"
    return outbox_send(notification)


def outbox_sweep(*, now: datetime, limit: int, budget_seconds: float | None = None) -> dict[str, int]:
    """Deliver up to `limit` due rows (pending and due, or sending with an expired lease),
    oldest first; stop taking new rows after `budget_seconds`. Returns counts."""
    started = time.monotonic()
    ids = list(
        Notification.objects.filter(_due(now)).order_by("next_attempt_at", "id").values_list("pk", flat=True)[:limit]
    )
    counts = {"due": len(ids), "sent": 0, "retry": 0, "failed": 0, "skipped": 0, "missing": 0}
    for pk in ids:
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            break
        counts[outbox_deliver(notification_id=pk, now=max(now, timezone.now()))] += 1
    return counts
