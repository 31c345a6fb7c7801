"""Steering delivery to a struggling connector: the circuit (consecutive failures make the
deliveries wait together; one probe at a time finds out when the connector is back; the
backlog then goes at once, in order per entity) and the rate limit shared by processes."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from opennsps.cli import app as cli
from tests.pipeline.harness import (
    FAST_RETRY,
    VIEWER_TOKEN,
    Answer,
    ConnectorServer,
    Gateway,
    api_get,
    gateway_config,
    http_handler,
    sandbox_server,
    serving,
    wait_for,
    wired,
)
from tests.support import GatewayProcess

FIRST = 100_001
ACCOUNTS = 5
# A failed delivery would wait a minute for its next slot: only the circuit closing can
# bring it back sooner.
SLOW_RETRY = {**FAST_RETRY, "fast_first_seconds": 60, "fast_max_seconds": 60}
CIRCUIT = {
    "open_after_failures": 3,
    "open_after_seconds": 0,
    "probe_first_seconds": 0.5,
    "probe_max_seconds": 1,
}


class Switch:
    """A connector that is down until told otherwise."""

    def __init__(self) -> None:
        self.down = True
        self.refused = 0
        self.accepted: list[tuple[float, dict[str, Any]]] = []  # (time, body)

    def __call__(self, body: dict[str, Any]) -> Answer:
        if self.down:
            self.refused += 1
            return 503, {}, b'{"message": "down for maintenance"}'
        self.accepted.append((time.time(), body))
        return 200, {}, b"{}"


def circuit_of(gw: Gateway, handler_id: str = "hss") -> dict[str, Any]:
    with gw.api() as api:
        circuit: dict[str, Any] = api.get(f"/handlers/{handler_id}").json()["circuit_state"]
    return circuit


def deliveries(gw: Gateway) -> list[dict[str, Any]]:
    with gw.api() as api:
        items: list[dict[str, Any]] = api.get("/deliveries", params={"limit": 500}).json()["items"]
    return items


def all_delivered(gw: Gateway, count: int) -> bool:
    found = deliveries(gw)
    return len(found) == count and all(d["state"] == "delivered" for d in found)


def emit_round(sandbox: Any, rounds: int) -> list[int]:
    """`rounds` updates of each account, interleaved; returns the i_events in order."""
    return [
        sandbox.emit("Subscriber/Updated", i_account=FIRST + n % ACCOUNTS)
        for n in range(rounds * ACCOUNTS)
    ]


def handlers(url: str, **extra: Any) -> list[dict[str, Any]]:
    return [http_handler(url, "hss", retry=SLOW_RETRY, circuit=CIRCUIT, **extra)]


def test_an_outage_opens_the_circuit_probes_find_the_return_and_the_backlog_drains_at_once(
    store_url: str, dataset_file: Path
) -> None:
    switch = Switch()
    with wired(store_url, dataset_file, lambda c: handlers(c.url)) as (sandbox, gw, server):
        server.decide = switch
        emit_round(sandbox, 1)
        opened = wait_for(
            lambda: (c := circuit_of(gw))["state"] == "open" and c, what="the circuit open"
        )
        assert opened["consecutive_failures"] >= 3 and "HTTP 503" in opened["last_error"]
        assert opened["next_probe_at"] is not None
        # While it is open, new events wait with the rest: only probes reach the connector,
        # one at a time, at growing intervals.
        emit_round(sandbox, 2)
        seen_at_open = len(server.received)
        wait_for(lambda: len(server.received) >= seen_at_open + 3, what="three probes")
        probes = [r["at"] for r in server.received[seen_at_open:]]
        gaps = [b - a for a, b in itertools.pairwise(probes)]
        assert all(gap >= 0.4 for gap in gaps), gaps
        # A failed probe is not counted toward its delivery's retry schedule.
        assert max(d["failures"] for d in deliveries(gw)) <= 1
        assert {d["state"] for d in deliveries(gw)} == {"pending"}

        switch.down = False
        back = time.time()
        wait_for(lambda: all_delivered(gw, 3 * ACCOUNTS), what="the backlog delivered")
        # within seconds, not at each delivery's next slot (a minute away)
        assert time.time() - back < 20
        assert circuit_of(gw)["state"] == "closed"
        # in order per account: each account's deliveries in i_event order
        order: dict[int, list[int]] = defaultdict(list)
        for request in server.received:
            if request["at"] >= back - 0.01:
                body = request["body"]
                order[int(body["data"]["variables"]["i_account"])].append(body["event_id"])
        with gw.api() as api:
            events = api.get("/events", params={"limit": 100}).json()["items"]
        i_event_of = {e["event_id"]: e["i_event"] for e in events}
        for account, event_ids in order.items():
            numbers = [i_event_of[e] for e in event_ids]
            assert numbers == sorted(numbers), (account, numbers)
        assert not server.overlaps


def test_retry_now_closes_the_circuit_by_hand(store_url: str, dataset_file: Path) -> None:
    switch = Switch()
    long_probe = {**CIRCUIT, "probe_first_seconds": 600, "probe_max_seconds": 600}
    with wired(
        store_url,
        dataset_file,
        lambda c: [http_handler(c.url, "hss", retry=SLOW_RETRY, circuit=long_probe)],
    ) as (sandbox, gw, server):
        server.decide = switch
        emit_round(sandbox, 1)
        wait_for(lambda: circuit_of(gw)["state"] == "open", what="the circuit open")
        switch.down = False
        with gw.api(VIEWER_TOKEN) as viewer:
            assert viewer.post("/handlers/hss/retry-now").status_code == 403
        with gw.api() as api:
            answer = api.post("/handlers/hss/retry-now")
        assert answer.status_code == 200, answer.text
        assert answer.json()["circuit_state"]["state"] == "closed"
        wait_for(lambda: all_delivered(gw, ACCOUNTS), what="the backlog delivered")
        with gw.api() as api:
            assert api.post("/handlers/nosuch/retry-now").status_code == 404


def test_a_rate_limit_spaces_the_requests_even_for_a_backlog(
    store_url: str, dataset_file: Path
) -> None:
    per_second, burst, events = 10.0, 2, 30
    with wired(
        store_url,
        dataset_file,
        lambda c: [
            http_handler(c.url, "hss", rate_limit={"per_second": per_second, "burst": burst})
        ],
    ) as (sandbox, gw, server):
        with gw.api() as api:
            api.post("/handlers/hss/pause").raise_for_status()
        emit_round(sandbox, events // ACCOUNTS)
        wait_for(lambda: len(deliveries(gw)) == events, what="the backlog queued")
        with gw.api() as api:
            api.post("/handlers/hss/resume").raise_for_status()
        wait_for(lambda: all_delivered(gw, events), timeout=60, what="the backlog delivered")
    times = sorted(r["at"] for r in server.received)
    assert len(times) == events
    # No one-second window holds more than the rate plus the burst (and a request's worth
    # of clock slack between the claim and the connector's clock).
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t < start + 1.0)
        assert in_window <= per_second + burst + 1, (in_window, i)
    assert times[-1] - times[0] >= (events - burst) / per_second * 0.8


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_on_postgres_share_one_circuit_and_one_rate_limit(
    postgres_url: str, dataset_file: Path, tmp_path: Path
) -> None:
    per_second, burst = 10.0, 2
    switch = Switch()
    connector = ConnectorServer(decide=switch)
    with sandbox_server(dataset_file) as sandbox, serving(connector):
        hss = http_handler(
            connector.url,
            "hss",
            retry=SLOW_RETRY,
            circuit=CIRCUIT,
            rate_limit={"per_second": per_second, "burst": burst},
        )
        config = gateway_config(postgres_url, sandbox.url, [hss])
        config["logging"] = {"level": "warning"}
        path = tmp_path / "opennsps.yaml"
        path.write_text(yaml.safe_dump(config))
        one = GatewayProcess(path, tmp_path / "one.log")
        two = GatewayProcess(path, tmp_path / "two.log")
        try:
            sandbox.point_sender_at(f"{one.url}/espf/events")
            emit_round(sandbox, 1)
            for process in (one, two):  # both see the one circuit
                wait_for(
                    lambda p=process: _circuit_at(p.url)["state"] == "open",
                    what="the circuit open in both processes",
                )
            emit_round(sandbox, 5)  # 30 events wait behind it
            seen_at_open = len(connector.received)
            wait_for(lambda: len(connector.received) >= seen_at_open + 4, what="four probes")
            probes = connector.received[seen_at_open:]
            gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(probes)]
            assert all(gap >= 0.4 for gap in gaps), gaps  # one probe at a time, shared
            switch.down = False
            # The operator closes it by hand from the CLI of a third process.
            retried = CliRunner().invoke(cli, ["handlers", "retry-now", "hss", "-c", str(path)])
            assert retried.exit_code == 0, retried.output
            assert "circuit closed" in retried.output
            back = time.time()
            wait_for(
                lambda: (
                    all(d["state"] == "delivered" for d in _deliveries_at(one.url))
                    and len(_deliveries_at(one.url)) == 6 * ACCOUNTS
                ),
                timeout=60,
                what="the backlog delivered",
            )
            assert _circuit_at(two.url)["state"] == "closed"
            workers = {a["worker"] for a in api_get(one.url, "/attempts", limit=500)["items"]}
        finally:
            one.stop()
            two.stop()
    assert len(workers) == 2  # both processes drained part of it
    drained = sorted(r["at"] for r in connector.received if r["at"] >= back)
    for i, start in enumerate(drained):  # the rate limit held across both processes
        in_window = sum(1 for t in drained[i:] if t < start + 1.0)
        assert in_window <= per_second + burst + 1, (in_window, i)
    assert not connector.overlaps


def _circuit_at(url: str) -> dict[str, Any]:
    circuit: dict[str, Any] = api_get(url, "/handlers/hss")["circuit_state"]
    return circuit


def _deliveries_at(url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api_get(url, "/deliveries", limit=500)["items"]
    return items


@pytest.mark.slow
def test_the_outage_story_end_to_end(dataset_file: Path, tmp_path: Path) -> None:
    """A connector down while events keep coming (scaled to test time: 15 s at 40 events/s,
    bench/outage.py measures longer ones): once it is back, the backlog drains within a
    minute, in order per account, within the rate limit, nothing lost, nothing dead.
    On SQLite; the same circuit and limit on PostgreSQL, across two processes, are the
    test below."""
    store_url = f"sqlite:///{tmp_path / 'opennsps.db'}"
    rate, down_seconds, per_second, burst = 40.0, 15.0, 100.0, 10
    switch = Switch()
    hss = http_handler(
        "",
        "hss",
        retry=SLOW_RETRY,
        circuit={"open_after_seconds": 2, "probe_first_seconds": 1, "probe_max_seconds": 2},
        rate_limit={"per_second": per_second, "burst": burst},
    )

    def handlers_of(server: ConnectorServer) -> list[dict[str, Any]]:
        return [{**hss, "http": {**hss["http"], "url": server.url}}]

    with wired(store_url, dataset_file, handlers_of, sender={"rate": 1000}) as (
        sandbox,
        gw,
        server,
    ):
        server.decide = switch
        emitted: list[int] = []
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < down_seconds:
            due = int(elapsed * rate) + 1
            while len(emitted) < due:
                emitted.append(
                    sandbox.emit("Subscriber/Updated", i_account=FIRST + len(emitted) % 200)
                )
            time.sleep(0.01)
        assert circuit_of(gw)["state"] in {"open", "half_open"}
        assert switch.refused < len(emitted) / 4  # the waiting deliveries were not each tried
        switch.down = False
        back = time.time()
        wait_for(
            lambda: len(switch.accepted) >= len(emitted), timeout=60, what="the backlog delivered"
        )
        drained_in = time.time() - back
        with gw.api() as api:
            dead = api.get("/deliveries", params={"state": "dead", "limit": 10}).json()["items"]
    assert not dead and not server.overlaps
    assert drained_in < 60, drained_in
    by_account: dict[int, list[int]] = defaultdict(list)
    for _, body in switch.accepted:
        variables = body["data"]["variables"]
        by_account[int(variables["i_account"])].append(int(variables["i_event"]))
    assert sorted(n for v in by_account.values() for n in v) == sorted(emitted)  # each once
    for account, numbers in by_account.items():
        assert numbers == sorted(numbers), account
    times = [at for at, _ in switch.accepted]
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t < start + 1.0) <= per_second + burst + 1


def test_deliveries_behind_an_open_circuit_still_die_at_their_give_up_age(
    store_url: str, dataset_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker looks for such deliveries every 30 s; here every half second.
    monkeypatch.setattr("opennsps.pipeline.worker.EXPIRY_SECONDS", 0.5)
    switch = Switch()
    never_probe = {**CIRCUIT, "probe_first_seconds": 600, "probe_max_seconds": 600}
    short_lived = {**SLOW_RETRY, "give_up_after_seconds": 3}
    with wired(
        store_url,
        dataset_file,
        lambda c: [
            http_handler(c.url, "hss", retry=short_lived, circuit=never_probe, status_group="HSS")
        ],
    ) as (sandbox, gw, server):
        server.decide = switch
        emit_round(sandbox, 1)
        wait_for(lambda: circuit_of(gw)["state"] == "open", what="the circuit open")
        emit_round(sandbox, 1)  # these are never attempted
        wait_for(
            lambda: (
                {d["state"] for d in deliveries(gw)} == {"dead"}
                and len(deliveries(gw)) == 2 * ACCOUNTS
            ),
            timeout=30,
            what="every delivery given up",
        )
        with gw.api() as api:
            attempts = api.get("/attempts", params={"outcome": "dead", "limit": 50}).json()
        reasons = {a["error"] for a in attempts["items"]}
        assert any("circuit was open" in (r or "") for r in reasons), reasons
        # PortaBilling hears FAILED for them, as for any dead delivery
        latest = wait_for(
            lambda: [
                s
                for s in sandbox.get(f"/sandbox/statuses/{FIRST}")["latest"]
                if s["status"] == "FAILED" and "circuit was open" in s["error"]
            ],
            what="FAILED reported for the one given up",
        )
        assert latest[0]["group"] == "HSS"
    assert switch.refused < 2 * ACCOUNTS  # the second round never reached the connector
