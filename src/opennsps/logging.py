"""JSON-lines logging: every line carries the request's trace ids when there is one."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, TextIO, cast

import orjson
import structlog
from structlog.typing import FilteringBoundLogger

from opennsps.utc_text import log_timestamp

SECRET_KEYS = frozenset(
    {"password", "token", "authorization", "secret", "credentials", "signature", "api_key"}
)
REDACTED = "[redacted]"


# Field names already seen not to name a secret (field names come from the code, so the
# set stays small; it is capped anyway).
_SAFE_KEYS: set[str] = set()
_SAFE_KEYS_LIMIT = 2048


def _redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    if _SAFE_KEYS.issuperset(event_dict):
        return event_dict
    for key in event_dict:
        if key.lower() in SECRET_KEYS:
            event_dict[key] = REDACTED
        elif len(_SAFE_KEYS) < _SAFE_KEYS_LIMIT:
            _SAFE_KEYS.add(key)
    return event_dict


# (request_id, unique_id) of the request being handled, for every line logged meanwhile.
_trace_ids: ContextVar[tuple[str, str] | None] = ContextVar("opennsps_trace_ids", default=None)


def bind_trace_ids(request_id: str, unique_id: str) -> Token[tuple[str, str] | None]:
    """Put the trace ids on every line logged in this context until reset_trace_ids."""
    return _trace_ids.set((request_id, unique_id))


def reset_trace_ids(token: Token[tuple[str, str] | None]) -> None:
    _trace_ids.reset(token)


@contextmanager
def trace_ids_bound(request_id: str, unique_id: str) -> Iterator[None]:
    token = bind_trace_ids(request_id, unique_id)
    try:
        yield
    finally:
        reset_trace_ids(token)


def _add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    ids = _trace_ids.get()
    if ids is not None:
        event_dict.setdefault("request_id", ids[0])
        event_dict.setdefault("unique_id", ids[1])
    return event_dict


def _add_timestamp(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    event_dict["timestamp"] = log_timestamp()
    return event_dict


def _render(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
    return orjson.dumps(event_dict, default=str).decode()


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send structlog and standard-library records (uvicorn, alembic) to one JSON stream."""
    _bound.clear()
    out = stream if stream is not None else sys.stdout
    numeric = logging.getLevelName(level.upper())
    shared: list[Any] = [
        _add_trace_ids,
        structlog.processors.add_log_level,
        _add_timestamp,
        _redact_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _render],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _render,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))


# The logger each name stands for under the current configuration, made on first use.
_bound: dict[str, FilteringBoundLogger] = {}


def _logger_named(name: str) -> FilteringBoundLogger:
    logger = _bound.get(name)
    if logger is None:
        logger = _bound[name] = structlog.get_logger(name).bind()
    return logger


class _Logger:
    """What get_logger returns: a module can hold it from import time, before logging is
    configured. structlog's own lazy proxy builds a new logger on every call (a fifth of
    a log line's cost); this one keeps it until configure_logging runs again."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(_logger_named(self._name), attribute)


def get_logger(name: str) -> FilteringBoundLogger:
    return cast(FilteringBoundLogger, _Logger(name))
