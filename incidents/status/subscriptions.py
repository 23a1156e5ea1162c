"""Status-page subscriptions (C14, C15): email subscribers with double opt-in and
one-click unsubscribe, staff-made webhooks, and the outbox rows every public update of a
general incident writes for them.

Everything a subscriber receives goes through the outbox (incidents.outbox), so nothing
is lost when SMTP or an endpoint is down. What is sent is decided by
`public_incidents()`, the one public visibility rule: a specific incident or an internal
update never produces a row here.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from governance.access.models import User
from governance.audit.services import audit_record
from governance.core.encryption import blind_index_candidates, normalise_email
from incidents.models import (
    Component,
    ComponentStatusChange,
    Incident,
    IncidentUpdate,
    MaintenanceUpdate,
    Notification,
    ScheduledMaintenance,
    StatusSubscriber,
    StatusWebhook,
)
from incidents.selectors import public_incidents
from incidents.status import api, snapshot
from incidents.status.meta import PAGE_ID, PAGE_NAME

log = logging.getLogger(__name__)

EMAIL_PURPOSE = "status-subscriber"
SIGNATURE_HEADER = "X-Assyst-Signature"
TIMESTAMP_HEADER = "X-Assyst-Timestamp"
DELIVERY_HEADER = "X-Assyst-Delivery"
DOCUMENTATION = "https://developer.statuspage.io/#tag/webhooks"  # the shape we follow


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def _enqueue_on_commit(keys: list[str]) -> None:
    if not keys:
        return

    def enqueue() -> None:
        # After commit the rows are safe: a broker outage must not fail the request; the
        # outbox sweep delivers whatever was not queued.
        from incidents.tasks import deliver_notification

        try:
            for pk in Notification.objects.filter(idempotency_key__in=keys).values_list("pk", flat=True):
                deliver_notification.delay(pk)
        except Exception:
            log.exception("could not queue %s status notices; the outbox sweep will deliver them", len(keys))

    transaction.on_commit(enqueue)


# --- email sign-up ---------------------------------------------------------------------------


def subscribe_rate_exceeded(*, client_ip: str | None, now: datetime | None = None) -> bool:
    """Count one sign-up from `client_ip`; True once past the limit (fixed window, shared
    cache: every web node counts together). Same approach as the disclosure form."""
    window = settings.STATUS_SUBSCRIBE_RATE_WINDOW_SECONDS
    slot = int((now or timezone.now()).timestamp()) // window
    key = f"status:subscribe:{client_ip or 'unknown'}:{slot}"
    cache.add(key, 0, timeout=window + 60)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=window + 60)
        count = 1
    return count > settings.STATUS_SUBSCRIBE_RATE_LIMIT


def subscriber_signup(*, email: str, components: Iterable[Component] = ()) -> None:
    """Start (or restart) a double opt-in. Returns nothing and behaves the same to the
    caller whether or not the address is known, so sign-up cannot enumerate subscribers.

    New or unconfirmed address: a fresh single-use token (only its hash is stored) and a
    confirmation mail through the outbox. Already confirmed: nothing is sent or changed
    (a stranger must not change someone's choice or mail them at will)."""
    email = normalise_email(email)
    if not email:
        raise ValidationError({"email": "Enter your email address."})
    components = list(components)
    now = timezone.now()
    token, hashed = _new_token()
    with transaction.atomic():
        subscriber = (
            StatusSubscriber.objects.select_for_update()
            .filter(email_index__in=blind_index_candidates(email, purpose=EMAIL_PURPOSE))
            .first()
        )
        if subscriber is not None and subscriber.confirmed_at is not None:
            audit_record(action="status.subscribe_repeated", obj=subscriber)
            return
        created = subscriber is None
        if created:
            unsubscribe, unsubscribe_hash = _new_token()
            subscriber = StatusSubscriber(
                email=email, unsubscribe_token=unsubscribe, unsubscribe_token_hash=unsubscribe_hash
            )
        subscriber.confirm_token_hash = hashed
        subscriber.confirm_expires_at = now + timedelta(hours=settings.STATUS_CONFIRM_HOURS)
        subscriber.save()
        subscriber.components.set(components)
        notification = Notification.objects.create(
            idempotency_key=f"status-confirm:{subscriber.pk}:{hashed[:16]}",
            channel=Notification.Channel.EMAIL,
            subscriber=subscriber,
            recipient=email,
            subject=f"Confirm your {PAGE_NAME} status subscription",
            body=render_to_string(
                "email/status_confirm.txt",
                {
                    "page_name": PAGE_NAME,
                    "confirm_url": _absolute(reverse("status:subscribe_confirm", args=[token])),
                    "hours": settings.STATUS_CONFIRM_HOURS,
                    "components": components,
                },
            ),
            next_attempt_at=now,
        )
        audit_record(
            action="status.subscribe_requested",
            obj=subscriber,
            data={"created": created, "components": [c.pk for c in components]},
        )
        _enqueue_on_commit([notification.idempotency_key])


def subscriber_pending(token: str) -> StatusSubscriber | None:
    """The unconfirmed subscriber a confirmation token belongs to (None: unknown, used or expired)."""
    return StatusSubscriber.objects.filter(
        confirm_token_hash=token_hash(token), confirm_expires_at__gt=timezone.now()
    ).first()


def subscriber_confirm(*, token: str) -> StatusSubscriber | None:
    """Confirm with the token from the mail; None when unknown, used or expired."""
    now = timezone.now()
    with transaction.atomic():
        subscriber = (
            StatusSubscriber.objects.select_for_update()
            .filter(confirm_token_hash=token_hash(token), confirm_expires_at__gt=now)
            .first()
        )
        if subscriber is None:
            return None
        subscriber.confirmed_at = now
        subscriber.confirm_token_hash = ""  # single use
        subscriber.confirm_expires_at = None
        subscriber.save(update_fields=["confirmed_at", "confirm_token_hash", "confirm_expires_at"])
        audit_record(action="status.subscriber_confirmed", obj=subscriber)
    return subscriber


def subscriber_for_unsubscribe(token: str) -> StatusSubscriber | None:
    return StatusSubscriber.objects.filter(unsubscribe_token_hash=token_hash(token)).first()


def subscriber_unsubscribe(*, token: str) -> bool:
    """Delete the subscriber and its unsent rows; False when the token is unknown (already
    unsubscribed). Sent rows stay in the outbox as the record of what was sent."""
    with transaction.atomic():
        subscriber = (
            StatusSubscriber.objects.select_for_update().filter(unsubscribe_token_hash=token_hash(token)).first()
        )
        if subscriber is None:
            return False
        pending = Notification.objects.filter(
            subscriber=subscriber, status__in=[Notification.Status.PENDING, Notification.Status.FAILED]
        )
        dropped, _ = pending.delete()
        audit_record(
            action="status.subscriber_unsubscribed",
            obj=subscriber,
            data={"confirmed": subscriber.confirmed_at is not None, "dropped_notices": dropped},
        )
        subscriber.delete()
    return True


def unsubscribe_url(subscriber: StatusSubscriber) -> str:
    return _absolute(reverse("status:unsubscribe", args=[subscriber.unsubscribe_token]))


def email_headers(notification: Notification) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe headers for a subscriber's notice (not for the
    confirmation mail: there is nothing to unsubscribe from yet)."""
    if notification.subscriber_id is None or notification.idempotency_key.startswith("status-confirm:"):
        return {}
    subscriber = StatusSubscriber.objects.filter(pk=notification.subscriber_id).first()
    if subscriber is None:
        return {}
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(subscriber)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


# --- webhooks ----------------------------------------------------------------------------------


PRIVATE_TARGET = "Webhook URLs must point to a public address, not a private, loopback or reserved one."


def _literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def webhook_target_check(url: str) -> None:
    """At delivery: the receiver's host must resolve to public addresses only, so a
    webhook cannot be pointed (or re-pointed through DNS) at the portal's own network.
    STATUS_WEBHOOK_ALLOW_PRIVATE lifts this for receivers inside that network on purpose."""
    parts = urlsplit(url)
    loopback_http = parts.scheme == "http" and settings.STATUS_WEBHOOK_ALLOW_LOOPBACK_HTTP
    if settings.STATUS_WEBHOOK_ALLOW_PRIVATE or loopback_http:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname or "", parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise ValidationError({"url": f"{parts.hostname} does not resolve."}) from exc
    if not infos or any(not ip.is_global for ip in (_literal_ip(info[4][0]) for info in infos) if ip is not None):
        raise ValidationError({"url": PRIVATE_TARGET})


def webhook_url_clean(url: str) -> str:
    """https only; plain http to 127.0.0.1 only where STATUS_WEBHOOK_ALLOW_LOOPBACK_HTTP.
    An address written into the URL must be public (names are checked at delivery)."""
    url = url.strip()
    try:
        URLValidator(schemes=["https", "http"])(url)
    except ValidationError as exc:
        raise ValidationError({"url": "Enter a valid URL."}) from exc
    parts = urlsplit(url)
    if parts.scheme == "https":
        literal = _literal_ip(parts.hostname or "")
        if literal is not None and not literal.is_global and not settings.STATUS_WEBHOOK_ALLOW_PRIVATE:
            raise ValidationError({"url": PRIVATE_TARGET})
        return url
    loopback = False
    try:
        loopback = ipaddress.ip_address(parts.hostname or "") == ipaddress.ip_address("127.0.0.1")
    except ValueError:
        pass
    if loopback and settings.STATUS_WEBHOOK_ALLOW_LOOPBACK_HTTP:
        return url
    raise ValidationError({"url": "Webhook URLs must use https."})


def _require_staff(user: User, perm: str) -> None:
    if not (user.is_active and user.is_staff and user.has_perm(perm)):
        raise PermissionDenied("You cannot manage status webhooks.")


def webhook_create(
    *, acting_user: User, url: str, components: Iterable[Component] = (), description: str = ""
) -> tuple[StatusWebhook, str]:
    """Register an endpoint; returns it with its signing secret, which is shown once."""
    _require_staff(acting_user, "incidents.add_statuswebhook")
    url = webhook_url_clean(url)
    secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        webhook = StatusWebhook.objects.create(
            url=url, description=description.strip(), secret=secret, created_by=acting_user
        )
        webhook.components.set(components)
        audit_record(action="status.webhook_created", actor=acting_user, obj=webhook, data={"url": url})
    return webhook, secret


def webhook_enable(*, webhook: StatusWebhook, acting_user: User) -> StatusWebhook:
    """Turn a disabled webhook back on (after its owner fixed the endpoint)."""
    _require_staff(acting_user, "incidents.change_statuswebhook")
    with transaction.atomic():
        webhook.disabled_at, webhook.disabled_reason, webhook.consecutive_failures = None, "", 0
        webhook.save(update_fields=["disabled_at", "disabled_reason", "consecutive_failures"])
        audit_record(action="status.webhook_enabled", actor=acting_user, obj=webhook)
    return webhook


def webhook_record_outcome(*, webhook_id: int, ok: bool, error: str = "") -> None:
    """Count a delivery: success resets the count; the Nth consecutive failure disables
    the webhook (audited). Called by the outbox after each attempt."""
    now = timezone.now()
    with transaction.atomic():
        webhook = StatusWebhook.objects.select_for_update().filter(pk=webhook_id).first()
        if webhook is None:
            return
        if ok:
            webhook.consecutive_failures, webhook.last_success_at = 0, now
            webhook.save(update_fields=["consecutive_failures", "last_success_at"])
            return
        webhook.consecutive_failures += 1
        webhook.last_failure_at = now
        fields = ["consecutive_failures", "last_failure_at"]
        if webhook.disabled_at is None and webhook.consecutive_failures >= settings.STATUS_WEBHOOK_MAX_FAILURES:
            webhook.disabled_at = now
            webhook.disabled_reason = f"{webhook.consecutive_failures} consecutive failed deliveries; last: {error}"[
                :300
            ]
            fields += ["disabled_at", "disabled_reason"]
            audit_record(
                action="status.webhook_disabled",
                obj=webhook,
                data={"failures": webhook.consecutive_failures, "error": error.split(":", 1)[0]},
            )
        webhook.save(update_fields=fields)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>." + body): receivers recompute it
    and reject stale timestamps, so a captured request cannot be replayed later."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


# --- notices for a public update ---------------------------------------------------------------


def _matches(chosen: set[int], affected: set[int]) -> bool:
    return not chosen or bool(chosen & affected)


def _page(components: list[Component], unresolved: list[Incident]) -> dict:
    indicator, description = snapshot.indicator(components, unresolved)
    return {"id": PAGE_ID, "status_indicator": indicator, "status_description": description}


def _webhook_audience(now: datetime) -> tuple[list[StatusWebhook], dict, dict]:
    """Active webhooks with their component choices, and the `page` and `meta` objects every
    payload of this moment carries (computed only when there is a webhook)."""
    webhooks = list(StatusWebhook.objects.filter(disabled_at__isnull=True).prefetch_related("components"))
    if not webhooks:
        return [], {}, {}
    unresolved = list(public_incidents(unresolved=True).prefetch_related(None).only("pk", "severity"))
    page = _page(snapshot.components(), unresolved)
    meta = {"unsubscribe": None, "documentation": DOCUMENTATION, "generated_at": api._ts(now)}
    return webhooks, page, meta


def _dumps(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def _component_payload(change: ComponentStatusChange) -> dict:
    component = change.component
    return {
        "component_update": {
            "id": f"cu{change.pk}",
            "component_id": f"c{component.pk}",
            "old_status": change.previous_status or change.status,
            "new_status": change.status,
            "created_at": api._ts(change.at),
        },
        "component": {
            "id": f"c{component.pk}",
            "name": component.name,
            "status": component.status,
            "created_at": api._ts(component.created_at),
        },
    }


def update_notifications(*, update: IncidentUpdate, now: datetime) -> list[Notification]:
    """Outbox rows for one update: an email per confirmed subscriber and a JSON POST per
    active webhook whose component choice matches (none chosen: everything). Call inside
    the update's transaction; returns nothing unless `public_incidents()` shows the
    update, i.e. a public update of a general incident."""
    if update.visibility != IncidentUpdate.Visibility.PUBLIC:
        return []
    incident = api._public_incidents().filter(pk=update.incident_id).first()
    if incident is None or update.pk not in {u.pk for u in incident.public_updates}:
        return []
    affected = {c.pk for c in incident.status_components.all()}
    status_label = Incident.Status(update.status).label
    rows: list[Notification] = []

    subscribers = StatusSubscriber.objects.filter(confirmed_at__isnull=False).prefetch_related("components")
    incident_url = _absolute(reverse("status:incident", args=[incident.pk]))
    for subscriber in subscribers:
        if not _matches({c.pk for c in subscriber.components.all()}, affected):
            continue
        context = {
            "incident": incident,
            "update": update,
            "status_label": status_label,
            "incident_url": incident_url,
            "page_url": _absolute(reverse("status:page")),
            "unsubscribe_url": unsubscribe_url(subscriber),
            "page_name": PAGE_NAME,
        }
        rows.append(
            Notification(
                idempotency_key=f"status-update:{update.pk}:email:{subscriber.pk}",
                channel=Notification.Channel.EMAIL,
                incident=incident,
                update=update,
                subscriber=subscriber,
                recipient=subscriber.email,
                subject=f"[{PAGE_NAME} status] {incident.title}: {status_label}",
                body=render_to_string("email/status_incident_update.txt", context),
                next_attempt_at=now,
            )
        )

    webhooks, page, meta = _webhook_audience(now)
    if webhooks:
        incident_json = api._incident(incident)
        changes = list(update.component_changes.select_related("component").order_by("pk"))
        for webhook in webhooks:
            chosen = {c.pk for c in webhook.components.all()}
            if _matches(chosen, affected):
                rows.append(
                    _webhook_row(
                        f"status-update:{update.pk}:webhook:{webhook.pk}",
                        webhook,
                        {"meta": meta, "page": page, "incident": incident_json},
                        incident=incident,
                        update=update,
                        now=now,
                        subject=f"Incident update: {incident.title}",
                    )
                )
            for change in changes:
                if _matches(chosen, {change.component_id}):
                    rows.append(
                        _webhook_row(
                            f"status-component:{change.pk}:webhook:{webhook.pk}",
                            webhook,
                            {"meta": meta, "page": page, **_component_payload(change)},
                            incident=incident,
                            update=update,
                            now=now,
                            subject=f"Component update: {change.component.name}",
                        )
                    )
    return rows


def maintenance_notifications(*, update: MaintenanceUpdate, now: datetime) -> list[Notification]:
    """Outbox rows for one maintenance note (scheduled, started, verifying, completed):
    maintenances are public by nature, so every confirmed subscriber and active webhook
    whose component choice matches hears of each step, like an incident update. Webhooks
    get Statuspage's shape, where a maintenance is an incident with `impact: maintenance`."""
    maintenance = update.maintenance
    affected = {c.pk for c in maintenance.components.all()}
    status_label = ScheduledMaintenance.Status(update.status).label
    rows: list[Notification] = []
    page_url = _absolute(reverse("status:page"))
    for subscriber in StatusSubscriber.objects.filter(confirmed_at__isnull=False).prefetch_related("components"):
        if not _matches({c.pk for c in subscriber.components.all()}, affected):
            continue
        context = {
            "maintenance": maintenance,
            "update": update,
            "status_label": status_label,
            "page_url": page_url,
            "unsubscribe_url": unsubscribe_url(subscriber),
            "page_name": PAGE_NAME,
        }
        rows.append(
            Notification(
                idempotency_key=f"status-maintenance:{update.pk}:email:{subscriber.pk}",
                channel=Notification.Channel.EMAIL,
                subscriber=subscriber,
                recipient=subscriber.email,
                subject=f"[{PAGE_NAME} status] Maintenance {maintenance.name}: {status_label}"[:300],
                body=render_to_string("email/status_maintenance_update.txt", context),
                next_attempt_at=now,
            )
        )
    webhooks, page, meta = _webhook_audience(now)
    if webhooks:
        maintenance_json = api._maintenance(maintenance)
        for webhook in webhooks:
            if _matches({c.pk for c in webhook.components.all()}, affected):
                rows.append(
                    _webhook_row(
                        f"status-maintenance:{update.pk}:webhook:{webhook.pk}",
                        webhook,
                        {"meta": meta, "page": page, "incident": maintenance_json},
                        incident=None,
                        update=None,
                        now=now,
                        subject=f"Maintenance update: {maintenance.name}",
                    )
                )
    return rows


def maintenance_notify(*, update: MaintenanceUpdate, now: datetime) -> int:
    """Store the notices for a maintenance note and queue them after commit."""
    rows = maintenance_notifications(update=update, now=now)
    Notification.objects.bulk_create(rows)
    _enqueue_on_commit([row.idempotency_key for row in rows])
    return len(rows)


def _webhook_row(
    key: str, webhook: StatusWebhook, payload: dict, *, incident, update, now: datetime, subject: str
) -> Notification:
    return Notification(
        idempotency_key=key,
        channel=Notification.Channel.WEBHOOK,
        incident=incident,
        update=update,
        webhook=webhook,
        recipient="",
        subject=subject[:300],
        body=_dumps(payload),
        next_attempt_at=now,
    )
