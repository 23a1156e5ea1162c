"""Status-page subscriptions (C14, C15): email double opt-in over real SMTP, one-click
unsubscribe (RFC 8058), per-component choice, rate limit without enumeration, signed
webhooks checked by a loopback HTTP server, retry and disable after failures, and
nothing for specific incidents or internal updates."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import Client
from django.utils import timezone

from governance.audit.models import AuditEvent
from incidents.models import Component, Incident, Notification, StatusSubscriber, StatusWebhook
from incidents.outbox import outbox_deliver, outbox_sweep
from incidents.services import incident_update_post
from incidents.status import cache as status_cache
from incidents.status import subscriptions
from incidents.status.services import component_save
from tests.factories import StaffFactory
from tests.helpers import otp_client
from tests.test_outbox import smtp  # noqa: F401 (fixture: aiosmtpd on loopback)
from tests.test_portal_incidents import INTERNAL, make_incident, manager, post_update

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C14")]

LINK = re.compile(r"https?://\S+/status/subscribe/confirm/([\w-]+)/")


@pytest.fixture(autouse=True)
def _setup(settings, monkeypatch):
    status_cache.bump()
    settings.STATUS_SUBSCRIBE_RATE_LIMIT = 1000  # the rate test sets its own
    settings.STATUS_WEBHOOK_ALLOW_LOOPBACK_HTTP = True
    from incidents import tasks

    monkeypatch.setattr(tasks.deliver_notification, "delay", lambda pk: None)  # the tests deliver
    yield
    status_cache.bump()


def _ip() -> str:
    # Each test its own client address: the rate-limit counters live in the shared cache.
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


def component(name: str) -> Component:
    return component_save(component=Component(name=name), acting_user=manager())


def signup(client: Client, email: str, components=(), ip: str | None = None):
    data = {"email": email, "components": [c.pk for c in components]}
    return client.post("/status/subscribe/", data, REMOTE_ADDR=ip or _ip())


def confirm_token(email: str) -> str:
    """The token of the newest confirmation mail to `email` (read from the outbox row)."""
    rows = Notification.objects.filter(idempotency_key__startswith="status-confirm:").order_by("-pk")
    body = next(n.body for n in rows if n.recipient == email)
    return LINK.search(body).group(1)


def confirmed(email: str, components=()) -> StatusSubscriber:
    subscriptions.subscriber_signup(email=email, components=components)
    return subscriptions.subscriber_confirm(token=confirm_token(email))


def subscriber_rows(update) -> list[Notification]:
    return list(Notification.objects.filter(update=update).exclude(subscriber=None, webhook=None))


def deliver_all() -> dict:
    return outbox_sweep(now=timezone.now(), limit=100)


# --- email: double opt-in ------------------------------------------------------------------------


def test_double_opt_in_over_real_smtp(client, smtp):  # noqa: F811
    incident = make_incident(title="Dashboards are slow")
    response = signup(client, "Ada@Example.com")
    assert response.status_code == 200 and "Check your inbox" in response.content.decode()
    assert deliver_all()["sent"] == 1
    (mail,) = smtp.sink.accepted
    assert mail["to"] == ["ada@example.com"]
    assert "List-Unsubscribe" not in mail["message"]  # nothing to leave yet
    token = LINK.search(mail["message"].get_content()).group(1)

    # Only the token's hash is at rest, and unconfirmed means no notices.
    subscriber = StatusSubscriber.objects.get()
    assert subscriber.confirm_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert subscriber.confirmed_at is None
    assert subscriber_rows(post_update(incident)) == []

    # Opening the link (as a mail scanner does) only asks; the person's click confirms.
    asks = client.get(f"/status/subscribe/confirm/{token}/")
    assert asks.status_code == 200 and "Confirm subscription" in asks.content.decode()
    assert StatusSubscriber.objects.get().confirmed_at is None
    page = client.post(f"/status/subscribe/confirm/{token}/")
    assert page.status_code == 200 and "Subscription confirmed" in page.content.decode()
    assert client.get(f"/status/subscribe/confirm/{token}/").status_code == 404  # single use
    assert client.post(f"/status/subscribe/confirm/{token}/").status_code == 404
    subscriber.refresh_from_db()
    assert subscriber.confirmed_at and subscriber.confirm_token_hash == ""

    update = post_update(incident, message="A fix is rolling out.")
    (row,) = subscriber_rows(update)
    assert row.idempotency_key == f"status-update:{update.pk}:email:{subscriber.pk}"
    deliver_all()
    notice = smtp.sink.accepted[-1]["message"]
    unsubscribe = subscriptions.unsubscribe_url(subscriber)
    assert notice["List-Unsubscribe"].strip() == f"<{unsubscribe}>"
    assert notice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "A fix is rolling out." in notice.get_content() and unsubscribe in notice.get_content()


def test_confirmation_link_expires_after_48_hours(client):
    signup(client, "late@example.com")
    token = confirm_token("late@example.com")
    with time_machine.travel(timezone.now() + timedelta(hours=48, seconds=1)):
        assert client.get(f"/status/subscribe/confirm/{token}/").status_code == 404
    assert not StatusSubscriber.objects.filter(confirmed_at__isnull=False).exists()


def test_signing_up_again_replaces_the_pending_token():
    subscriptions.subscriber_signup(email="twice@example.com")
    first = confirm_token("twice@example.com")
    subscriptions.subscriber_signup(email="twice@example.com")
    second = confirm_token("twice@example.com")
    assert first != second and StatusSubscriber.objects.count() == 1
    assert subscriptions.subscriber_confirm(token=first) is None
    assert subscriptions.subscriber_confirm(token=second) is not None


# --- email: unsubscribe ----------------------------------------------------------------------------


def test_one_click_unsubscribe_without_csrf_and_get_only_asks():
    subscriber = confirmed("leave@example.com")
    incident = make_incident()
    pending = post_update(incident)
    assert len(subscriber_rows(pending)) == 1
    url = subscriptions.unsubscribe_url(subscriber).removeprefix("http://localhost:8000")
    client = Client(enforce_csrf_checks=True)  # mail providers send no CSRF cookie

    page = client.get(url)
    assert page.status_code == 200 and '<form method="post"' in page.content.decode()
    assert StatusSubscriber.objects.filter(pk=subscriber.pk).exists()  # GET changes nothing

    response = client.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and "unsubscribed" in response.content.decode()
    assert not StatusSubscriber.objects.exists()
    assert subscriber_rows(pending) == []  # its unsent notice is dropped
    assert subscriber_rows(post_update(incident)) == []
    assert AuditEvent.objects.filter(action="status.subscriber_unsubscribed").exists()
    assert client.post(url).status_code == 200  # repeating is harmless
    assert client.get(url).status_code == 404


# --- email: component choice, rate limit, enumeration ----------------------------------------------


def test_component_choice_filters_notices():
    web, api = component("Web app"), component("API")
    everything = confirmed("all@example.com")
    web_only = confirmed("web@example.com", [web])
    confirmed("api@example.com", [api])
    incident = make_incident(components=[web])
    rows = subscriber_rows(post_update(incident))
    assert {r.subscriber_id for r in rows} == {everything.pk, web_only.pk}

    # A later update that moves the API as well reaches the API subscriber too.
    update = incident_update_post(
        incident=incident,
        acting_user=manager(),
        visibility="public",
        status=Incident.Status.MONITORING,
        message="The API is slow as well.",
        actions_for_customers="Nothing.",
        component_statuses={api.pk: "degraded_performance"},
    )
    assert len(subscriber_rows(update)) == 3


def test_signup_is_rate_limited_per_ip(client, settings):
    settings.STATUS_SUBSCRIBE_RATE_LIMIT = 3
    ip = _ip()
    for n in range(3):
        assert signup(client, f"r{n}@example.com", ip=ip).status_code == 200
    limited = signup(client, "r4@example.com", ip=ip)
    assert limited.status_code == 429 and limited["Retry-After"]
    assert signup(client, "r4@example.com").status_code == 200  # another address is not affected
    assert StatusSubscriber.objects.count() == 4


def test_signup_does_not_reveal_whether_an_address_is_subscribed(client):
    confirmed("known@example.com")
    before = Notification.objects.count()
    known = signup(client, "known@example.com")
    unknown = signup(client, "unknown@example.com")
    assert known.status_code == unknown.status_code == 200
    assert known.content == unknown.content
    # The confirmed subscriber is neither mailed nor changed by a stranger's sign-up.
    assert Notification.objects.count() == before + 1
    assert StatusSubscriber.objects.get(confirmed_at__isnull=False).components.count() == 0


def test_subscribe_form_is_not_cached_and_the_status_page_links_to_it(client):
    page = client.get("/status/")
    assert 'href="/status/subscribe/"' in page.content.decode()
    assert "csrfmiddlewaretoken" not in page.content.decode()
    form = client.get("/status/subscribe/")
    assert form.status_code == 200 and "csrfmiddlewaretoken" in form.content.decode()
    assert "no-cache" in form["Cache-Control"] or "max-age=0" in form["Cache-Control"]
    assert "ETag" not in form


def test_subscribe_form_and_confirmation_require_csrf():
    client = Client(enforce_csrf_checks=True)
    assert client.post("/status/subscribe/", {"email": "x@example.com"}).status_code == 403
    subscriptions.subscriber_signup(email="csrf@example.com")
    assert client.post(f"/status/subscribe/confirm/{confirm_token('csrf@example.com')}/").status_code == 403
    assert StatusSubscriber.objects.get(confirmed_at=None)


# --- nothing for specific incidents or internal updates ---------------------------------------------


@pytest.mark.commitment("C15")
def test_specific_incidents_and_internal_updates_reach_no_subscriber(org_a, loopback):
    confirmed("watcher@example.com")
    subscriptions.webhook_create(acting_user=StaffFactory(is_superuser=True), url=loopback.url)
    general = make_incident()
    assert subscriber_rows(post_update(general, visibility=INTERNAL)) == []
    specific = make_incident(organisations=[org_a])
    update = post_update(specific)
    assert [n.organisation_id for n in Notification.objects.filter(update=update)] == [org_a.pk]
    assert subscriber_rows(update) == []
    assert len(subscriber_rows(post_update(general))) == 2  # the email and the webhook


def test_rows_are_written_in_the_update_transaction():
    confirmed("atomic@example.com")
    incident = make_incident()
    with pytest.raises(RuntimeError), transaction.atomic():
        post_update(incident)
        assert Notification.objects.filter(subscriber__isnull=False, update__isnull=False).count() == 1
        raise RuntimeError("the request failed after the update")
    assert not Notification.objects.filter(update__isnull=False).exists()


# --- webhooks (C15) ------------------------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append({"headers": dict(self.headers), "body": body})
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received, server.statuses = [], []
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/status"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def verify(secret: str, request: dict, *, max_age: int = 300) -> dict:
    """What a receiver does: recompute the signature, refuse stale timestamps."""
    import hmac

    timestamp = int(request["headers"]["X-Assyst-Timestamp"])
    assert abs(timezone.now().timestamp() - timestamp) < max_age
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + request["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request["headers"]["X-Assyst-Signature"], f"sha256={mac}")
    return json.loads(request["body"])


@pytest.mark.commitment("C15")
def test_webhook_is_signed_in_statuspage_shape(loopback):
    web = component("Web app")
    webhook, secret = subscriptions.webhook_create(acting_user=StaffFactory(is_superuser=True), url=loopback.url)
    assert StatusWebhook.objects.get().secret == secret
    incident = make_incident(title="Dashboards are slow", components=[web])
    update = incident_update_post(
        incident=incident,
        acting_user=manager(),
        visibility="public",
        status=Incident.Status.IDENTIFIED,
        message="Web app is degraded.",
        actions_for_customers="Nothing.",
        component_statuses={web.pk: "degraded_performance"},
    )
    rows = subscriber_rows(update)
    assert {r.idempotency_key.split(":")[0] for r in rows} == {"status-update", "status-component"}
    assert deliver_all()["sent"] == 2
    payloads = [verify(secret, r) for r in loopback.received]
    incident_payload = next(p for p in payloads if "incident" in p)
    assert set(incident_payload) == {"meta", "page", "incident"}
    assert incident_payload["page"]["id"] == "assyst" and incident_payload["page"]["status_indicator"]
    assert incident_payload["incident"]["name"] == "Dashboards are slow"
    assert incident_payload["incident"]["incident_updates"][0]["body"].startswith("Web app is degraded.")
    component_payload = next(p for p in payloads if "component_update" in p)
    assert component_payload["component_update"]["new_status"] == "degraded_performance"
    assert component_payload["component_update"]["old_status"] == "operational"
    assert component_payload["component"]["id"] == f"c{web.pk}"
    tampered = {**loopback.received[0], "body": loopback.received[0]["body"] + b" "}
    with pytest.raises(AssertionError):
        verify(secret, tampered)
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 0 and webhook.last_success_at


@pytest.mark.commitment("C15")
def test_webhook_retries_with_backoff_and_is_disabled_after_ten_failures(loopback, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 20
    webhook, _ = subscriptions.webhook_create(acting_user=StaffFactory(is_superuser=True), url=loopback.url)
    loopback.statuses = [500, 302]
    incident = make_incident()
    (row,) = subscriber_rows(post_update(incident))
    assert outbox_deliver(notification_id=row.pk) == "retry"
    row.refresh_from_db()
    assert row.status == "pending" and row.next_attempt_at > timezone.now() + timedelta(seconds=20)
    assert "HTTP" in row.last_error or "500" in row.last_error
    assert outbox_deliver(notification_id=row.pk) == "skipped"  # not due yet
    later = timezone.now() + timedelta(hours=2)
    assert outbox_deliver(notification_id=row.pk, now=later) == "retry"  # a redirect is no delivery
    assert outbox_deliver(notification_id=row.pk, now=later + timedelta(hours=2)) == "sent"
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 0  # success resets the count

    loopback.statuses = [503] * 10
    (row,) = subscriber_rows(post_update(incident))
    for n in range(10):
        assert outbox_deliver(notification_id=row.pk, now=timezone.now() + timedelta(hours=2 * (n + 1))) == "retry"
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 10 and webhook.disabled_at is not None
    assert "10 consecutive failed deliveries" in webhook.disabled_reason
    assert AuditEvent.objects.filter(action="status.webhook_disabled").count() == 1
    # Its remaining row gives up without a request, and new updates write no rows for it.
    assert outbox_deliver(notification_id=row.pk, now=timezone.now() + timedelta(days=2)) == "failed"
    assert len(loopback.received) == 13
    assert subscriber_rows(post_update(incident)) == []

    subscriptions.webhook_enable(webhook=webhook, acting_user=StaffFactory(is_superuser=True))
    assert len(subscriber_rows(post_update(incident))) == 1


@pytest.mark.commitment("C15")
def test_webhook_urls_must_be_https(settings):
    staff = StaffFactory(is_superuser=True)
    with pytest.raises(ValidationError):
        subscriptions.webhook_create(acting_user=staff, url="http://example.com/hook")
    settings.STATUS_WEBHOOK_ALLOW_LOOPBACK_HTTP = False
    with pytest.raises(ValidationError):
        subscriptions.webhook_create(acting_user=staff, url="http://127.0.0.1:9/hook")
    webhook, _ = subscriptions.webhook_create(acting_user=staff, url="https://hooks.example.com/status")
    assert webhook.url == "https://hooks.example.com/status"


@pytest.mark.parametrize(
    "url", ["https://10.1.2.3/h", "https://169.254.169.254/latest", "https://[::1]/h", "https://[fd00::1]/h"]
)
def test_webhook_addresses_must_be_public(url, settings):
    with pytest.raises(ValidationError, match="public address"):
        subscriptions.webhook_create(acting_user=StaffFactory(is_superuser=True), url=url)
    settings.STATUS_WEBHOOK_ALLOW_PRIVATE = True  # a receiver inside our network, on purpose
    assert subscriptions.webhook_create(acting_user=StaffFactory(is_superuser=True), url=url)[0].pk


def test_a_webhook_whose_name_resolves_privately_is_never_called(monkeypatch):
    import socket

    webhook, _ = subscriptions.webhook_create(
        acting_user=StaffFactory(is_superuser=True), url="https://hooks.example.com/status"
    )
    resolved = {"hooks.example.com": "192.168.7.7"}  # DNS now points the name inside our network

    def getaddrinfo(host, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (resolved[host], 443))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    opened = []
    monkeypatch.setattr("urllib.request.OpenerDirector.open", lambda *a, **k: opened.append(a))
    incident = make_incident(title="Dashboards are slow")
    post_update(incident)
    (row,) = Notification.objects.filter(webhook=webhook)
    assert outbox_deliver(notification_id=row.pk) != "sent"
    row.refresh_from_db()
    assert opened == [] and "public address" in row.last_error and row.status != Notification.Status.SENT
    resolved["hooks.example.com"] = "93.184.215.14"  # public again: delivery is attempted
    row.next_attempt_at = timezone.now()
    row.save(update_fields=["next_attempt_at"])
    outbox_deliver(notification_id=row.pk)
    assert len(opened) == 1


def test_admin_lists_subscribers_read_only_and_shows_a_webhook_secret_once():
    confirmed("listed@example.com")
    staff = StaffFactory(is_superuser=True)
    client = otp_client(staff)
    listing = client.get("/admin/incidents/statussubscriber/")
    body = listing.content.decode()
    # Subscribers are members of the public: staff see a masked address only.
    assert listing.status_code == 200 and "l***@example.com" in body and "listed@example.com" not in body
    assert client.get("/admin/incidents/statussubscriber/add/").status_code == 403
    response = client.post(
        "/admin/incidents/statuswebhook/add/", {"url": "https://hooks.example.com/x", "description": "Ops"}, follow=True
    )
    webhook = StatusWebhook.objects.get()
    assert webhook.secret in response.content.decode()
    assert webhook.secret not in client.get(f"/admin/incidents/statuswebhook/{webhook.pk}/change/").content.decode()


def test_every_maintenance_step_notifies_matching_subscribers_and_webhooks(loopback, smtp):  # noqa: F811
    from incidents.status.services import maintenance_create, maintenance_update_post

    web, api = component("Web app"), component("API")
    everything = confirmed("all@example.com")
    api_only = confirmed("api@example.com", components=[api])
    webhook, secret = subscriptions.webhook_create(acting_user=StaffFactory(is_superuser=True), url=loopback.url)
    start = timezone.now() + timedelta(days=2)
    with transaction.atomic():
        maintenance = maintenance_create(
            acting_user=manager(),
            name="Database upgrade",
            scheduled_for=start,
            scheduled_until=start + timedelta(hours=2),
            components=[web],
            body="We upgrade the database.",
        )
    update = maintenance_update_post(
        maintenance=maintenance, acting_user=manager(), status="in_progress", body="Started."
    )
    rows = Notification.objects.filter(idempotency_key__startswith="status-maintenance:")
    keys = sorted(r.idempotency_key for r in rows)
    first_pk = maintenance.updates.order_by("pk").first().pk
    assert keys == sorted(
        f"status-maintenance:{u}:{kind}"
        for u in (first_pk, update.pk)
        for kind in (f"email:{everything.pk}", f"webhook:{webhook.pk}")
    )
    assert not rows.filter(subscriber=api_only).exists()  # chose the API only
    deliver_all()
    assert set(rows.values_list("status", flat=True)) == {Notification.Status.SENT}
    mails = [m["message"] for m in smtp.sink.accepted if "Maintenance" in m["message"]["Subject"]]
    assert [(m["To"], m["Subject"]) for m in mails] == [
        ("all@example.com", "[Assyst status] Maintenance Database upgrade: Scheduled"),
        ("all@example.com", "[Assyst status] Maintenance Database upgrade: In progress"),
    ]
    assert mails[1]["List-Unsubscribe"] and "Started." in mails[1].get_content()
    payloads = [verify(secret, r) for r in loopback.received]
    assert [p["incident"]["status"] for p in payloads] == ["scheduled", "in_progress"]
    assert {p["incident"]["impact"] for p in payloads} == {"maintenance"}
