"""bench/ingest: ESPF ingress throughput and latency against a trivial endpoint, same run.

For each store engine: the gateway runs as its own process; the load generator runs in
another. Measured in one run, so the ratio holds on a noisy machine:
  1. ceiling  - GET /health (the same server stack, no auth, no store) at fixed concurrency
  2. ingress  - POST /espf/events (Basic auth, validation, durable group commit, dedupe)
     1 and 2 alternate in ROUNDS rounds, so a slow spell of the machine weighs on both
  3. latency  - POST /espf/events at a steady 500 requests/s (open loop)
Targets: ingress >= 60 % of the ceiling on SQLite; p99 < 20 ms at 500 requests/s.
"""

from __future__ import annotations

import base64
import itertools
import statistics
import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from bench.common import gateway, load, postgres_database, write_result

CONCURRENCY = "64"
DURATION = "10"
ROUNDS = 10  # the ceiling and the ingress each run DURATION / ROUNDS seconds a round
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
    common = [arg for h in auth_headers() for arg in ("--header", h)] + ["--body", BODY]
    slice_seconds = str(float(DURATION) / ROUNDS)
    with gateway(workdir, config) as url:
        load(f"{url}/health", "--method", "GET", "--duration", "2")  # warm-up
        load(f"{url}/espf/events", *common, "--start", str(next(numbers)), "--duration", "1")
        ceilings, ingresses = [], []
        for _ in range(ROUNDS):
            ceilings.append(
                load(
                    f"{url}/health",
                    "--method",
                    "GET",
                    "--concurrency",
                    CONCURRENCY,
                    "--duration",
                    slice_seconds,
                )
            )
            ingresses.append(
                load(
                    f"{url}/espf/events",
                    *common,
                    "--start",
                    str(next(numbers)),
                    "--concurrency",
                    CONCURRENCY,
                    "--duration",
                    slice_seconds,
                )
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
    ceiling, ingress = combined(ceilings), combined(ingresses)
    ratio = ingress["rps"] / ceiling["rps"] if ceiling["rps"] else 0.0
    by_round = [
        round(i["rps"] / c["rps"], 3) if c["rps"] else 0.0
        for c, i in zip(ceilings, ingresses, strict=True)
    ]
    return {
        "ceiling_health": ceiling,
        "ingress": ingress,
        "steady_500": steady,
        "ingress_to_ceiling": round(ratio, 3),
        "ingress_to_ceiling_by_round": by_round,
    }


def combined(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report of several rounds: requests and seconds summed, the median round's p50,
    the worst round's p99 and max."""
    requests = sum(r["requests"] for r in reports)
    seconds = sum(r["seconds"] for r in reports)
    statuses: dict[str, int] = {}
    for r in reports:
        for code, n in r["statuses"].items():
            statuses[str(code)] = statuses.get(str(code), 0) + n
    return {
        "mode": f"{reports[0]['mode']} x {len(reports)} rounds",
        "path": reports[0]["path"],
        "requests": requests,
        "seconds": round(seconds, 3),
        "rps": round(requests / seconds, 1) if seconds else 0.0,
        "p50_ms": statistics.median(r["p50_ms"] for r in reports),
        "p99_ms": max(r["p99_ms"] for r in reports),
        "max_ms": max(r["max_ms"] for r in reports),
        "statuses": statuses,
        "errors": sum(r["errors"] for r in reports),
        "rps_by_round": [r["rps"] for r in reports],
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
        rounds = ", ".join(f"{r:.2f}" for r in results[engine]["ingress_to_ceiling_by_round"])
        print(
            f"{engine:<9} ingress / ceiling = {results[engine]['ingress_to_ceiling']:.2f}"
            f" (rounds: {rounds})"
        )
    for name, target in results["targets"].items():
        verdict = "met" if target["met"] else "NOT met"
        print(f"target {name}: {target['measured']} (want {target['target']}) {verdict}")


if __name__ == "__main__":
    run()
