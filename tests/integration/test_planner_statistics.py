"""PostgreSQL's claim query stays fast after a bulk load with no planner statistics
(autovacuum off): OpenNSPS analyses the work tables itself (store/statistics.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from opennsps.config import StoreConfig
from opennsps.store import migrate
from opennsps.store.deliveries import DeliveryQueue
from opennsps.store.engine import build_engine
from opennsps.store.statistics import refresh_statistics

pytestmark = pytest.mark.postgres
BACKLOG, ACCOUNTS = 13_700, 40


def bulk_load(url: str) -> None:
    """A backlog written as a bulk load would write it, with autovacuum off."""
    with psycopg.connect(url, autocommit=True) as db:
        for table in ("deliveries", "events"):
            db.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        db.execute(
            "INSERT INTO events (event_id, source, i_event, event_type, variables, raw_body,"
            " entity_key, received_at) SELECT gen_random_uuid()::text, 'default', g,"
            " 'Subscriber/Updated', '{}'::jsonb, '{}', 'account:' || (g %% %s), now()"
            " FROM generate_series(1, %s) g",
            (ACCOUNTS, BACKLOG),
        )
        db.execute(
            "INSERT INTO deliveries (event_seq, handler_id, priority, entity_key, state,"
            " failures, attempts, next_attempt_at, configuration_problem, created_at,"
            " updated_at) SELECT seq, 'hss', 10, entity_key, 'pending', 0, 0, received_at,"
            " false, received_at, received_at FROM events ORDER BY seq"
        )
        db.execute("SELECT pg_stat_force_next_flush()")


def claim_buffers(engine: Any, queue: DeliveryQueue, now: datetime) -> int:
    """Shared buffers one claim of the due deliveries reads (a count, not a time)."""
    compiled = queue._due_statement.compile(dialect=engine.dialect)
    params = {**compiled.params, "due_handler": "hss", "due_now": now, "due_limit": 32}
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {compiled}", params
        ).scalar()
        connection.rollback()
    top = plan[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


def test_a_bulk_loaded_backlog_is_analysed_and_claims_read_little(postgres_url: str) -> None:
    engine = build_engine(StoreConfig(url=postgres_url))
    try:
        migrate.upgrade(engine)
        bulk_load(postgres_url)
        # PostgreSQL publishes a session's row counts a moment after it ends: poll.
        analysed: set[str] = set()
        deadline = time.monotonic() + 60
        while not analysed >= {"deliveries", "events"} and time.monotonic() < deadline:
            analysed |= set(refresh_statistics(engine))
            time.sleep(0.2)
        assert analysed >= {"deliveries", "events"}
        assert refresh_statistics(engine) == []  # fresh now: nothing more to do
        queue = DeliveryQueue(engine)
        now = datetime.now(UTC) + timedelta(seconds=5)
        # Every account's first delivery in flight: the rest of the backlog waits behind.
        heads = queue.claim("worker", {"hss": ACCOUNTS}, now, now + timedelta(seconds=60))
        assert len(heads) == ACCOUNTS
        # Without statistics this claim read ~2 million buffers (25 s); with them, a few
        # thousand.
        assert claim_buffers(engine, queue, now) < 100_000
        assert queue.claim("worker", {"hss": 32}, now, now + timedelta(seconds=60)) == []
    finally:
        engine.dispose()
