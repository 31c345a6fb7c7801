"""OpenTelemetry traces, when `tracing.enabled` (and the `otel` extra is installed).

Each event's trace is PortaBilling's own: the trace id is the request's `x-b3-traceid`
(the event's `request_id`), so the ingest span and every delivery attempt of the event,
days later, land in the trace ESPF started. Both hang under one parent span id made from
the event's id (ESPF's span is not stored). A request without a usable b3 trace id gets
the event's id (a UUID, 128 bits) as its trace id. Without tracing every call here is a
no-op costing one check.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opennsps import __version__
from opennsps.config import TracingConfig
from opennsps.logging import get_logger

log = get_logger("opennsps.tracing")
_HEX = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}")
_tracer: Any = None
_provider: Any = None


class TracingUnavailable(RuntimeError):
    """Tracing is enabled but OpenTelemetry is not installed (the message says how)."""


def check(config: TracingConfig) -> None:
    """Raise TracingUnavailable when tracing is enabled without OpenTelemetry installed."""
    if not config.enabled:
        return
    try:
        import opentelemetry.exporter.otlp.proto.http
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        raise TracingUnavailable(
            "tracing.enabled needs OpenTelemetry: pip install 'opennsps[otel]'"
        ) from None


def configure(config: TracingConfig) -> None:
    """Start exporting spans (once per process); nothing when tracing is disabled."""
    global _tracer, _provider
    if not config.enabled or _provider is not None:
        return
    check(config)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio
    except ImportError:
        raise TracingUnavailable(
            "tracing.enabled needs OpenTelemetry: pip install 'opennsps[otel]'"
        ) from None
    resource = Resource.create(
        {"service.name": config.service_name, "service.version": __version__}
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBasedTraceIdRatio(config.sample_ratio)
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=config.endpoint),
            schedule_delay_millis=int(config.export_delay_seconds * 1000),
        )
    )
    _provider = provider
    _tracer = provider.get_tracer("opennsps", __version__)
    log.info("exporting traces", endpoint=config.endpoint, sample_ratio=config.sample_ratio)


def shutdown() -> None:
    """Send what is buffered and stop."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def event_span(
    name: str, *, request_id: str | None, event_id: str, attributes: dict[str, Any]
) -> AbstractContextManager[Any]:
    """A span in the event's trace (see the module's note), current while it is open."""
    if _tracer is None:
        return nullcontext()
    return _event_span(name, request_id, event_id, attributes)


def span(name: str, attributes: dict[str, Any] | None = None) -> AbstractContextManager[Any]:
    """A child of the current span (enrichment, the connector's call), if tracing."""
    if _tracer is None:
        return nullcontext()
    started: AbstractContextManager[Any] = _tracer.start_as_current_span(
        name, attributes=attributes or {}
    )
    return started


@contextmanager
def _event_span(
    name: str, request_id: str | None, event_id: str, attributes: dict[str, Any]
) -> Iterator[Any]:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    event = uuid.UUID(event_id).int
    parent = SpanContext(
        trace_id=trace_id_of(request_id, event),
        span_id=(event & 0xFFFF_FFFF_FFFF_FFFF) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    context = trace.set_span_in_context(NonRecordingSpan(parent))
    with _tracer.start_as_current_span(name, context=context, attributes=attributes) as current:
        yield current


def trace_id_of(request_id: str | None, event: int) -> int:
    """The b3 trace id (16 or 32 hex digits) as an OpenTelemetry trace id, else the
    event's id."""
    text = (request_id or "").lower()
    if _HEX.fullmatch(text) and int(text, 16):
        return int(text, 16)
    return event or 1
