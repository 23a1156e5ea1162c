"""OpenAPI details drf-spectacular cannot infer: the bearer scheme, and the problem
responses every operation may give."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from governance.api.scopes import SCOPES

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Validation errors per field.",
        },
    },
    "required": ["type", "title", "status", "detail", "code"],
}

COMMON = {
    "400": "The request is not valid (see `errors`).",
    "401": "No token, or a token that is invalid, expired or revoked.",
    "403": "The token lacks the scope, or the address is outside the organisation's allowlist.",
    "404": "No such object, or not visible to this token.",
    "405": "Method not allowed.",
    "429": "Rate limit reached: retry after the Retry-After header's seconds.",
}
POST_ONLY = {
    "409": "Conflict with the current state.",
    "415": "Send the body as application/json.",
    "422": "The Idempotency-Key was used before with a different body.",
}


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "governance.api.auth.ApiTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token: `Authorization: Bearer asy_xxxxxxxx_...`. Scopes: "
            + "; ".join(f"`{s.name}` {s.description}" for s in SCOPES),
        }


# OpenAPI links: what a created object's id leads to (clients and schemathesis' stateful runs follow them).
LINKS = {
    "incidents_create": [
        "incidents_read",
        "incidents_updates_create",
        "incidents_organisations_list",
        "incidents_organisations_create",
        "incidents_close",
    ],
    "access_requests_create": ["access_requests_read"],
    "risks_create": ["risks_read"],
}


def _add_links(result) -> None:
    operations = {
        op.get("operationId"): op
        for item in result.get("paths", {}).values()
        for op in item.values()
        if isinstance(op, dict)
    }
    for source, targets in LINKS.items():
        op = operations.get(source)
        if op is None:
            continue
        created = op.get("responses", {}).get("201")
        if created is None:
            continue
        created["links"] = {
            target: {"operationId": target, "parameters": {"id": "$response.body#/id"}}
            for target in targets
            if target in operations
        }


def add_problem_responses(result, generator, request, public):
    """Postprocessing hook: every operation documents its problem responses."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            statuses = dict(COMMON)
            if method == "post":
                statuses.update(POST_ONLY)
            responses = operation.setdefault("responses", {})
            for code, text in statuses.items():
                responses.setdefault(
                    code, {"description": text, "content": {"application/problem+json": {"schema": ref}}}
                )
            if "429" in responses:
                responses["429"].setdefault("headers", {})["Retry-After"] = {
                    "schema": {"type": "integer"},
                    "description": "Seconds to wait.",
                }
    _add_links(result)
    return result
