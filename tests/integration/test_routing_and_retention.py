"""Routing at ingest (in the event's transaction) and retention, on both engines."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from opennsps.config import HandlerConfig, RetentionConfig, StoreConfig
from opennsps.domain.events import parse_event
from opennsps.pipeline.retention import purge_old
from opennsps.store.event_store import EventStore
from opennsps.store.handlers import HandlerStore
from opennsps.store.records import NewEvent
from opennsps.store.schema import attempts, deliveries, events


def handler(handler_id: str, events_: list[str], **extra: Any) -> HandlerConfig:
    return HandlerConfig.model_validate(
        {
            "id": handler_id,
            "events": events_,
            "type": "http",
            "http": {"url": "http://127.0.0.1:9/events"},
            **extra,
        }
    )


def new_event(i_event: int, event_type: str, received_at: datetime | None = None) -> NewEvent:
    body = {"event_type": event_type, "variables": {"i_event": i_event, "i_account": 7}}
    if event_type.startswith("Custom/"):
        body["variables"] = {"i_event": i_event}
    return NewEvent(
        event_id=str(uuid.uuid4()),
        source="default",
        i_env=1,
        event=parse_event(body),
        raw_body="{}",
        received_at=received_at or datetime.now(UTC),
        request_id=None,
        unique_id=None,
    )


def routed(store: EventStore) -> dict[str, set[str]]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(events.c.event_type, deliveries.c.handler_id).join(
                deliveries, deliveries.c.event_seq == events.c.seq, isouter=True
            )
        ).all()
    found: dict[str, set[str]] = {}
    for event_type, handler_id in rows:
        found.setdefault(event_type, set())
        if handler_id:
            found[event_type].add(handler_id)
    return found


def test_each_event_gets_one_delivery_per_enabled_matching_handler(store_url: str) -> None:
    store = EventStore(StoreConfig(url=store_url))
    store.open()
    try:
        handlers = HandlerStore(store.engine)
        handlers.sync_from_config(
            [
                handler("all", ["*"]),
                handler("sims", ["SIM/*", "SIM/Updated"]),  # two patterns, one delivery
                handler("exact", ["Custom/A_B"]),  # `_` is no wildcard
                handler("off", ["*"], status="disabled"),
            ]
        )

        async def add() -> None:
            for n, event_type in enumerate(
                ["SIM/Updated", "Subscriber/Created", "Custom/A_B", "Custom/AxB"], start=1
            ):
                await store.add_event(new_event(n, event_type))
            await store.add_event(new_event(1, "SIM/Updated"))  # a repeat: nothing new

        asyncio.run(add())
        assert routed(store) == {
            "SIM/Updated": {"all", "sims"},
            "Subscriber/Created": {"all"},
            "Custom/A_B": {"all", "exact"},
            "Custom/AxB": {"all"},
        }
        with store.engine.connect() as connection:
            entity_keys = set(connection.execute(select(deliveries.c.entity_key)).scalars())
        assert "account:7" in entity_keys
        assert any(key.startswith("event:") for key in entity_keys)  # no entity: no blocking
    finally:
        store.close()


def test_retention_purges_old_finished_history_only(store_url: str) -> None:
    store = EventStore(StoreConfig(url=store_url))
    store.open()
    old = datetime.now(UTC) - timedelta(days=100)
    try:
        HandlerStore(store.engine).sync_from_config([handler("all", ["*"])])

        async def add() -> None:
            for n in range(1, 6):
                await store.add_event(new_event(n, "Subscriber/Updated", old))
            await store.add_event(new_event(6, "Subscriber/Updated"))

        asyncio.run(add())
        with store.engine.begin() as connection:
            connection.execute(
                deliveries.update()
                .where(deliveries.c.event_seq <= 4)
                .values(state="delivered", finished_at=old)
            )
            first = connection.execute(select(func.min(deliveries.c.id))).scalar_one()
            connection.execute(
                attempts.insert().values(
                    delivery_id=first,
                    event_seq=1,
                    handler_id="all",
                    number=1,
                    started_at=old,
                    duration_ms=1.0,
                    outcome="delivered",
                    configuration_problem=False,
                )
            )
        removed = asyncio.run(purge_old(store.engine, RetentionConfig(days=90, batch_size=2)))
        with store.engine.connect() as connection:
            left = sorted(connection.execute(select(events.c.i_event)).scalars())
            attempt_count = connection.execute(select(func.count()).select_from(attempts)).scalar()
        # Event 5 is old but its delivery is still pending: never dropped.
        assert left == [5, 6]
        assert attempt_count == 0
        assert removed >= 5
    finally:
        store.close()


def test_config_file_handlers_follow_the_file(store_url: str) -> None:
    store = EventStore(StoreConfig(url=store_url))
    store.open()
    try:
        handlers = HandlerStore(store.engine)
        handlers.sync_from_config([handler("hss", ["*"]), handler("crm", ["Customer/*"])])
        handlers.set_status("hss", "disabled")  # an operator's choice survives a restart
        handlers.sync_from_config([handler("hss", ["SIM/*"]), handler("crm", ["Customer/*"])])
        hss = handlers.get("hss")
        assert hss.status == "disabled" and hss.definition.events == ["SIM/*"]
        handlers.sync_from_config([handler("hss", ["SIM/*"])])  # crm taken out of the file
        assert handlers.get("crm").status == "archived"
        handlers.sync_from_config([handler("hss", ["SIM/*"]), handler("crm", ["Customer/*"])])
        assert handlers.get("crm").status == "enabled"  # back in the file
    finally:
        store.close()
