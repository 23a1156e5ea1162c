"""The endpoint external backup tools report runs to (C24): POST JSON with a bearer token.

Served at /hooks/backups/ (outside the admin: a machine client has no admin session or
second factor); the earlier /admin/retention/backuprecord/report/ stays as an alias.
Every bad request gets a 4xx with a JSON `error` saying what is wrong.
"""

from __future__ import annotations

import hmac
import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from governance.retention.backups import backup_register

MAX_BODY = 16 * 1024
REQUIRED = ("kind", "source", "started_at", "finished_at", "encrypted", "location")


def _authorised(request: HttpRequest) -> bool:
    expected = settings.RETENTION_BACKUP_API_TOKEN
    header = request.headers.get("Authorization", "")
    if not expected or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header.removeprefix("Bearer ").encode(), expected.encode())


@csrf_exempt  # machine-to-machine with a bearer token; no cookies are read
@require_POST
def backup_report(request: HttpRequest) -> JsonResponse:
    if not _authorised(request):
        return JsonResponse({"error": "unauthorised"}, status=401)
    if len(request.body) > MAX_BODY:
        return JsonResponse({"error": "body too large"}, status=413)
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return JsonResponse({"error": "body must be JSON"}, status=400)
    if not isinstance(data, dict):
        return JsonResponse({"error": "body must be a JSON object"}, status=400)
    if missing := [k for k in REQUIRED if k not in data]:
        return JsonResponse({"error": f"missing: {', '.join(missing)}"}, status=400)
    started, finished = parse_datetime(str(data["started_at"])), parse_datetime(str(data["finished_at"]))
    if started is None or finished is None:
        return JsonResponse({"error": "started_at and finished_at must be ISO 8601 date-times"}, status=400)
    size = data.get("size_bytes", 0)
    if not isinstance(data["encrypted"], bool) or not isinstance(size, int) or isinstance(size, bool):
        return JsonResponse({"error": "encrypted must be a boolean and size_bytes an integer"}, status=400)
    if data.get("status", "succeeded") not in ("succeeded", "failed"):
        return JsonResponse({"error": "status must be 'succeeded' or 'failed'"}, status=400)
    if not all(isinstance(data.get(k, ""), str) for k in ("kind", "source", "location", "checksum", "artefact")):
        return JsonResponse({"error": "kind, source, location, checksum and artefact must be strings"}, status=400)
    try:
        record = backup_register(
            kind=str(data["kind"]),
            source=str(data["source"]),
            started_at=started,
            finished_at=finished,
            size_bytes=size,
            checksum=str(data.get("checksum", "")),
            encrypted=data["encrypted"],
            location=str(data["location"]),
            artefact=str(data.get("artefact", "")),
            succeeded=data.get("status", "succeeded") != "failed",
            reported_by="api",
        )
    except ValidationError as e:
        return JsonResponse({"error": e.message_dict}, status=400)
    return JsonResponse({"id": record.pk, "expires_at": record.expires_at.isoformat()}, status=201)
