"""Shared bits of the resource views: query parameters, pages, schema helpers."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from governance.api.idempotency import HEADER, KEY_PATTERN
from governance.api.pagination import PageParams, paginate

IDEMPOTENCY_PARAM = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Retry-safe POST: the same key with the same body returns the first response "
    "(header Idempotent-Replayed: true); with a different body, 422. Kept 24 hours.",
    pattern=KEY_PATTERN,
)


def query_params(request, *serializer_classes) -> dict:
    """Validate the query string with each serializer (400 problem on bad input)."""
    data: dict = {}
    known = {name for cls in serializer_classes for name in cls().fields}
    # DRF reads an empty query value as "not given" (HTML form rules); the schema says it is invalid.
    if blank := sorted(k for k in known if request.query_params.get(k, None) == ""):
        raise ValidationError({k: ["This field may not be blank."] for k in blank})
    for cls in serializer_classes:
        s = cls(data=request.query_params)
        s.is_valid(raise_exception=True)
        data.update(s.validated_data)
    return data


def page_response(request, queryset, serializer_class, params: dict, *, ascending: bool = False) -> Response:
    rows, next_cursor, has_more = paginate(queryset, params, ascending=ascending)
    return Response(
        {"results": serializer_class(rows, many=True).data, "next_cursor": next_cursor, "has_more": has_more}
    )


__all__ = ["IDEMPOTENCY_PARAM", "PageParams", "page_response", "query_params"]
