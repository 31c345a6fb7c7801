"""bench/outage: how fast a backlog built up during a connector outage goes out once the
connector is back — load generator → OpenNSPS (SQLite) → enrichment from the sandbox →
a connector that is down for a while.

One run, one gateway, the handler's circuit at its defaults:
1. baseline: a backlog accepted while paused, then drained with the connector up
   (delivered/s with nothing in the way);
2. outage: events at RATE/s while the connector answers 503 for OUTAGE seconds, then it
   comes back: seconds until the circuit closes (detection), until everything is
   delivered (drain), the drain rate and its ratio to the baseline's;
3. the same outage with a rate limit of half the baseline rate: the drain keeps to it.
Each checks that nothing was lost, nothing died, and no account's events arrived out of
order. Target: after an outage the backlog drains at the baseline's pace (ratio >= 0.8)
and within a minute of the connector's return for a 10-minute outage at 100 events/s on
a machine whose baseline is >= 1,000 delivered/s (the ratio travels between machines;
the minute does not).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import gateway_process, write_result
from bench.pipeline import (
    TOKEN,
    connector_stats,
    gateway_config,
    post_events,
    sandbox_and_connector,
)

RATE = float(os.environ.get("BENCH_OUTAGE_RATE", "100"))
OUTAGE_SECONDS = float(os.environ.get("BENCH_OUTAGE_SECONDS", "60"))
BASELINE_EVENTS = int(os.environ.get("BENCH_OUTAGE_BASELINE", "3000"))
DRAIN_LIMIT_SECONDS = 900.0
HANDLER = "bench"


def _api(url: str, method: str, path: str, body: Any = None) -> Any:
    answer = httpx.request(
        method,
        f"{url}/api/v1{path}",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json() if answer.content else None


def _set_connector(connector: str, *, down: bool) -> None:
    httpx.post(f"{connector}/outage", json={"down": down}, timeout=10).raise_for_status()


def _wait(condition: Any, limit: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def _dead(url: str) -> int:
    return len(_api(url, "GET", "/deliveries?state=dead&limit=1000")["items"])


def baseline(url: str, connector: str, first: int) -> dict[str, Any]:
    _api(url, "POST", "/pause")
    time.sleep(1.5)  # every worker sees the flag within a second
    report = post_events(
        url,
        first,
        "--concurrency",
        "16",
        "--rate",
        "1000",
        "--duration",
        f"{BASELINE_EVENTS / 1000:g}",
    )
    posted = int(report["statuses"].get("200", 0))
    _api(url, "POST", "/resume")
    seconds = _wait(
        lambda: connector_stats(connector)["events"] >= posted, DRAIN_LIMIT_SECONDS, "baseline"
    )
    return {
        "events": posted,
        "drain_seconds": round(seconds, 2),
        "delivered_per_s": round(posted / seconds, 1),
    }


def outage(url: str, connector: str, first: int) -> dict[str, Any]:
    httpx.post(f"{connector}/reset", timeout=10)
    _set_connector(connector, down=True)
    report = post_events(
        url, first, "--concurrency", "8", "--rate", f"{RATE:g}", "--duration", f"{OUTAGE_SECONDS:g}"
    )
    posted = int(report["statuses"].get("200", 0))
    circuit = _api(url, "GET", f"/handlers/{HANDLER}")["circuit_state"]
    refused_during = connector_stats(connector)["refused"]
    _set_connector(connector, down=False)
    detection = _wait(
        lambda: _api(url, "GET", f"/handlers/{HANDLER}")["circuit_state"]["state"] == "closed",
        DRAIN_LIMIT_SECONDS,
        "the circuit to close",
    )
    drain = detection + _wait(
        lambda: connector_stats(connector)["events"] >= posted, DRAIN_LIMIT_SECONDS, "the drain"
    )
    stats = connector_stats(connector)
    return {
        "events_during_outage": posted,
        "outage_seconds": OUTAGE_SECONDS,
        "circuit_at_end_of_outage": circuit["state"],
        "requests_refused_during_outage": refused_during,
        "seconds_to_detect_return": round(detection, 2),
        "seconds_to_drain_after_return": round(drain, 2),
        "drain_per_s_after_detection": round(posted / max(drain - detection, 1e-3), 1),
        "delivered": stats["events"],
        "lost": posted - stats["events"],
        "dead": _dead(url),
        "out_of_order": stats["out_of_order"],
        "max_requests_in_one_second": stats["max_per_second"],
    }


def run() -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="opennsps-bench-") as tmp,
        sandbox_and_connector(Path(tmp)) as parts,
    ):
        workdir, connector = Path(tmp), parts.connector
        config = gateway_config(workdir, parts.sandbox, connector)
        handler = config.pop("handlers")[0]
        with gateway_process(workdir, config) as (url, _):
            _api(url, "POST", "/handlers", handler)
            base = baseline(url, connector, 1)
            first = 1 + base["events"] + 10
            free = outage(url, connector, first)
            limit = max(1.0, round(base["delivered_per_s"] / 2))
            _api(
                url, "PUT", f"/handlers/{HANDLER}", {**handler, "rate_limit": {"per_second": limit}}
            )
            first += free["events_during_outage"] + 10
            limited = outage(url, connector, first)
    limited["rate_limit_per_s"] = limit
    free["drain_over_baseline"] = round(
        free["drain_per_s_after_detection"] / base["delivered_per_s"], 2
    )
    results = {"baseline": base, "outage": free, "outage_rate_limited": limited}
    path = write_result("outage", results)
    print_summary(results, path)
    return results


def print_summary(results: dict[str, Any], path: Path) -> None:
    base, free, limited = results["baseline"], results["outage"], results["outage_rate_limited"]
    print(f"baseline: {base['events']} events drained at {base['delivered_per_s']}/s")
    for name, r in (("outage", free), ("outage, rate-limited", limited)):
        print(
            f"{name}: {r['events_during_outage']} events in {r['outage_seconds']:g} s down;"
            f" return detected in {r['seconds_to_detect_return']} s, all delivered"
            f" {r['seconds_to_drain_after_return']} s after the return"
            f" ({r['drain_per_s_after_detection']}/s); lost {r['lost']}, dead {r['dead']},"
            f" out of order {r['out_of_order']}, max {r['max_requests_in_one_second']}/s"
        )
    print(
        f"drain after an outage / baseline drain: {free['drain_over_baseline']} (target >= 0.8);"
        f" rate limit {limited['rate_limit_per_s']}/s"
    )
    print(f"written to {path}")


if __name__ == "__main__":
    run()
