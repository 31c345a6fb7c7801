"""bench/execution_log: the console's execution-log searches over a store of a million
attempts, through the real management API (`opennsps serve`, SQLite), against a baseline
measured in the same run: fetching one attempt by its id.

Target: every search's first page (and a page 100 pages deep) and the dashboard's figures
answer in < 100 ms at the median, so the console stays usable on millions of rows.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import gateway, write_result
from opennsps.config import HandlerConfig, HttpHandlerConfig, StoreConfig
from opennsps.store.event_store import EventStore
from opennsps.store.handlers import HandlerStore

ATTEMPTS = int(os.environ.get("BENCH_ATTEMPTS", "1000000"))
ATTEMPTS_PER_EVENT = 2
HANDLERS = ("hss", "radius", "crm", "billing-export")
ACCOUNTS = 100_000
TOKEN = "bench-admin-token-0123456789"
REPEATS = 15
TARGET_MS = 100.0
BATCH = 50_000


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def populate(path: Path) -> dict[str, Any]:
    """A migrated store with ATTEMPTS attempts (1 % dead, 3 % retry), written directly."""
    store = EventStore(StoreConfig(url=f"sqlite:///{path}"))
    store.upgrade()
    handlers = HandlerStore(store.engine)
    for handler_id in HANDLERS:
        handlers.create(
            HandlerConfig(
                id=handler_id,
                events=["*"],
                type="http",
                http=HttpHandlerConfig(url=f"http://127.0.0.1:9/{handler_id}"),
            )
        )
    store.close()
    rng = random.Random(7)
    started = time.perf_counter()
    start = datetime.now(UTC) - timedelta(days=30)
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    events_count = ATTEMPTS // ATTEMPTS_PER_EVENT
    events, deliveries, attempts = [], [], []
    attempt_id = 0
    for seq in range(1, events_count + 1):
        at = start + timedelta(seconds=seq * 30 * 86400 / events_count)
        account = 100_001 + rng.randrange(ACCOUNTS)
        event_type = "Subscriber/Updated" if rng.random() < 0.9 else "SIM/Replaced"
        variables = f'{{"i_account": {account}, "i_event": {seq}}}'
        events.append(
            (
                seq,
                str(uuid.uuid4()),
                "default",
                1,
                seq,
                event_type,
                variables,
                variables,
                f"account:{account}",
                _stamp(at),
                _stamp(at),
            )
        )
        for k in range(ATTEMPTS_PER_EVENT):
            delivery_id = (seq - 1) * ATTEMPTS_PER_EVENT + k + 1
            handler = HANDLERS[(seq + k) % len(HANDLERS)]
            roll = rng.random()
            outcome = "dead" if roll < 0.01 else "retry" if roll < 0.04 else "delivered"
            deliveries.append(
                (
                    delivery_id,
                    seq,
                    handler,
                    10,
                    f"account:{account}",
                    "delivered" if outcome != "dead" else "dead",
                    0,
                    1,
                    _stamp(at),
                    _stamp(at),
                    _stamp(at),
                    _stamp(at),
                )
            )
            attempt_id += 1
            attempts.append(
                (
                    attempt_id,
                    delivery_id,
                    seq,
                    handler,
                    1,
                    _stamp(at),
                    3.5,
                    200,
                    outcome,
                    None,
                    0,
                    "{}",
                    None,
                    "bench",
                    account,
                    f"4207{account:08d}",
                    f"0010100{account:08d}",
                    "queued",
                )
            )
        if len(attempts) >= BATCH:
            _flush(db, events, deliveries, attempts)
    _flush(db, events, deliveries, attempts)
    db.execute("ANALYZE")
    db.close()
    return {
        "attempts": attempt_id,
        "events": events_count,
        "seconds": round(time.perf_counter() - started, 1),
        "file_mb": round(path.stat().st_size / 1e6, 1),
    }


def _flush(
    db: sqlite3.Connection, events: list[Any], deliveries: list[Any], attempts: list[Any]
) -> None:
    db.executemany(
        "INSERT INTO events (seq, event_id, source, i_env, i_event, event_type, variables,"
        " raw_body, entity_key, event_time, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        events,
    )
    db.executemany(
        "INSERT INTO deliveries (id, event_seq, handler_id, priority, entity_key, state, failures,"
        " attempts, next_attempt_at, created_at, updated_at, configuration_problem, finished_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,0,?)",
        deliveries,
    )
    db.executemany(
        "INSERT INTO attempts (id, delivery_id, event_seq, handler_id, number, started_at,"
        " duration_ms, status_code, outcome, error, configuration_problem, response_excerpt,"
        " pb_data, worker, i_account, msisdn, imsi, sent_status)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        attempts,
    )
    db.commit()
    events.clear()
    deliveries.clear()
    attempts.clear()


def _median_ms(client: httpx.Client, path: str, params: dict[str, Any]) -> dict[str, Any]:
    timings = []
    found = 0
    for _ in range(REPEATS):
        began = time.perf_counter()
        answer = client.get(path, params=params)
        timings.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
        body = answer.json()
        found = len(body["items"]) if isinstance(body, dict) and "items" in body else 1
    return {
        "median_ms": round(statistics.median(timings), 2),
        "max_ms": round(max(timings), 2),
        "items": found,
    }


def measure(url: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    account = 100_001 + 4_242
    searches: dict[str, tuple[str, dict[str, Any]]] = {
        "newest page": ("/api/v1/attempts", {}),
        "by handler": ("/api/v1/attempts", {"handler_id": "radius"}),
        "by handler type": ("/api/v1/attempts", {"handler_type": "http"}),
        "dead (1 %)": ("/api/v1/attempts", {"outcome": "dead"}),
        "by event type (10 %)": ("/api/v1/attempts", {"event_type": "SIM/*"}),
        "by IMSI": ("/api/v1/attempts", {"imsi": f"0010100{account:08d}"}),
        "by MSISDN": ("/api/v1/attempts", {"msisdn": f"4207{account:08d}"}),
        "by account": ("/api/v1/attempts", {"i_account": account}),
        "last day": (
            "/api/v1/attempts",
            {"since": (datetime.now(UTC) - timedelta(days=1)).isoformat()},
        ),
        "page 100 deep": ("/api/v1/attempts", {"before": ATTEMPTS - 100 * 50}),
        "dead letters": ("/api/v1/dead", {}),
        "dashboard stats": ("/api/v1/stats", {}),
        "dashboard hour series": ("/api/v1/stats/series", {"window": "hour"}),
        "dashboard day series": ("/api/v1/stats/series", {"window": "day"}),
    }
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        baseline = _median_ms(client, "/api/v1/attempts/1", {})
        results = {
            name: _median_ms(client, path, params) for name, (path, params) in searches.items()
        }
    return {"baseline_attempt_by_id": baseline, "searches": results}


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="opennsps-bench-log-") as folder:
        path = Path(folder) / "store.db"
        populated = populate(path)
        config = {
            "store": {"url": f"sqlite:///{path}"},
            "pipeline": {"enabled": False},
            "logging": {"level": "warning"},
            "api": {"tokens": [{"name": "bench", "token": TOKEN, "role": "admin"}]},
        }
        with gateway(Path(folder), config) as url:
            measured = measure(url)
    slowest = max(r["median_ms"] for r in measured["searches"].values())
    results = {
        "store": populated,
        **measured,
        "targets": {
            "slowest_search_median_ms": {
                "target": f"< {TARGET_MS}",
                "measured": slowest,
                "met": slowest < TARGET_MS,
            }
        },
    }
    write_result("execution_log", results)
    print(
        f"store: {populated['attempts']} attempts, {populated['events']} events, "
        f"{populated['file_mb']} MB, written in {populated['seconds']} s"
    )
    b = measured["baseline_attempt_by_id"]
    print(f"{'baseline: one attempt by id':<28} {b['median_ms']:>8.2f} ms median")
    for name, r in measured["searches"].items():
        times = f"{r['median_ms']:>8.2f} ms median  {r['max_ms']:>8.2f} ms max"
        print(f"{name:<28} {times}  {r['items']} items")
    return results


if __name__ == "__main__":
    run()
