"""bench/pipeline: end to end on this machine — load generator → OpenNSPS (SQLite) →
enrichment from the sandbox's PortaBilling API → a minimal connector.

Measures, in one run:
- latency received → delivered (p50/p99) at 100 events/s;
- sustained events/s with enrichment on (open loop at a target rate; delivered/s);
- a backlog (default 100,000 events, BENCH_BACKLOG to change) accepted while paused,
  then drained: drain rate and the gateway's resident memory while draining;
- baselines from the same run: the bare connector's throughput, and ingest alone.
Targets: >= 500 events/s sustained, p99 < 100 ms at 100 events/s, memory flat.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO, free_port, gateway_process, load, rss_mb, write_result
from opennsps.sandbox.dataset import generate

ACCOUNTS = 10_000
FIRST_ACCOUNT = 100_001
TOKEN = "bench-admin-token-0123456789"
USER, PASSWORD = "espf", "bench-password"
EVENT = '{"event_type":"Subscriber/Updated","variables":{"i_event":{n},"i_account":{account}}}'
LATENCY_RATE = 100.0
LATENCY_SECONDS = 20.0
SUSTAINED_EVENTS = 10_000
HANDLER_CONCURRENCY = int(os.environ.get("BENCH_HANDLER_CONCURRENCY", "64"))
DRAIN_LIMIT_SECONDS = 1800.0


def _wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


@contextmanager
def process(args: list[str], ready_url: str) -> Iterator[int]:
    """`python -m ARGS` in its own process until the block ends; yields its pid."""
    child = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(ready_url)
        yield child.pid
    finally:
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()


def sandbox_command(dataset: Path, port: int, *options: str) -> list[str]:
    """`opennsps sandbox serve` over `dataset` on `port` (no HSS stand-in unless options
    give one)."""
    hss = [] if any(o.startswith("--hss-port") for o in options) else ["--hss-port", "0"]
    return [
        "opennsps.cli",
        "sandbox",
        "serve",
        "--dataset",
        str(dataset),
        "--port",
        str(port),
        *hss,
        *options,
    ]


def connector_command(port: int) -> list[str]:
    return ["bench.connector", "--port", str(port)]


@dataclass(frozen=True)
class Parts:
    """The sandbox (PortaBilling, plain HTTP) and the bare connector, each its own process."""

    sandbox: str
    connector: str
    sandbox_pid: int
    connector_pid: int


@contextmanager
def sandbox_and_connector(workdir: Path) -> Iterator[Parts]:
    """A sandbox over a fresh ACCOUNTS-account dataset and bench/connector.py, until the
    block ends."""
    dataset = workdir / "sandbox.db"
    generate(dataset, ACCOUNTS, seed=1)
    sandbox_port, connector_port = free_port(), free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    connector = f"http://127.0.0.1:{connector_port}"
    with (
        process(sandbox_command(dataset, sandbox_port), f"{sandbox}/sandbox/faults") as sb,
        process(connector_command(connector_port), f"{connector}/stats") as cn,
    ):
        yield Parts(sandbox, connector, sb, cn)


def gateway_config(workdir: Path, sandbox: str, connector: str) -> dict[str, Any]:
    return {
        "store": {"url": f"sqlite:///{workdir / 'opennsps.db'}"},
        "logging": {"level": "warning"},
        "ingress": {
            "sources": {
                "default": {
                    "i_env": 1,
                    "auth": {"username": USER, "password": PASSWORD},
                    "portabilling": {
                        "url": sandbox,
                        "login": "opennsps",
                        "password": "sandbox-password",
                    },
                }
            }
        },
        "handlers": [
            {
                "id": "bench",
                "events": ["*"],
                "type": "http",
                "http": {"url": f"{connector}/events", "token": "bench-connector-token"},
                "max_concurrency": HANDLER_CONCURRENCY,
            }
        ],
        "api": {"tokens": [{"name": "bench", "token": TOKEN, "role": "admin"}]},
    }


def connector_stats(connector: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{connector}/stats", timeout=10).json()
    return stats


def wait_delivered(connector: str, count: int, limit: float) -> float:
    """Seconds until the connector has seen `count` events (bounded by `limit`)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if connector_stats(connector)["events"] >= count:
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"only {connector_stats(connector)['events']} of {count} delivered")


def post_events(url: str, start: int, *args: str) -> dict[str, Any]:
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return load(
        f"{url}/espf/events",
        "--header",
        f"Authorization: Basic {basic}",
        "--header",
        "Content-Type: application/json",
        "--body",
        EVENT,
        "--start",
        str(start),
        "--accounts",
        str(ACCOUNTS),
        "--first-account",
        str(FIRST_ACCOUNT),
        *args,
    )


