"""How one claim batch is shared between handlers (no database involved)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opennsps.config import HandlerConfig, PipelineConfig
from opennsps.pipeline.worker import Worker, _ActiveHandler
from opennsps.store.handlers import StoredHandler

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def active(handler_id: str, max_concurrency: int, **extra: Any) -> _ActiveHandler:
    definition = HandlerConfig.model_validate(
        {
            "id": handler_id,
            "events": ["*"],
            "type": "http",
            "http": {"url": "http://127.0.0.1:9/"},
            "max_concurrency": max_concurrency,
        }
    )
    stored = StoredHandler(
        definition, extra.get("status", "enabled"), extra.get("paused", False), "config", NOW, NOW
    )
    return _ActiveHandler(stored, None, None)


def worker() -> Worker:
    return Worker(PipelineConfig(), None, None, None, None, single_process=True)  # type: ignore[arg-type]


def test_a_batch_never_exceeds_its_size_and_rotates_between_handlers() -> None:
    w = worker()
    w.handlers = {"a": active("a", 50), "b": active("b", 50), "off": active("off", 50, paused=True)}
    first, second = w._share(32), w._share(32)
    assert sum(first.values()) == 32 and sum(second.values()) == 32
    assert "off" not in first and "off" not in second
    assert {tuple(first), tuple(second)} == {("a",), ("b",)}  # each round, another first


def test_each_handler_keeps_to_its_own_concurrency() -> None:
    w = worker()
    w.handlers = {"a": active("a", 3), "b": active("b", 2)}
    w._in_flight_by_handler["a"] = 2
    assert w._share(32) in ({"a": 1, "b": 2}, {"b": 2, "a": 1})


def test_a_busy_handler_is_claimed_for_in_batches_not_one_at_each_completion() -> None:
    w = worker()
    w.handlers = {"a": active("a", 16)}
    w._in_flight_by_handler["a"] = 15  # one free: wait for a quarter of its concurrency
    assert w._share(32) == {}
    w._in_flight_by_handler["a"] = 12
    assert w._share(32) == {"a": 4}
    w._in_flight_by_handler["a"] = 0  # idle: claim at once, however few are due
    assert w._share(32) == {"a": 16}
