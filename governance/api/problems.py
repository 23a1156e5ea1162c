"""Errors as RFC 9457 problem details, everywhere under /api/v1/.

Every refusal (400 validation, 401, 403, 404, 405, 409, 415, 422, 429) is an
`application/problem+json` object: type, title, status, detail, and `code` (a stable
machine-readable reason); validation errors add `errors` ({field: [messages]}).
"""

from __future__ import annotations

from http import HTTPStatus

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.exceptions import APIException
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

PROBLEM_CONTENT_TYPE = "application/problem+json"
# Problem types of this API beyond the HTTP status (RFC 9457 3.1.1: a URI; these name the
# kind and are not meant to be fetched). Plain HTTP refusals use "about:blank".
TYPE_BASE = "urn:assyst:problem:"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class IdempotencyKeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used with a different request body."
    default_code = "idempotency_key_reused"


def problem(status_code: int, detail: str, *, code: str = "", errors=None) -> dict:
    body = {
        "type": f"{TYPE_BASE}{code}" if code in TYPED else "about:blank",
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        "code": code or HTTPStatus(status_code).phrase.lower().replace(" ", "_"),
    }
    if errors is not None:
        body["errors"] = errors
    return body


TYPED = {"invalid", "idempotency_key_reused", "rate_limited", "scope_missing", "ip_not_allowed", "conflict"}


def _flatten(detail, path: str = "") -> dict[str, list[str]]:
    """DRF's error detail as {"field" or "field.sub": [message, ...]}; others under "non_field_errors"."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            out.update(_flatten(value, f"{path}.{key}" if path else str(key)))
    elif isinstance(detail, list):
        for i, item in enumerate(detail):
            if isinstance(item, dict | list):
                out.update(_flatten(item, f"{path}.{i}" if path else str(i)))
            else:
                out.setdefault(path or "non_field_errors", []).append(str(item))
    else:
        out.setdefault(path or "non_field_errors", []).append(str(detail))
    return out


def exception_handler(exc, context):
    """DRF exception handler: service rules and DRF errors become problem details."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: let it be a 500 and be seen
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        response.data = problem(response.status_code, "The request is not valid.", code="invalid", errors=errors)
    elif isinstance(exc, exceptions.Throttled):
        response.data = problem(
            429, "Too many calls with this token; retry after the delay given.", code="rate_limited"
        )
    else:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else ""
        response.data = problem(response.status_code, str(detail), code=code)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def problem_response(status_code: int, detail: str, *, code: str = "", headers=None) -> JsonResponse:
    """The same shape from plain Django views (paths no API view matched)."""
    response = JsonResponse(
        problem(status_code, detail, code=code), status=status_code, content_type=PROBLEM_CONTENT_TYPE
    )
    for k, v in (headers or {}).items():
        response[k] = v
    return response


@csrf_exempt  # no cookies are read here; a POST to a wrong address is a 404, not a CSRF failure
def not_found(request, *args, **kwargs) -> JsonResponse:
    return problem_response(404, "There is nothing at this address.", code="not_found")
