from __future__ import annotations

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from assyst.celery import app as celery_app
from governance.core.models import JobRun


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        return f"error: {type(exc).__name__}"


# A probe must answer fast: without socket timeouts a broker that accepts the connection
# but never replies blocks the request forever, and kombu sleeps 2 s before any retry.
BROKER_CHECK_TIMEOUT = 2.0


def _check_broker() -> str:
    timeouts = {"socket_connect_timeout": BROKER_CHECK_TIMEOUT, "socket_timeout": BROKER_CHECK_TIMEOUT}
    try:
        with celery_app.connection_for_write(transport_options=timeouts) as conn:
            conn.ensure_connection(max_retries=0)
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}"


@never_cache
@require_GET
def healthz(request):
    """Liveness for load balancers: database and broker; 503 when either is down."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    if checks["database"] == "ok":
        last = JobRun.objects.filter(task="governance.core.tasks.heartbeat", outcome=JobRun.Outcome.SUCCESS).first()
        body["last_heartbeat"] = last.finished_at.isoformat() if last else None
    return JsonResponse(body, status=200 if healthy else 503)
