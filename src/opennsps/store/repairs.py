"""Repair events: events OpenNSPS makes itself (reconciliation's --fix) for one handler.

Each is stored like an ESPF event of the given source — so it is enriched from that
source's PortaBilling and its status goes back there — but it is delivered only to the
handler that drifted, and its `i_event` is negative, a range ESPF never uses, so it can
never be mistaken for (or deduplicated against) a real ESPF event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import Engine, func, insert, select

from opennsps.domain.deliveries import DeliveryState
from opennsps.domain.events import entity_key_of
from opennsps.store.engine import write_transaction
from opennsps.store.schema import deliveries, events

REPAIR_MARK = "reconcile"


@dataclass(frozen=True)
class Repair:
    event_type: str
    i_account: int


def enqueue_repairs(
    engine: Engine,
    *,
    source: str,
    handler_id: str,
    priority: int,
    repairs: Sequence[Repair],
    now: datetime,
) -> list[str]:
    """Store one event and one pending delivery per repair, in one transaction; returns
    the new event ids."""
    created: list[str] = []
    if not repairs:
        return created
    with write_transaction(engine) as connection:
        lowest = connection.execute(
            select(func.min(events.c.i_event)).where(events.c.source == source)
        ).scalar()
        next_i_event = min(int(lowest or 0), 0) - 1
        for number, repair in enumerate(repairs):
            i_event = next_i_event - number
            variables = {"i_account": repair.i_account, "i_event": i_event}
            body = {"event_type": repair.event_type, "variables": variables, "origin": REPAIR_MARK}
            entity_key = entity_key_of(variables)
            event_id = str(uuid.uuid4())
            seq = connection.execute(
                insert(events)
                .values(
                    event_id=event_id,
                    source=source,
                    i_event=i_event,
                    event_type=repair.event_type,
                    variables=variables,
                    raw_body=orjson.dumps(body).decode(),
                    entity_key=entity_key,
                    received_at=now,
                    request_id=uuid.uuid4().hex,
                    unique_id=str(uuid.uuid4()),
                )
                .returning(events.c.seq)
            ).scalar_one()
            connection.execute(
                insert(deliveries).values(
                    event_seq=seq,
                    handler_id=handler_id,
                    priority=priority,
                    entity_key=entity_key or f"event:{event_id}",
                    state=DeliveryState.PENDING.value,
                    failures=0,
                    attempts=0,
                    next_attempt_at=now,
                    configuration_problem=False,
                    created_at=now,
                    updated_at=now,
                )
            )
            created.append(event_id)
    return created
