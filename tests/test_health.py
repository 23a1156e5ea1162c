"""/healthz: what a load balancer sees. 200 with database and broker up, 503 (fast) when
either is down."""

from __future__ import annotations

import socket
import time

import pytest
from django.db import OperationalError
from django.utils import timezone

from assyst.celery import app as celery_app
from governance.core import views
from governance.core.models import JobRun

# Operational, not a customer commitment: no commitment marker.
pytestmark = pytest.mark.django_db

URL = "/healthz"


def test_healthz_reports_database_and_broker_ok(client, settings):
    finished = timezone.now()
    JobRun.objects.create(
        task="governance.core.tasks.heartbeat", started_at=finished, finished_at=finished, outcome="success"
    )

    response = client.get(URL)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok"}
    assert body["last_heartbeat"] == finished.isoformat()
    if settings.REDIS_URL:  # CI: the check really talked to Redis
        assert celery_app.conf.broker_url.startswith("redis")


def test_healthz_is_get_only(client):
    assert client.post(URL).status_code == 405


def test_healthz_is_503_when_the_broker_refuses_connections(client, monkeypatch):
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")

    started = time.monotonic()
    response = client.get(URL)

    assert time.monotonic() - started < 2
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error: ")


@pytest.fixture
def silent_broker():
    """A TCP port that accepts connections and never answers: a hung broker."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        server.close()


def test_healthz_is_503_within_its_timeout_when_the_broker_hangs(client, monkeypatch, silent_broker):
    monkeypatch.setattr(celery_app.conf, "broker_url", silent_broker)
    monkeypatch.setattr(views, "BROKER_CHECK_TIMEOUT", 0.5)

    started = time.monotonic()
    response = client.get(URL)
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("error: ")
    assert elapsed < 3, f"health check took {elapsed:.1f} s against a silent broker"


class _BrokenConnection:
    def cursor(self):
        raise OperationalError("connection refused")


def test_healthz_is_503_when_the_database_check_fails(client, monkeypatch):
    monkeypatch.setattr(views, "connection", _BrokenConnection())

    response = client.get(URL)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "error: OperationalError"
    assert body["checks"]["broker"] == "ok"
    assert "last_heartbeat" not in body
