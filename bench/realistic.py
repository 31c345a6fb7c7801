"""bench/realistic: the path an operator runs — the built-in HSS connector (in process) →
the HSS stand-in, the PortaBilling sandbox over TLS with PortaBilling-like latency on
every API call, provisioning statuses on — beside the bare-connector path (an HTTP
connector answering 200 at once, plain HTTP, no statuses) as the baseline of the same
run. Every part is its own process.

For each path, one gateway, in turn (SQLite; the realistic path on PostgreSQL too):
1. **burst** — BENCH_REAL_BURST events accepted while paused, then drained, while a
   load generator posts 20 more events/s to the ingress (its p50/p99 is the ingress
   latency during a drain);
2. **steady** — BENCH_REAL_RATE events/s for BENCH_REAL_SECONDS (open loop).
Reported: delivered/s, CPU per delivered event of each process (gateway, sandbox,
connector; user + system from /proc), PortaBilling calls per event (the gateway's own
counter), status reports per event, and the ingress latency while draining.
Targets (issue 21): realistic-path gateway CPU <= 5 ms per event, >= 200 delivered/s with
50 ms per PortaBilling call, <= 2 PortaBilling calls per event, ingress p99 <= 20 ms while
draining. The ratios to the baseline travel between machines; absolute figures do not.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    cpu_seconds,
    free_port,
    gateway_process,
    postgres_database,
    write_result,
)
from bench.pipeline import (
    ACCOUNTS,
    PASSWORD,
    TOKEN,
    USER,
    connector_command,
    post_events,
    process,
    sandbox_command,
)
from opennsps.demo import PROFILES
from opennsps.sandbox.dataset import generate

BURST = int(os.environ.get("BENCH_REAL_BURST", "2000"))
RATE = float(os.environ.get("BENCH_REAL_RATE", "100"))
SECONDS = float(os.environ.get("BENCH_REAL_SECONDS", "20"))
PB_LATENCY_MS = float(os.environ.get("BENCH_REAL_PB_MS", "50"))
ALL_PATHS = ("bare_connector", "realistic", "realistic_postgres")
PATHS = os.environ.get("BENCH_REAL_PATHS", ",".join(ALL_PATHS)).split(",")
DRAIN_LIMIT_SECONDS = 900.0


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if re.match(rf"{name}(\{{|\s)", line)
    )


def api(url: str, path: str) -> None:
    httpx.post(
        f"{url}/api/v1{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ).raise_for_status()


def delivered(url: str) -> int:
    return int(metric(url, "opennsps_deliveries_total"))


def gateway_config(workdir: Path, sandbox: str, handler: dict[str, Any]) -> dict[str, Any]:
    source: dict[str, Any] = {
        "i_env": 1,
        "auth": {"username": USER, "password": PASSWORD},
        "portabilling": {
            "url": sandbox,
            "login": "opennsps",
            "password": "sandbox-password",
            # the sandbox's certificate is self-signed
            "verify_tls": False,
            "espf_api": {"login": "opennsps", "password": "sandbox-password"},
        },
    }
    return {
        "store": {"url": f"sqlite:///{workdir / 'opennsps.db'}"},
        "logging": {"level": "info"},
        "ingress": {"sources": {"default": source}},
        "handlers": [handler],
        "api": {"tokens": [{"name": "bench", "token": TOKEN, "role": "admin"}]},
    }


def hss_handler(hss: str, workdir: Path) -> dict[str, Any]:
    return {
        "id": "hss",
        "events": ["Subscriber/*"],
        "type": "python",
        "python": {
            "entry_point": "opennsps.connectors.hss:HssConnector",
            "options": {
                "url": hss,
                "links": f"sqlite:///{workdir / 'hss-links.db'}",
                "profiles": PROFILES,
            },
        },
        "status_group": "HSS",
    }


def bare_handler(connector: str) -> dict[str, Any]:
    return {
        "id": "bare",
        "events": ["*"],
        "type": "http",
        "http": {"url": f"{connector}/events", "token": "bench-connector-token"},
    }


def measure(url: str, pids: dict[str, int], first: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    # 1. a burst accepted while paused, drained while the ingress keeps taking events
    api(url, "/pause")
    time.sleep(1.5)  # every worker sees the flag within a second
    posted = 0
    while posted < BURST:
        report = post_events(
            url,
            first + posted,
            "--concurrency",
            "16",
            "--rate",
            "500",
            "--duration",
            f"{max(1.0, (BURST - posted) / 500):g}",
        )
        posted += int(report["statuses"].get("200", 0))
    first += posted
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    calls_before = metric(url, "opennsps_portabilling_calls_total")
    done_before = delivered(url)
    started = time.monotonic()
    api(url, "/resume")
    # The ingress load runs beside the drain (in a thread: the load generator is its own
    # process); the drain's pace is timed on the burst alone.
    ingress: dict[str, Any] = {}
    load_seconds = max(3.0, posted / 300)
    loader = threading.Thread(
        target=lambda: ingress.update(
            post_events(
                url, first, "--concurrency", "4", "--rate", "20", "--duration", f"{load_seconds:g}"
            )
        )
    )
    loader.start()
    while (done := delivered(url)) < done_before + posted:
        if time.monotonic() - started > DRAIN_LIMIT_SECONDS:
            raise RuntimeError("the burst did not drain in time")
        time.sleep(0.1)
    seconds = time.monotonic() - started
    count = done - done_before
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    calls = metric(url, "opennsps_portabilling_calls_total") - calls_before
    loader.join(load_seconds + 120)
    if not ingress:
        raise RuntimeError("the ingress load generator gave no report")
    first += int(ingress["statuses"].get("200", 0))
    target = done_before + posted + int(ingress["statuses"].get("200", 0))
    while delivered(url) < target:  # the ingress's own events too, before the next phase
        if time.monotonic() - started > DRAIN_LIMIT_SECONDS:
            raise RuntimeError("the events posted during the drain were not delivered in time")
        time.sleep(0.2)
    figures["burst"] = {
        "events": count,
        "delivered_per_s": round(count / seconds, 1),
        "cpu_ms_per_event": {name: round(used * 1000 / count, 2) for name, used in cpu.items()},
        "portabilling_calls_per_event": round(calls / count, 2),
        "ingress_while_draining": {"p50_ms": ingress["p50_ms"], "p99_ms": ingress["p99_ms"]},
    }
    # 2. steady, open loop
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    calls_before = metric(url, "opennsps_portabilling_calls_total")
    done_before = delivered(url)
    steady = post_events(
        url, first, "--concurrency", "16", "--rate", f"{RATE:g}", "--duration", f"{SECONDS:g}"
    )
    sent = int(steady["statuses"].get("200", 0))
    started = time.monotonic()
    while delivered(url) < done_before + sent and time.monotonic() - started < 120:
        time.sleep(0.2)
    count = delivered(url) - done_before
    figures["steady"] = {
        "rate": RATE,
        "events": sent,
        "delivered": count,
        "cpu_ms_per_event": {
            name: round((cpu_seconds(pid) - before[name]) * 1000 / max(count, 1), 2)
            for name, pid in pids.items()
        },
        "portabilling_calls_per_event": round(
            (metric(url, "opennsps_portabilling_calls_total") - calls_before) / max(count, 1), 2
        ),
        "ingress_p50_ms": steady["p50_ms"],
        "ingress_p99_ms": steady["p99_ms"],
    }
    figures["status_reports"] = metric(url, "opennsps_status_reports_total")
    return figures


def run() -> dict[str, Any]:
    results: dict[str, Any] = {"portabilling_latency_ms": PB_LATENCY_MS}
    with tempfile.TemporaryDirectory(prefix="opennsps-bench-") as tmp:
        workdir = Path(tmp)
        dataset = workdir / "sandbox.db"
        generate(dataset, ACCOUNTS, seed=1)
        sandbox_port, hss_port, connector_port = free_port(), free_port(), free_port()
        sandbox = f"https://127.0.0.1:{sandbox_port}"
        hss = f"http://127.0.0.1:{hss_port}"
        connector = f"http://127.0.0.1:{connector_port}"
        faults = {"latency": {"rest": {"mean_ms": PB_LATENCY_MS, "jitter_ms": 20}}}
        with ExitStack() as stack:
            sandbox_pid = stack.enter_context(
                process(
                    sandbox_command(
                        dataset,
                        sandbox_port,
                        "--tls",
                        "--hss-port",
                        str(hss_port),
                        "--faults",
                        json.dumps(faults),
                    ),
                    f"{hss}/",
                )
            )
            connector_pid = stack.enter_context(
                process(connector_command(connector_port), f"{connector}/stats")
            )
            for name, handler, other, on_postgres in (
                ("bare_connector", bare_handler(connector), connector_pid, False),
                ("realistic", hss_handler(hss, workdir / "realistic"), sandbox_pid, False),
                ("realistic_postgres", hss_handler(hss, workdir / "pg"), sandbox_pid, True),
            ):
                if name not in PATHS:
                    continue
                run_dir = workdir / name
                run_dir.mkdir()
                config = gateway_config(run_dir, sandbox, handler)
                store = stack.enter_context(postgres_database()) if on_postgres else None
                if store is not None:
                    config["store"] = {"url": store}
                with gateway_process(run_dir, config) as (url, pid):
                    pids = {"gateway": pid, "sandbox": sandbox_pid}
                    if other == connector_pid:
                        pids["connector"] = connector_pid
                    # Each HSS run on accounts the HSS stand-in has not seen yet (its state
                    # lasts as long as the sandbox process): the same work for both.
                    results[name] = measure(url, pids, 5001 if on_postgres else 1)
    if set(PATHS) != set(ALL_PATHS):
        # A partial run (BENCH_REAL_PATHS) is for exploring: printed, not recorded.
        print(json.dumps(results, indent=2))
        return results
    real, bare = results["realistic"], results["bare_connector"]
    results["realistic_over_bare_cpu"] = round(
        real["burst"]["cpu_ms_per_event"]["gateway"]
        / max(bare["burst"]["cpu_ms_per_event"]["gateway"], 1e-3),
        2,
    )
    path = write_result("realistic", results)
    print_summary(results, path)
    return results


def print_summary(results: dict[str, Any], path: Path) -> None:
    for name in ALL_PATHS:
        burst, steady = results[name]["burst"], results[name]["steady"]
        print(
            f"{name}: burst {burst['events']} at {burst['delivered_per_s']}/s, gateway CPU "
            f"{burst['cpu_ms_per_event']['gateway']} ms/event, sandbox "
            f"{burst['cpu_ms_per_event']['sandbox']} ms/event, PortaBilling calls/event "
            f"{burst['portabilling_calls_per_event']}, ingress while draining p50 "
            f"{burst['ingress_while_draining']['p50_ms']} / p99 "
            f"{burst['ingress_while_draining']['p99_ms']} ms; steady {steady['rate']:g}/s: "
            f"{steady['delivered']} of {steady['events']} delivered, gateway CPU "
            f"{steady['cpu_ms_per_event']['gateway']} ms/event"
        )
    print(
        f"realistic / bare gateway CPU per event: {results['realistic_over_bare_cpu']} "
        f"(PortaBilling latency {results['portabilling_latency_ms']:g} ms per call)"
    )
    print(f"written to {path}")


if __name__ == "__main__":
    run()
