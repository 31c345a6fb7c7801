"""JSON-lines logging: every line carries the request's trace ids when there is one."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog

SECRET_KEYS = frozenset(
    {"password", "token", "authorization", "secret", "credentials", "signature", "api_key"}
)
REDACTED = "[redacted]"


def _redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    for key in event_dict:
        if key.lower() in SECRET_KEYS:
            event_dict[key] = REDACTED
    return event_dict


def _render(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
    return orjson.dumps(event_dict, default=str).decode()


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send structlog and standard-library records (uvicorn, alembic) to one JSON stream."""
    out = stream if stream is not None else sys.stdout
    numeric = logging.getLevelName(level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
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


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
