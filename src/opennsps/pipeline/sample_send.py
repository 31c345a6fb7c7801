"""A test-send: one sample event through a handler's connector exactly as the worker would
send it (enriched, same payload, same outcome rules), answered to the operator and stored
nowhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opennsps.config import HandlerConfig
from opennsps.connectors.factory import build_connector
from opennsps.connectors.payload import nsps_event
from opennsps.domain.ids import random_trace_id, random_uuid
from opennsps.pipeline.dispatch import Dispatcher
from opennsps.store.deliveries import ClaimedDelivery


async def send_sample(
    dispatcher: Dispatcher,
    handler: HandlerConfig,
    *,
    source: str,
    event_type: str,
    variables: dict[str, Any],
) -> dict[str, Any]:
    """The outcome, the connector's answer and the payload sent (secrets masked). Raises
    ValueError (or PluginLoadError) when the handler's connector cannot be built."""
    now = datetime.now(UTC)
    delivery = ClaimedDelivery(
        id=0,
        handler_id=handler.id,
        entity_key="test",
        failures=0,
        attempts=1,
        first_attempt_at=now,
        reported_status=None,
        created_at=now,
        event_seq=0,
        event_id=f"test-{random_uuid()}",
        source=source,
        event_type=event_type,
        variables=variables,
        received_at=now,
        request_id=random_trace_id(),
        unique_id=random_uuid(),
    )
    connector = build_connector(handler)
    try:
        completion = await dispatcher.attempt(delivery, handler, connector)
    finally:
        await connector.close()
    attempt = completion.attempt
    return {
        "outcome": attempt.outcome,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "configuration_problem": attempt.configuration_problem,
        "response_excerpt": attempt.response_excerpt,
        "duration_ms": round(attempt.duration_ms, 1),
        "payload": nsps_event(
            event_id=delivery.event_id,
            event_type=event_type,
            variables=variables,
            pb_data=attempt.pb_data,
            handler_id=handler.id,
            status=attempt.sent_status or "queued",
            created_at=now,
            updated_at=attempt.started_at,
        ),
    }
