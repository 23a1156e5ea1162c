"""Cursor (keyset) pagination on the primary key: stable under inserts, one query per page.

The cursor is opaque to clients (base64 of the last id seen). `next_cursor` is always
given once a page had rows, also on the last page, so a SIEM polling the audit trail
every minute passes it back and gets only what was added since.
"""

from __future__ import annotations

import base64
import binascii

from django.db.models import QuerySet
from rest_framework import serializers

MAX_ID = 2**63 - 1
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise serializers.ValidationError({"cursor": ["This cursor is not valid."]}) from exc
    tag, _, value = raw.partition(":")
    if tag != "id" or not value.isdigit() or int(value) > MAX_ID:
        raise serializers.ValidationError({"cursor": ["This cursor is not valid."]})
    return int(value)


class PageParams(serializers.Serializer):
    cursor = serializers.CharField(required=False, max_length=64, help_text="`next_cursor` of the previous page.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)


def paginate(queryset: QuerySet, params: dict, *, ascending: bool) -> tuple[list, str | None, bool]:
    """One page of `queryset` ordered by id; returns (rows, next_cursor, has_more)."""
    cursor = params.get("cursor")
    limit = params.get("limit") or DEFAULT_LIMIT
    if cursor:
        last = decode_cursor(cursor)
        queryset = queryset.filter(pk__gt=last) if ascending else queryset.filter(pk__lt=last)
    rows = list(queryset.order_by("pk" if ascending else "-pk")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].pk) if rows else cursor
    return rows, next_cursor, has_more


def page_serializer(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The schema of one page of `item` (for the OpenAPI document)."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "results": item(many=True),
            "next_cursor": serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page."),
            "has_more": serializers.BooleanField(),
        },
    )
