"""JSON error answers in the NSPS ErrorResponse shape for every HTTP surface of OpenNSPS."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from opennsps.config import plain_message
from opennsps.domain.errors import ErrorBody, ErrorType, error_body
from opennsps.logging import get_logger

log = get_logger(__name__)

_TYPE_OF_STATUS = {
    401: ErrorType.AUTHENTICATION,
    403: ErrorType.AUTHENTICATION,
    429: ErrorType.RATE_LIMIT,
    503: ErrorType.SERVICE,
}


def json_response(
    body: object, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status_code, headers=headers, media_type="application/json"
    )


def error_response(
    status_code: int,
    message: str,
    error: str,
    error_type: ErrorType | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return json_response(
        error_payload(status_code, message, error, error_type), status_code, headers
    )


def error_payload(
    status_code: int, message: str, error: str, error_type: ErrorType | None = None
) -> ErrorBody:
    """The ErrorResponse body; `type` follows the status unless the caller gives one."""
    chosen = error_type or _TYPE_OF_STATUS.get(
        status_code, ErrorType.INTERNAL if status_code >= 500 else ErrorType.VALIDATION
    )
    return error_body(message, error, chosen)


class ErrorResponse(BaseModel):
    """Every refusal and failure of the API (the NSPS ErrorResponse shape)."""

    message: str
    error: str
    type: ErrorType
    details: list[dict[str, Any]] | None = None


def _declared(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# What any /api/v1 operation may answer besides its success.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _declared("The body cannot be read (not JSON, or not UTF-8)"),
    401: _declared("No valid API token or console session"),
    403: _declared("The caller's role does not allow this"),
    404: _declared("What the request names does not exist"),
    405: _declared("The path does not take this method (see the Allow header)"),
    409: _declared("The request conflicts with the current state"),
    422: _declared("The request is not valid: `details` names each problem"),
    429: _declared("Too many requests: wait as Retry-After says"),
    503: _declared("The store is unavailable for now: try again"),
}
UPSTREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    502: _declared("PortaBilling refused the call or did not answer")
}


class ApiError(Exception):
    """An answer in the ErrorResponse shape, raised from anywhere in a request."""

    def __init__(self, status_code: int, message: str, error: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error = error


def _allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document gives this path (Starlette names only the first
    route's, though several routes share a path, one per method)."""
    allowed: set[str] = set()
    for path, methods in _methods_by_path(request.app).items():
        if path.fullmatch(request.url.path):
            allowed |= methods
    return sorted(allowed)


def _methods_by_path(app: FastAPI) -> dict[re.Pattern[str], set[str]]:
    cached: dict[re.Pattern[str], set[str]] | None = getattr(app.state, "methods_by_path", None)
    if cached is None:
        cached = {
            re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path))): {
                method.upper() for method in operations
            }
            for path, operations in app.openapi().get("paths", {}).items()
        }
        app.state.methods_by_path = cached
    return cached


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return error_response(exc.status_code, exc.message, exc.error, headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = exc.detail.lower().replace(" ", "_") if isinstance(exc.detail, str) else "error"
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return error_response(exc.status_code, str(exc.detail), code, headers=headers)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"loc": [str(p) for p in e["loc"] if p != "body"], "msg": plain_message(e)}
            for e in exc.errors()
        ]
        message = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems)
        body = error_body(message or "invalid request", "invalid_request", ErrorType.VALIDATION)
        # Each problem also on its own, so a form can mark the field to fix.
        return json_response({**body, "details": problems}, 422)

    async def unexpected_error(_: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return error_response(500, "internal error; see the server log", "internal_error")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
