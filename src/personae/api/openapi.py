"""The OpenAPI document, with the problem+json errors each operation can give.

FastAPI documents a 422 of its own shape (`HTTPValidationError`) and no other error;
Personae answers every error as application/problem+json (`personae.api.problems`).
The errors are declared here for all operations in one pass, from what decides them:
who is asking (every /api/v1 operation reads the caller, and a bad token is 401 even
on a public one), whether the method writes (CSRF, conflicts, bodies, maintenance),
and the middleware every request goes through (body limits and timeouts, NUL in an
address, rate limits, the generic 500).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from personae.api.problems import PROBLEM_JSON

_WRITES = frozenset({"post", "put", "patch", "delete"})
_VOICE_PATHS = re.compile(r"^/api/v1/(voices|speech)\b|/speech(/|$)|/call$")
_CHARACTER_PATHS = re.compile(r"^/api/v1/characters(/\{character_id\})?$")
_REASONS = {
    400: "The request could not be understood",
    401: "Not signed in, or the session or token is no longer valid",
    403: "Signed in but not allowed (or the CSRF header is missing)",
    404: "Nothing at this address, or not yours to see",
    408: "The request body stopped arriving",
    409: "In conflict with the current state",
    413: "The request body is too large",
    422: "Some fields are not valid",
    429: "Too many requests: wait Retry-After seconds",
    500: "An unexpected error on our side (quote the request id)",
    501: "Voice is not installed on this server (voice_not_installed)",
    502: "The speech engine failed (speech_engine_failed): retry",
    503: "Unavailable for now (maintenance, a full queue, no backend): retry",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An RFC 9457 problem; some codes add fields of their own.",
    "required": ["type", "title", "status", "detail", "code", "request_id", "retryable"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "pattern": "^[a-z_]+$"},
        "request_id": {"type": ["string", "null"]},
        "retryable": {"type": "boolean"},
        "retry_after": {"type": "integer"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "location": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses one operation can answer."""
    statuses = {400, 404, 408, 413, 422, 500, 503}
    if path.startswith("/api/v1/"):
        statuses |= {401, 403, 429}
    if method in _WRITES:
        statuses |= {409}
    if _VOICE_PATHS.search(path):
        # Without the [voice] extra every voice operation is 501; a message that is not
        # a reply is 409 (reading too); an engine's failure is 502.
        statuses |= {409, 501, 502}
    elif method in {"post", "patch"} and _CHARACTER_PATHS.match(path):
        statuses |= {501}  # a character's voice, sent to a server without voice
    return statuses


def _declare_problems(document: dict[str, Any]) -> None:
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in sorted(_statuses(path, method, operation)):
                responses[str(status)] = {"description": _REASONS[status], "content": problem}
    # FastAPI's own 422 shape is never sent.
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def problem_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """An `app.openapi` that declares the problem+json errors (built once, then kept)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _declare_problems(document)
            app.openapi_schema = document
        return app.openapi_schema

    return openapi
