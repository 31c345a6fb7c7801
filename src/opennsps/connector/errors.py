"""Errors a connector raises; each is one NSPS ErrorResponse and one delivery outcome.

In a connector service the error becomes the HTTP answer (status code, ErrorResponse body);
in-process it becomes the attempt's outcome directly. `retryable` says which: a
`Rejected` event is never retried, everything else is retried on the handler's schedule.
"""

from __future__ import annotations

from typing import ClassVar

from opennsps.domain.errors import ErrorType


class ConnectorError(Exception):
    status_code: ClassVar[int] = 500
    error: ClassVar[str] = "internal_error"
    error_type: ClassVar[ErrorType] = ErrorType.INTERNAL
    retryable: ClassVar[bool] = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Rejected(ConnectorError):
    """The event can never succeed as it is (bad data, a missing SIM secret...)."""

    status_code = 422
    error = "rejected"
    error_type = ErrorType.VALIDATION
    retryable = False


class NotFound(ConnectorError):
    """Something the event refers to does not exist in the external system, for good."""

    status_code = 404
    error = "not_found"
    error_type = ErrorType.VALIDATION
    retryable = False


class Unauthorized(ConnectorError):
    """The external system refused the connector's credentials (a configuration problem)."""

    status_code = 401
    error = "unauthorized"
    error_type = ErrorType.AUTHENTICATION


class RateLimited(ConnectorError):
    status_code = 429
    error = "rate_limited"
    error_type = ErrorType.RATE_LIMIT


class ServiceError(ConnectorError):
    """The external system answered with a fault; worth trying again later."""

    status_code = 500
    error = "service_error"
    error_type = ErrorType.SERVICE


class Unavailable(ConnectorError):
    """The external system cannot be reached or timed out."""

    status_code = 503
    error = "unavailable"
    error_type = ErrorType.CONNECTION
