"""The one place where errors become application/problem+json responses."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from personae.errors import AppError, InternalError, NotFound, ValidationFailed
from personae.logs import request_id_var

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("personae.errors")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class _MethodNotAllowed(AppError):
    code = "method_not_allowed"
    status = 405
    title = "This method is not allowed here"


class _BadRequest(AppError):
    code = "bad_request"
    status = 400
    title = "The request could not be understood"


def problem_body(error: AppError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:personae:error:{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
        "request_id": request_id_var.get(),
        "retryable": error.retryable,
    }
    if error.retry_after is not None:
        body["retry_after"] = int(error.retry_after + 0.999)
    body.update(error.extra)
    return body


def problem_response(error: AppError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if error.retry_after is not None:
        headers["Retry-After"] = str(int(error.retry_after + 0.999))
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="personae"'
    return JSONResponse(
        problem_body(error), status_code=error.status, headers=headers, media_type=PROBLEM_JSON
    )


def internal_error_response() -> JSONResponse:
    """A 500 that tells the user nothing internal, only the reference id."""
    return problem_response(
        InternalError(
            "An unexpected error happened on our side. Nothing you sent was lost; "
            "try again, and quote the request id if it keeps happening."
        )
    )


def _field_errors(error: RequestValidationError) -> list[dict[str, str]]:
    fields = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ())]
        where = location[0] if location else "body"
        message = str(item.get("msg", ""))
        if item.get("type") == "json_invalid":
            # FastAPI puts the character offset where a field name would be.
            reason = (item.get("ctx") or {}).get("error", "")
            offset = location[1] if len(location) > 1 else "?"
            fields.append(
                {
                    "field": "body",
                    "location": "body",
                    "message": f"the body is not valid JSON ({reason} at character {offset})",
                }
            )
            continue
        name = ".".join(location[1:]) or where
        fields.append({"field": name, "location": where, "message": message})
    return fields


async def _on_app_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AppError)
    if error.status >= 500:
        log.warning("request failed: %s", error.code, extra={"code": error.code})
    return problem_response(error)


async def _on_validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    fields = _field_errors(error)
    detail = "; ".join(f"{item['field']}: {item['message']}" for item in fields[:5])
    return problem_response(ValidationFailed(detail, extra={"errors": fields}))


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


async def _on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 404:
        return problem_response(NotFound("There is nothing at this address."))
    if error.status_code == 405:
        allowed = _allowed_methods(request)
        return problem_response(
            _MethodNotAllowed(f"This address accepts {allowed}."), headers={"Allow": allowed}
        )
    return problem_response(_BadRequest(str(error.detail)))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _on_app_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
