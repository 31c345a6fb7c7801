"""OpenNSPS as real processes: SIGKILL mid-stream, and two processes sharing PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import yaml

from tests.pipeline.harness import (
    ConnectorServer,
    api_get,
    connector_server,
    gateway_config,
    http_handler,
    sandbox_server,
    serving,
    wait_for,
)
from tests.support import GatewayProcess, basic_header, event_body

FIRST = 100_001
pytestmark = pytest.mark.slow


def write_config(directory: Path, store_url: str, sandbox_url: str, connector_url: str) -> Path:
    config = gateway_config(store_url, sandbox_url, [http_handler(connector_url)], lease_seconds=5)
    config["logging"] = {"level": "warning"}
    path = directory / "opennsps.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def undelivered(url: str) -> int:
    total = 0
    for state in ("unrouted", "pending", "waiting", "rejected", "dead"):
        total += len(api_get(url, "/events", state=state, limit=1000)["items"])
    return total


def test_sigkill_mid_stream_loses_nothing(
    store_url: str, dataset_file: Path, tmp_path: Path
) -> None:
    events = 300
    with (
        sandbox_server(dataset_file, rate=300, concurrency=8) as sandbox,
        connector_server(delay=0.005) as connector,
    ):
        config = write_config(tmp_path, store_url, sandbox.url, connector.url)
        first = GatewayProcess(config, tmp_path / "first.log")
        try:
            sandbox.point_sender_at(f"{first.url}/espf/events")
            emitted = {
                sandbox.emit("Subscriber/Updated", i_account=FIRST + n % 30) for n in range(events)
            }
            wait_for(lambda: len(connector.received) >= 60, what="deliveries under way")
            first.kill()
        finally:
            first.stop()
        delivered_before_kill = len({r["body"]["event_id"] for r in connector.received})
        assert delivered_before_kill < events  # the kill really hit mid-stream

        second = GatewayProcess(config, tmp_path / "second.log")
        try:
            sandbox.point_sender_at(f"{second.url}/espf/events")
            wait_for(
                lambda: sandbox.get("/sandbox/eventsender")["queue"]["pending"] == 0,
                timeout=60,
                what="the EventSender to hand over everything",
            )
            wait_for(lambda: undelivered(second.url) == 0, timeout=60, what="all delivered")
            stored = api_get(second.url, "/events", limit=1000)["items"]
        finally:
            second.stop()
    assert {e["i_event"] for e in stored} == emitted
    got = {int(r["body"]["data"]["variables"]["i_event"]) for r in connector.received}
    assert got == emitted


@pytest.mark.postgres
def test_two_processes_share_one_postgres_without_double_delivery(
    postgres_url: str, dataset_file: Path, tmp_path: Path
) -> None:
    per_process = 150
    connector = ConnectorServer(delay=0.02)
    with sandbox_server(dataset_file) as sandbox, serving(connector):
        config = write_config(tmp_path, postgres_url, sandbox.url, connector.url)
        one = GatewayProcess(config, tmp_path / "one.log")
        two = GatewayProcess(config, tmp_path / "two.log")
        try:
            asyncio.run(_post_to_both(one.url, two.url, per_process))
            wait_for(
                lambda: undelivered(one.url) == 0 and _count(one.url) == 2 * per_process,
                timeout=90,
                what="everything delivered",
            )
            workers = {a["worker"] for a in api_get(one.url, "/attempts", limit=1000)["items"]}
        finally:
            one.stop()
            two.stop()
    assert connector.overlaps == []
    event_ids = [r["body"]["event_id"] for r in connector.received]
    assert len(set(event_ids)) == 2 * per_process
    assert len(event_ids) == 2 * per_process  # no delivery went out twice
    assert len(workers) == 2  # both processes did part of the work


def _count(url: str) -> int:
    return len(api_get(url, "/events", limit=1000)["items"])


async def _post_to_both(url_one: str, url_two: str, per_process: int) -> None:
    async def post_all(url: str, offset: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=basic_header(), timeout=10) as client:
            for n in range(per_process):
                i_event = offset + n
                body = event_body(i_event, "Subscriber/Updated", i_account=FIRST + n % 40)
                answer = await client.post("/espf/events", json=body)
                assert answer.status_code == 200, answer.text

    await asyncio.gather(post_all(url_one, 1_000), post_all(url_two, 2_000))
