"""POST /espf/events[/{source}]: authenticate, validate, store durably, answer as ESPF expects.

ESPF forgets an event on 200 and on any 4xx, and sends it again on anything else. So:
200 only after the commit, 4xx only for requests that can never succeed (recorded with a
redacted copy so the operator can see them), 503 when the store cannot commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from opennsps import metrics, tracing
from opennsps.config import CustomAuth, IngressConfig
from opennsps.domain.errors import ErrorType
from opennsps.domain.events import EventValidationError, IncomingEvent, parse_event
from opennsps.domain.ids import time_ordered_uuid
from opennsps.ingress.auth import KNOWN_SCHEMES, Authenticator, Clock, build_authenticator
from opennsps.ingress.redaction import redacted_headers
from opennsps.ingress.request import Answer, IngressRequest
from opennsps.logging import get_logger
from opennsps.store.event_store import EventStore
from opennsps.store.records import (
    EventNotStorable,
    NewEvent,
    RejectedRequest,
    StoreUnavailable,
)

log = get_logger("opennsps.ingress")

RETRY_AFTER_SECONDS = "5"


@dataclass(frozen=True)
class Source:
    name: str
    i_env: int | None
    authenticator: Authenticator


@dataclass
class _ReadBody:
    data: bytes
    too_large: bool


class Rejection(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        reason: str,
        outcome: str,
        headers: dict[str, str] | None = None,
        body: _ReadBody | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason
        self.outcome = outcome
        self.headers = headers
        self.body = body


class EspfIngress:
    def __init__(
        self,
        config: IngressConfig,
        store: EventStore,
        clock: Clock = time.time,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.on_stored = on_stored
        self.sources = {
            name: Source(name, source.i_env, build_authenticator(source.auth, source.i_env, clock))
            for name, source in config.sources.items()
        }
        custom = {
            s.auth.auth_type.lower()
            for s in config.sources.values()
            if isinstance(s.auth, CustomAuth)
        }
        self.schemes = KNOWN_SCHEMES | custom

    async def handle(self, request: IngressRequest) -> Answer:
        """The answer to one POST /espf/events[/{source}]."""
        started = time.perf_counter()
        received_at = datetime.now(UTC)
        explicit = request.source is not None
        source_name = request.source if request.source is not None else self.config.default_source
        body = _ReadBody(b"", False)
        try:
            source = self._source(source_name, explicit)
            body = await self._read_body(request)
            reason = source.authenticator.authenticate(request.headers)
            if reason is not None:
                raise Rejection(
                    401,
                    "unauthorized",
                    f"authentication failed: {reason}",
                    "unauthorized",
                    {"WWW-Authenticate": source.authenticator.challenge},
                )
            _require_json_content_type(request)
            event = _decode_event(body.data)
            answer = await self._store(request, source, event, body.data, received_at)
        except Rejection as rejection:
            body = rejection.body or body
            answer = await self._reject(request, source_name, rejection, body, received_at)
        metrics.INGRESS_LATENCY.observe(time.perf_counter() - started)
        return answer

    def _source(self, name: str, explicit: bool) -> Source:
        source = self.sources.get(name)
        if source is not None:
            return source
        if explicit:
            reason = f"no source named {name[:64]!r} is configured (ingress.sources)"
        else:
            reason = (
                f"POST /espf/events uses the source {name!r}, which is not configured; "
                f"add ingress.sources.{name} or post to /espf/events/{{source}}"
            )
        raise Rejection(404, "unknown_source", reason, "unknown_source")

    async def _read_body(self, request: IngressRequest) -> _ReadBody:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Rejection(
                413,
                "payload_too_large",
                f"body of {declared} bytes exceeds the limit of {limit} bytes",
                "too_large",
            )
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            chunk, more = await request.next_chunk()
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise Rejection(
                    413,
                    "payload_too_large",
                    f"body exceeds the limit of {limit} bytes",
                    "too_large",
                    body=_ReadBody(b"".join(chunks), too_large=True),
                )
        return _ReadBody(b"".join(chunks), too_large=False)

    async def _store(
        self,
        request: IngressRequest,
        source: Source,
        event: IncomingEvent,
        raw: bytes,
        received_at: datetime,
    ) -> Answer:
        new = NewEvent(
            event_id=time_ordered_uuid(),
            source=source.name,
            i_env=source.i_env,
            event=event,
            raw_body=raw.decode("utf-8"),
            received_at=received_at,
            request_id=request.request_id,
            unique_id=request.unique_id,
        )
        traced = tracing.event_span(
            "espf.ingest",
            request_id=request.request_id,
            event_id=new.event_id,
            attributes={
                "opennsps.source": source.name,
                "opennsps.event_type": event.event_type,
                "opennsps.i_event": event.i_event,
                "opennsps.request_id": request.request_id or "",
                "opennsps.unique_id": request.unique_id or "",
            },
        )
        try:
            with traced:
                outcome = await self.store.add_event(new)
        except EventNotStorable as exc:
            raise Rejection(
                400, "invalid_event", f"the store cannot hold this event: {exc}", "invalid"
            ) from exc
        except StoreUnavailable as exc:
            metrics.events_received(event.event_type, "unavailable").inc()
            log.warning(
                "espf event not stored; answered 503 so ESPF sends it again",
                source=source.name,
                event_type=event.event_type,
                i_event=event.i_event,
                reason=str(exc),
            )
            return Answer.error(
                503,
                "the event store is unavailable; the event was not stored, send it again",
                "store_unavailable",
                ErrorType.SERVICE,
                {"Retry-After": RETRY_AFTER_SECONDS},
            )
        label = "duplicate" if outcome.duplicate else "accepted"
        if not outcome.duplicate and self.on_stored is not None:
            self.on_stored()
        metrics.events_received(event.event_type, label).inc()
        log.info(
            "espf event " + label,
            source=source.name,
            event_type=event.event_type,
            i_event=event.i_event,
            event_id=outcome.event_id,
            entity=event.entity_key,
        )
        return Answer.json(
            200, {"status": label, "event_id": outcome.event_id, "duplicate": outcome.duplicate}
        )

    async def _reject(
        self,
        request: IngressRequest,
        source_name: str,
        rejection: Rejection,
        body: _ReadBody,
        received_at: datetime,
    ) -> Answer:
        metrics.events_received("", rejection.outcome).inc()
        excerpt_limit = self.config.rejected_body_bytes
        record = RejectedRequest(
            received_at=received_at,
            source=source_name,
            http_status=rejection.status,
            error=rejection.error,
            reason=rejection.reason,
            method=request.method,
            path=request.path,
            remote_addr=request.remote_addr,
            headers=redacted_headers(request.all_headers(), self.schemes),
            body=body.data[:excerpt_limit].decode("utf-8", errors="replace") if body.data else None,
            body_truncated=body.too_large or len(body.data) > excerpt_limit,
            request_id=request.request_id,
            unique_id=request.unique_id,
        )
        try:
            await self.store.add_rejected(record)
        except StoreUnavailable as exc:
            log.error("rejected request could not be recorded", reason=str(exc))
        log.warning(
            "espf request rejected",
            source=source_name,
            status=rejection.status,
            error=rejection.error,
            reason=rejection.reason,
        )
        return Answer.error(
            rejection.status, rejection.reason, rejection.error, headers=rejection.headers
        )


def _require_json_content_type(request: IngressRequest) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        shown = content_type[:100] or "none"
        raise Rejection(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {shown}",
            "unsupported_media_type",
        )


def _decode_event(raw: bytes) -> IncomingEvent:
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejection(
            400, "malformed_json", f"the body is not valid JSON: {exc}", "invalid"
        ) from None
    try:
        return parse_event(decoded)
    except EventValidationError as exc:
        raise Rejection(400, "invalid_event", str(exc), "invalid") from exc
