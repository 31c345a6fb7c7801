"""bench/ingest: ESPF ingress throughput and latency against a trivial endpoint, same run.

For each store engine: the gateway runs as its own process; the load generator runs in
another. Measured in one run, so the ratio holds on a noisy machine:
  1. ceiling  - GET /health (the same server stack, no auth, no store) at fixed concurrency
  2. ingress  - POST /espf/events (Basic auth, validation, durable group commit, dedupe)
  3. latency  - POST /espf/events at a steady 500 requests/s (open loop)
Targets: ingress >= 60 % of the ceiling on SQLite; p99 < 20 ms at 500 requests/s.
"""

from __future__ import annotations

import base64
import itertools
import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from bench.common import gateway, load, postgres_database, write_result

CONCURRENCY = "64"
DURATION = "10"
STEADY_RATE = "500"
USER, PASSWORD = "espf", "bench-password"
BODY = '{"event_type":"Subscriber/Updated","variables":{"i_account":1000889,"i_event":{n}}}'
THROUGHPUT_TARGET = 0.60
P99_TARGET_MS = 20.0


def auth_headers() -> list[str]:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return [f"Authorization: Basic {token}", "Content-Type: application/json"]


def measure(store_url: str, workdir: Path) -> dict[str, Any]:
    config = {
        "logging": {"level": "info"},
        "store": {"url": store_url},
        "ingress": {"sources": {"default": {"auth": {"username": USER, "password": PASSWORD}}}},
    }
    numbers = itertools.count(1, 1_000_000)
    with gateway(workdir, config) as url:
        load(f"{url}/health", "--method", "GET", "--duration", "2")  # warm-up
        ceiling = load(
            f"{url}/health", "--method", "GET", "--concurrency", CONCURRENCY, "--duration", DURATION
        )
        common = [arg for h in auth_headers() for arg in ("--header", h)] + ["--body", BODY]
        ingress = load(
            f"{url}/espf/events",
            *common,
            "--start",
            str(next(numbers)),
            "--concurrency",
            CONCURRENCY,
            "--duration",
            DURATION,
        )
        steady = load(
            f"{url}/espf/events",
            *common,
            "--start",
            str(next(numbers)),
            "--rate",
            STEADY_RATE,
            "--concurrency",
            "32",
            "--duration",
            DURATION,
        )
    ratio = ingress["rps"] / ceiling["rps"] if ceiling["rps"] else 0.0
    return {
        "ceiling_health": ceiling,
        "ingress": ingress,
        "steady_500": steady,
        "ingress_to_ceiling": round(ratio, 3),
    }


def engines() -> list[tuple[str, AbstractContextManager[str] | None]]:
    return [("sqlite", None), ("postgres", postgres_database())]


def run() -> dict[str, Any]:
    results: dict[str, Any] = {}
    for engine, database in engines():
        with tempfile.TemporaryDirectory(prefix="opennsps-bench-") as tmp:
            workdir = Path(tmp)
            context = database or nullcontext(f"sqlite:///{workdir / 'bench.db'}")
            with context as store_url:
                results[engine] = measure(store_url, workdir)
    sqlite = results["sqlite"]
    results["targets"] = {
        "sqlite_ingress_to_ceiling": {
            "target": f">= {THROUGHPUT_TARGET}",
            "measured": sqlite["ingress_to_ceiling"],
            "met": sqlite["ingress_to_ceiling"] >= THROUGHPUT_TARGET,
        },
        "sqlite_p99_ms_at_500": {
            "target": f"< {P99_TARGET_MS}",
            "measured": sqlite["steady_500"]["p99_ms"],
            "met": sqlite["steady_500"]["p99_ms"] < P99_TARGET_MS,
        },
    }
    path = write_result("ingest", results)
    print_summary(results)
    print(f"results: {path}")
    return results


def print_summary(results: dict[str, Any]) -> None:
    print(f"{'engine':<9} {'run':<22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8}")
    for engine in ("sqlite", "postgres"):
        for name in ("ceiling_health", "ingress", "steady_500"):
            r = results[engine][name]
            bad = sum(n for code, n in r["statuses"].items() if str(code) != "200") + r["errors"]
            print(
                f"{engine:<9} {name:<22} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} "
                f"{r['p99_ms']:>8.2f} {bad:>8}"
            )
        print(f"{engine:<9} ingress / ceiling = {results[engine]['ingress_to_ceiling']:.2f}")
    for name, target in results["targets"].items():
        verdict = "met" if target["met"] else "NOT met"
        print(f"target {name}: {target['measured']} (want {target['target']}) {verdict}")


if __name__ == "__main__":
    run()
