"""Idempotency-Key on POST: the same key from the same token with the same request
returns the first response; with a different request it is refused (422).

The record is inserted first, in the same transaction as the service call: a retry
racing the first attempt blocks on the unique index until the first commits, then
replays its response; if the first attempt fails (4xx or an error) nothing is kept and
the key can be used again. Keys live API_IDEMPOTENCY_HOURS (default 24 h).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.response import Response

from governance.api.models import ApiToken, IdempotencyRecord
from governance.api.problems import Conflict, IdempotencyKeyReused

HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[\x21-\x7E]{1,255}$"  # visible ASCII, no spaces
_KEY_RE = re.compile(KEY_PATTERN)


class _KeyTaken(Exception):
    pass


def _request_hash(request) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\0")
    digest.update(request.path.encode())
    digest.update(b"\0")
    digest.update(request.body)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord, request_hash: str) -> Response:
    if record.request_hash != request_hash:
        raise IdempotencyKeyReused()
    headers = {"Idempotent-Replayed": "true"}
    if record.location:
        headers["Location"] = record.location
    return Response(record.body, status=record.status_code, headers=headers)


def idempotency_records_purge(*, now) -> int:
    """Forget every key older than API_IDEMPOTENCY_HOURS (the daily beat task): a token that
    stops posting would otherwise keep its stored responses for ever."""
    kept_from = now - timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=kept_from).delete()
    return deleted


def idempotent(request, token: ApiToken, create: Callable[[], Response]) -> Response:
    """Run `create` once per (token, Idempotency-Key); without the header, just run it."""
    key = request.headers.get(HEADER)
    if key is None:
        return create()
    if not _KEY_RE.match(key):
        raise exceptions.ValidationError({HEADER: ["Use 1-255 visible ASCII characters."]})
    request_hash = _request_hash(request._request)  # before the body is parsed
    now = timezone.now()
    kept_from = now - timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
    IdempotencyRecord.objects.filter(token=token, created_at__lt=kept_from).delete()
    record = IdempotencyRecord.objects.filter(token=token, key=key).first()
    if record is not None:
        return _replay(record, request_hash)
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        token=token, key=key, request_hash=request_hash, created_at=now
                    )
            except IntegrityError as exc:
                raise _KeyTaken from exc  # only the key's own insert means "taken"
            response = create()
            if response.status_code >= 300:
                transaction.set_rollback(True)
                return response
            record.status_code = response.status_code
            record.body = response.data
            record.location = response.get("Location", "")[:300]
            record.save(update_fields=["status_code", "body", "location"])
    except _KeyTaken:
        # A concurrent request with the same key committed first (we waited for it on the index).
        record = IdempotencyRecord.objects.filter(token=token, key=key).first()
        if record is None:
            raise Conflict("A request with this Idempotency-Key is still in progress; retry shortly.") from None
        return _replay(record, request_hash)
    return response
