"""bench/scaleout: 1, 2 and 3 gateway processes on one PostgreSQL database, and what bounds
the throughput at each step.

Every part is its own process: the sandbox as PortaBilling (plain HTTP, enrichment on),
`bench/connector.py` as an NSPS connector answering 200 at once, PostgreSQL, and N
`opennsps serve` processes sharing one fresh database. For each N: a burst of
BENCH_SCALE_BURST `Subscriber/Updated` events is accepted while processing is paused, then
every gateway drains it together. Reported per N: delivered/s, CPU per delivered event of
the gateways, PostgreSQL (all its processes), the sandbox and the connector; how busy the
machine's cores were; how much of a core each gateway used; what PostgreSQL's sessions
were waiting on (pg_stat_activity sampled every 0.2 s); and the bound that follows:

- the machine's CPU, when its cores were >= 90 % busy (a further gateway only shares
  the same cores);
- the gateway, when a gateway process used >= 90 % of a core (another process adds a
  core's worth of work, if the machine has one to spare);
- PostgreSQL's locks, when >= 30 % of its active sessions' samples waited on a lock;
- otherwise waiting: the sandbox's or the connector's answers.

Target (issue 21): where the gateway is the bound, 2 processes deliver >= 1.7x one.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.common import cpu_seconds, gateway_process, postgres_database, write_result
from bench.pipeline import (
    Parts,
    api,
    connector_stats,
    gateway_config,
    post_events,
    sandbox_and_connector,
)

BURST = int(os.environ.get("BENCH_SCALE_BURST", "6000"))
GATEWAYS = (1, 2, 3)
DRAIN_LIMIT_SECONDS = 600.0
SAMPLE_SECONDS = 0.2


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hertz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hertz, sum(ticks) / hertz


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue  # it ended meanwhile
    return pids


def postgres_cpu() -> float:
    total = 0.0
    for pid in postgres_pids():
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


@contextmanager
def waits_sampled(database_url: str) -> Iterator[Counter[str]]:
    """Tally what PostgreSQL's active sessions on the database wait on, while the block runs."""
    tally: Counter[str] = Counter()
    stop = threading.Event()
    name = database_url.rpartition("/")[2]

    def sample() -> None:
        with psycopg.connect(database_url, autocommit=True) as connection:
            while not stop.wait(SAMPLE_SECONDS):
                rows = connection.execute(
                    "SELECT coalesce(wait_event_type, 'CPU'), count(*) FROM pg_stat_activity"
                    " WHERE datname = %s AND state = 'active' AND pid <> pg_backend_pid()"
                    " GROUP BY 1",
                    (name,),
                ).fetchall()
                for kind, count in rows:
                    tally[str(kind)] += int(count)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield tally
    finally:
        stop.set()
        sampler.join(10)


def bound(figures: dict[str, Any]) -> str:
    waits: dict[str, int] = figures["postgres_waits"]
    sessions = sum(waits.values())
    if figures["machine_cpu_busy"] >= 0.9:
        return "the machine's CPU"
    if max(figures["gateway_core_use"]) >= 0.9:
        return "the gateway"
    if sessions and waits.get("Lock", 0) / sessions >= 0.3:
        return "PostgreSQL's locks"
    return "waiting on the sandbox or the connector"


def drain(
    urls: list[str], pids: dict[str, int], connector: str, database_url: str
) -> dict[str, Any]:
    api(urls[0], "/pause")
    time.sleep(1.5)  # every gateway sees the flag within a second
    posted = 0
    while posted < BURST:
        report = post_events(
            urls[0],
            1 + posted,
            "--concurrency",
            "16",
            "--rate",
            "1000",
            "--duration",
            f"{max(1.0, (BURST - posted) / 1000):g}",
        )
        posted += int(report["statuses"].get("200", 0))
    httpx.post(f"{connector}/reset", timeout=10).raise_for_status()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    postgres_before = postgres_cpu()
    busy_before, total_before = machine_busy_seconds()
    started = time.monotonic()
    with waits_sampled(database_url) as waits:
        api(urls[0], "/resume")
        while (done := connector_stats(connector)["events"]) < posted:
            if time.monotonic() - started > DRAIN_LIMIT_SECONDS:
                raise RuntimeError(f"only {done} of {posted} delivered in time")
            time.sleep(0.1)
    seconds = time.monotonic() - started
    busy_after, total_after = machine_busy_seconds()
    used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    used["postgres"] = postgres_cpu() - postgres_before
    gateways = [name for name in pids if name.startswith("gateway")]
    per_event = {
        "gateways": sum(used[name] for name in gateways),
        **{name: used[name] for name in ("postgres", "sandbox", "connector")},
    }
    figures: dict[str, Any] = {
        "gateways": len(urls),
        "events": posted,
        "seconds": round(seconds, 1),
        "delivered_per_s": round(posted / seconds, 1),
        "cpu_ms_per_event": {k: round(v * 1000 / posted, 2) for k, v in per_event.items()},
        "machine_cpu_busy": round((busy_after - busy_before) / (total_after - total_before), 2),
        "gateway_core_use": [round(used[name] / seconds, 2) for name in gateways],
        "postgres_waits": dict(waits.most_common()),
    }
    figures["bound"] = bound(figures)
    return figures


def scale_round(workdir: Path, parts: Parts, count: int) -> dict[str, Any]:
    """`count` gateways on a fresh database drain one burst together."""
    with postgres_database() as database_url, ExitStack() as stack:
        pids = {"sandbox": parts.sandbox_pid, "connector": parts.connector_pid}
        urls = []
        for n in range(count):
            gateway_dir = workdir / f"gateway{n}"
            gateway_dir.mkdir(parents=True)
            config = gateway_config(gateway_dir, parts.sandbox, parts.connector)
            config["store"] = {"url": database_url}
            url, pid = stack.enter_context(gateway_process(gateway_dir, config))
            urls.append(url)
            pids[f"gateway{n}"] = pid
        return drain(urls, pids, parts.connector, database_url)


def run() -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="opennsps-bench-") as tmp,
        sandbox_and_connector(Path(tmp)) as parts,
    ):
        for count in GATEWAYS:
            rounds.append(scale_round(Path(tmp) / f"n{count}", parts, count))
            print(summary_line(rounds[-1]), flush=True)
    one = rounds[0]["delivered_per_s"]
    results = {
        "events_per_round": BURST,
        "rounds": rounds,
        "two_over_one": round(rounds[1]["delivered_per_s"] / one, 2),
        "three_over_one": round(rounds[2]["delivered_per_s"] / one, 2),
    }
    path = write_result("scaleout", results)
    print(
        f"2 gateways / 1: {results['two_over_one']}x, 3 / 1: {results['three_over_one']}x;"
        f" written to {path}"
    )
    return results


def summary_line(figures: dict[str, Any]) -> str:
    cpu = figures["cpu_ms_per_event"]
    return (
        f"{figures['gateways']} gateway(s): {figures['delivered_per_s']}/s; CPU ms/event:"
        f" gateways {cpu['gateways']}, postgres {cpu['postgres']}, sandbox {cpu['sandbox']},"
        f" connector {cpu['connector']}; machine {figures['machine_cpu_busy']:.0%} busy;"
        f" gateway core use {figures['gateway_core_use']}; PostgreSQL waits"
        f" {figures['postgres_waits']}; bound: {figures['bound']}"
    )


if __name__ == "__main__":
    run()