def api(url: str, path: str) -> None:
    httpx.post(
        f"{url}/api/v1{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).raise_for_status()


def run() -> dict[str, Any]:
    backlog = int(os.environ.get("BENCH_BACKLOG", "100000"))
    with tempfile.TemporaryDirectory(prefix="opennsps-bench-") as tmp:
        workdir = Path(tmp)
        with sandbox_and_connector(workdir) as parts:
            sandbox, connector = parts.sandbox, parts.connector
            bare = load(
                f"{connector}/events",
                "--header",
                "Content-Type: application/json",
                "--body",
                '{"event_id":"{n}","created_at":"2026-01-01T00:00:00+00:00","data":{}}',
                "--concurrency",
                "16",
                "--duration",
                "5",
            )
            httpx.post(f"{connector}/reset", timeout=10)
            with gateway_process(workdir, gateway_config(workdir, sandbox, connector)) as (
                url,
                pid,
            ):
                results = measure(url, pid, connector, backlog, workdir / "opennsps.db")
    results["baseline_connector_alone_rps"] = bare["rps"]
    path = write_result("pipeline", results)
    print_summary(results, path)
    return results


def latency_breakdown(db: Path) -> dict[str, float]:
    """Where the time goes, from the store: receipt → claim, and the attempt itself
    (enrichment and connector)."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT (julianday(a.started_at) - julianday(e.received_at)) * 86400000,"
            " a.duration_ms FROM attempts a JOIN events e ON e.seq = a.event_seq"
        ).fetchall()
    waits = sorted(r[0] for r in rows) or [0.0]
    runs = sorted(r[1] for r in rows) or [0.0]

    def pct(values: list[float], p: float) -> float:
        return round(values[min(len(values) - 1, int(p * len(values)))], 2)

    return {
        "received_to_claimed_p50_ms": pct(waits, 0.5),
        "received_to_claimed_p99_ms": pct(waits, 0.99),
        "attempt_p50_ms": pct(runs, 0.5),
        "attempt_p99_ms": pct(runs, 0.99),
    }


def measure(url: str, pid: int, connector: str, backlog: int, db: Path) -> dict[str, Any]:
    next_i_event = 1
    # 1. Latency at 100 events/s.
    count = int(LATENCY_RATE * LATENCY_SECONDS)
    post_events(
        url,
        next_i_event,
        "--rate",
        str(LATENCY_RATE),
        "--duration",
        str(LATENCY_SECONDS),
        "--concurrency",
        "8",
    )
    next_i_event += count
    wait_delivered(connector, count, 60)
    latency = connector_stats(connector)
    latency.update(latency_breakdown(db))
    httpx.post(f"{connector}/reset", timeout=10)

    # 2. Sustained delivery rate with enrichment: a backlog accepted while paused, drained.
    sustained = drain(url, pid, connector, next_i_event, SUSTAINED_EVENTS)
    next_i_event += sustained["events"]
    httpx.post(f"{connector}/reset", timeout=10)

    # 3. The large backlog: drain rate and memory.
    large = drain(url, pid, connector, next_i_event, backlog)
    return {
        "latency_at_100_per_s": {k: v for k, v in latency.items() if k != "requests"},
        "sustained": sustained,
        "backlog": large,
    }


def drain(url: str, pid: int, connector: str, first_i_event: int, events: int) -> dict[str, Any]:
    """Accept `events` while paused, resume, and time the delivery of all of them."""
    api(url, "/pause")
    time.sleep(1.5)  # every worker sees the flag within a second
    ingest_started = time.monotonic()
    posted = 0
    while posted < events:
        seconds = max(1.0, min(10.0, (events - posted) / 1500))
        report = post_events(
            url, first_i_event + posted, "--concurrency", "32", "--duration", f"{seconds:g}"
        )
        accepted = int(report["statuses"].get("200", 0))
        if accepted == 0:
            raise RuntimeError(f"the gateway accepted nothing: {report}")
        posted += accepted
    ingest_seconds = time.monotonic() - ingest_started
    rss_before = rss_mb(pid)
    api(url, "/resume")
    drain_started = time.monotonic()
    samples = []
    while connector_stats(connector)["events"] < posted:
        samples.append(rss_mb(pid))
        if time.monotonic() - drain_started > DRAIN_LIMIT_SECONDS:
            raise RuntimeError("the backlog did not drain in time")
        time.sleep(0.5)
    drain_seconds = time.monotonic() - drain_started
    return {
        "events": posted,
        "ingest_per_s_paused": round(posted / ingest_seconds, 1),
        "delivered_per_s": round(posted / drain_seconds, 1),
        "rss_mb_before_drain": rss_before,
        "rss_mb_max_during_drain": max(samples, default=rss_before),
        "rss_mb_after_drain": rss_mb(pid),
    }


def print_summary(results: dict[str, Any], path: Path) -> None:
    lat, sus, bl = results["latency_at_100_per_s"], results["sustained"], results["backlog"]
    print(
        f"latency at 100/s: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms (target < 100);"
        f" received->claimed p50 {lat['received_to_claimed_p50_ms']} ms, attempt p50"
        f" {lat['attempt_p50_ms']} ms"
    )
    print(
        f"sustained with enrichment: {sus['delivered_per_s']} delivered/s over {sus['events']}"
        " events (target >= 500)"
    )
    print(
        f"backlog {bl['events']}: ingest {bl['ingest_per_s_paused']}/s, drain "
        f"{bl['delivered_per_s']}/s, RSS {bl['rss_mb_before_drain']} -> max "
        f"{bl['rss_mb_max_during_drain']} -> {bl['rss_mb_after_drain']} MB"
    )
    print(f"baseline: bare connector {results['baseline_connector_alone_rps']} req/s")
    print(f"written to {path}")


if __name__ == "__main__":
    run()
