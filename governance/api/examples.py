"""Request examples in the OpenAPI schema: what a client sends (docs, and schemathesis'
example runs, which then create real objects to follow links from)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample

INCIDENT = OpenApiExample(
    "Monitoring alert",
    request_only=True,
    value={
        "title": "API latency above SLO",
        "description": "p99 latency of the public API above 2 s for 10 minutes.",
        "kind": "general",
        "severity": "major",
        "detected_at": "2026-01-05T09:50:00Z",
        "aware_at": "2026-01-05T10:00:00Z",
    },
)
INCIDENT_UPDATE = OpenApiExample(
    "Internal note",
    request_only=True,
    value={"visibility": "internal", "status": "identified", "message": "A bad deploy; rolling back."},
)
BACKUP = OpenApiExample(
    "Nightly full backup",
    request_only=True,
    value={
        "kind": "full",
        "source": "pgbackrest:main",
        "started_at": "2026-01-05T02:00:00Z",
        "finished_at": "2026-01-05T02:41:00Z",
        "size_bytes": 73400320,
        "checksum": "sha256:9f2c",
        "encrypted": True,
        "location": "uk-south",
        "artefact": "main/20260105-0200F",
    },
)
RISK = OpenApiExample(
    "Supplier risk",
    request_only=True,
    value={
        "title": "Payment provider outage",
        "category": "supplier",
        "owner": "ravi",
        "inherent_likelihood": 3,
        "inherent_impact": 4,
        "residual_likelihood": 2,
        "residual_impact": 3,
    },
)
CHANGE = OpenApiExample(
    "Certificate rotation",
    request_only=True,
    value={
        "title": "Rotate TLS certificates",
        "description": "Yearly rotation of the public certificates.",
        "affects_security_controls": True,
        "planned_start": "2026-01-10T20:00:00Z",
        "planned_end": "2026-01-10T21:00:00Z",
        "rollback_plan": "Restore the previous key pair.",
    },
)
