"""SIGKILL while a burst is posted: every request that got 200 is in the store after restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import yaml

from opennsps.store.event_store import EventStore
from tests.support import BASIC_PASSWORD, GatewayProcess, basic_header, event_body, settings_for

BURST = 3000
CONCURRENCY = 32
KILL_AFTER_ACCEPTED = 400
pytestmark = pytest.mark.slow


def write_config(directory: Path, store_url: str) -> Path:
    config = directory / "opennsps.yaml"
    settings = settings_for(store_url)
    data = {
        "store": {"url": store_url},
        "logging": {"level": "info"},
        "ingress": {
            "sources": {
                "default": {
                    "i_env": 1,
                    "auth": {"username": "username", "password": BASIC_PASSWORD},
                }
            }
        },
    }
    assert settings.store.url == store_url
    config.write_text(yaml.safe_dump(data))
    return config


async def burst_until_killed(gateway: GatewayProcess) -> tuple[set[int], int]:
    """Post BURST events; SIGKILL the server once KILL_AFTER_ACCEPTED have been answered 200."""
    accepted: set[int] = set()
    failed = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i_event in range(1, BURST + 1):
        queue.put_nowait(i_event)
    killed = asyncio.Event()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed
        while not queue.empty():
            i_event = queue.get_nowait()
            try:
                response = await client.post("/espf/events", json=event_body(i_event))
            except httpx.HTTPError:
                failed += 1
                continue
            if response.status_code == 200:
                accepted.add(i_event)
            else:
                failed += 1
            if len(accepted) >= KILL_AFTER_ACCEPTED and not killed.is_set():
                killed.set()
                gateway.kill()

    async with httpx.AsyncClient(
        base_url=gateway.url, headers=basic_header(), timeout=10
    ) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    assert killed.is_set()
    return accepted, failed


async def resend(url: str, i_events: list[int]) -> list[int]:
    pending = list(i_events)
    codes: list[int] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while pending:
            i_event = pending.pop()
            codes.append((await client.post("/espf/events", json=event_body(i_event))).status_code)

    async with httpx.AsyncClient(base_url=url, headers=basic_header(), timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return codes


def test_sigkill_mid_burst_loses_no_accepted_event(tmp_path: Path, store_url: str) -> None:
    config = write_config(tmp_path, store_url)
    log = tmp_path / "gateway.log"
    gateway = GatewayProcess(config, log)
    try:
        accepted, failed = asyncio.run(burst_until_killed(gateway))
    finally:
        gateway.stop()
    assert len(accepted) >= KILL_AFTER_ACCEPTED, f"only {len(accepted)} accepted"
    assert failed > 0, "the kill happened mid-burst, so some requests must have failed"

    restarted = GatewayProcess(config, log)
    try:
        store = EventStore(settings_for(store_url).store)
        try:
            stored = {e.i_event for e in store.list_events(limit=BURST * 2)}
            assert accepted <= stored, f"lost {len(accepted - stored)} accepted events"
            # ESPF sends everything it did not get 200 for again: all stored, once each.
            missing = [i for i in range(1, BURST + 1) if i not in accepted]
            answers = asyncio.run(resend(restarted.url, missing))
            assert all(code == 200 for code in answers), set(answers)
            assert store.count_events() == BURST
        finally:
            store.close()
    finally:
        restarted.stop()

    text = log.read_text()
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"log line {number} is not JSON: {line[:300]!r}")
    handled = [line for line in lines if line.get("event", "").startswith("espf event")]
    assert len(handled) >= KILL_AFTER_ACCEPTED, f"{len(handled)} request lines logged"
    assert all(line["request_id"] and line["unique_id"] for line in handled)
    # Each start froze its start-up heap before it served (ops/heap.py).
    events = [line.get("event") for line in lines]
    frozen = [line for line in lines if line.get("event") == "start-up heap frozen"]
    assert len(frozen) == 2 and all(line["objects"] > 50_000 for line in frozen)
    assert events.index("start-up heap frozen") < events.index("opennsps started")
    assert f"username:{BASIC_PASSWORD}" not in text
    assert "Authorization" not in text
