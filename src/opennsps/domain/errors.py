"""The error vocabulary shared by every HTTP surface (the NSPS ErrorResponse shape)."""

from __future__ import annotations

from enum import StrEnum
from typing import TypedDict


class ErrorType(StrEnum):
    """The NSPS contract's ErrorType values."""

    VALIDATION = "validation_error"
    AUTHENTICATION = "authentication_error"
    SERVICE = "service_error"
    CONNECTION = "connection_error"
    RATE_LIMIT = "rate_limit_error"
    INTERNAL = "internal_error"


class ErrorBody(TypedDict):
    message: str
    error: str
    type: str


def error_body(message: str, error: str, error_type: ErrorType) -> ErrorBody:
    """Build an ErrorResponse body: `error` is a short code, `message` says what to fix."""
    return {"message": message, "error": error, "type": error_type.value}
