"""The status sender and its claims on the outbox, against the sandbox's ESPF API: the
reports a process claimed and never sent (it died) go out from another process once the
claim's lease has run out; a slow PortaBilling does not let another process take over
(and send twice) the reports still being sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from opennsps.app import create_app
from opennsps.config import StoreConfig
from opennsps.pipeline.status_sender import StatusSender
from opennsps.portabilling.espf_client import EspfApiClient, EspfApiSettings
from opennsps.store.deliveries import StatusReport
from opennsps.store.event_store import EventStore
from opennsps.store.outbox import StatusOutbox
from opennsps.store.schema import status_outbox
from tests.pipeline.harness import (
    API_LOGIN,
    API_PASSWORD,
    Sandbox,
    connector_server,
    gateway_settings,
    http_handler,
    sandbox_server,
    wait_for,
)
from tests.support import running

FIRST = 100_001


def espf(sandbox: Sandbox) -> dict[str, EspfApiClient]:
    settings = EspfApiSettings(url=sandbox.url, login=API_LOGIN, password=API_PASSWORD)
    return {"default": EspfApiClient(settings)}


def report(i_account: int, status: str = "OK") -> StatusReport:
    return StatusReport("default", i_account, "HSS", status, None, "test")


async def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll an awaitable-free condition from inside a running loop, bounded in time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def states(outbox: StatusOutbox) -> list[str]:
    with outbox.engine.connect() as connection:
        return list(connection.execute(select(status_outbox.c.state)).scalars())


@pytest.fixture
def outbox(store_url: str) -> Iterator[StatusOutbox]:
    """The status outbox of a fresh store (SQLite and PostgreSQL)."""
    store = EventStore(StoreConfig(url=store_url))
    store.open()
    try:
        yield StatusOutbox(store.engine)
    finally:
        store.close()


async def send_until(
    sender: StatusSender, condition: Callable[[], bool], timeout: float, what: str
) -> None:
    """Run the sender until `condition` holds, then stop it."""
    sender.start()
    try:
        await until(condition, timeout, what)
    finally:
        await sender.stop()


def test_reports_claimed_by_a_process_that_died_go_out_once_its_lease_runs_out(
    outbox: StatusOutbox, dataset_file: Path
) -> None:
    now = datetime.now(UTC)
    outbox.add([report(FIRST), report(FIRST + 1, "FAILED")], now)
    # The process that claimed them died: nobody will send them, nor give them back.
    claimed = outbox.claim("dead-process", 10, now, now + timedelta(seconds=2))
    assert len(claimed) == 2

    async def scenario(sandbox: Sandbox) -> None:
        survivor = StatusSender(outbox, espf(sandbox), "survivor", lease=timedelta(seconds=2))
        await send_until(
            survivor, lambda: outbox.backlog() == 0, 30, "the dead process's reports sent"
        )

    with sandbox_server(dataset_file) as sandbox:
        asyncio.run(scenario(sandbox))
        latest = {i: sandbox.get(f"/sandbox/statuses/{i}")["latest"] for i in (FIRST, FIRST + 1)}
    assert latest[FIRST][0]["status"] == "OK"
    assert latest[FIRST + 1][0]["status"] == "FAILED"


def test_a_slow_portabilling_keeps_the_claim_and_the_report_goes_out_once(
    outbox: StatusOutbox, dataset_file: Path
) -> None:
    outbox.add([report(FIRST)], datetime.now(UTC))

    async def scenario(sandbox: Sandbox) -> None:
        lease = timedelta(seconds=1)
        one = StatusSender(outbox, espf(sandbox), "one", lease=lease)
        two = StatusSender(outbox, espf(sandbox), "two", lease=lease)
        one.start()
        try:
            # Each call takes longer than a lease: only renewals keep the report claimed.
            await until(lambda: states(outbox) == ["in_flight"], 10, "the report claimed")
            two.start()
            await until(lambda: outbox.backlog() == 0, 30, "the report sent")
        finally:
            await one.stop()
            await two.stop()

    with sandbox_server(dataset_file) as sandbox:
        sandbox.put_faults({"latency": {"espf": {"mean_ms": 1500, "distribution": "fixed"}}})
        asyncio.run(scenario(sandbox))
        history = sandbox.get(f"/sandbox/statuses/{FIRST}")["history"]
    assert [entry["status"] for entry in history] == ["OK"], history


def test_a_recorded_outcome_wakes_the_sender_rather_than_waiting_for_its_poll(
    store_url: str, dataset_file: Path
) -> None:
    with sandbox_server(dataset_file) as sandbox, connector_server() as connector:
        settings = gateway_settings(
            store_url, sandbox.url, [http_handler(connector.url, status_group="HSS")]
        )
        app = create_app(settings)
        # Left to its poll, the sender would look at the outbox only once a minute.
        app.state.pipeline.status_sender.poll_interval = 60
        with running(app) as url:
            sandbox.point_sender_at(f"{url}/espf/events")
            sandbox.emit("Subscriber/Updated", i_account=FIRST)
            latest = wait_for(
                lambda: sandbox.get(f"/sandbox/statuses/{FIRST}")["latest"],
                timeout=20,
                what="the status report",
            )
    assert latest[0]["status"] == "OK"


def outbox_rows(outbox: StatusOutbox) -> dict[int, tuple[str, str | None, datetime]]:
    c = status_outbox.c
    with outbox.engine.connect() as connection:
        rows = connection.execute(select(c.i_account, c.state, c.last_error, c.next_attempt_at))
        return {row[0]: (row[1], row[2], row[3]) for row in rows}


def test_a_batch_records_sent_refused_and_retried_reports_together(
    outbox: StatusOutbox, dataset_file: Path
) -> None:
    unknown = 99_999_999
    outbox.add([report(FIRST), report(unknown, "FAILED")], datetime.now(UTC))

    async def send_once(sandbox: Sandbox) -> None:
        one = StatusSender(outbox, espf(sandbox), "one")
        await send_until(one, lambda: outbox.backlog() == 0, 20, "both reports taken or refused")

    async def send_into_outage(sandbox: Sandbox) -> None:
        two = StatusSender(outbox, espf(sandbox), "two")
        await send_until(
            two, lambda: (outbox_rows(outbox)[FIRST + 1][1] or "") != "", 20, "the failed try"
        )

    with sandbox_server(dataset_file) as sandbox:
        asyncio.run(send_once(sandbox))
        done = outbox_rows(outbox)
        sandbox.put_faults({"espf_outage_seconds": 60})
        outbox.add([report(FIRST + 1)], datetime.now(UTC))
        asyncio.run(send_into_outage(sandbox))
        later = outbox_rows(outbox)
    assert done[FIRST][:2] == ("sent", None)
    state, reason, _ = done[unknown]
    assert state == "refused" and reason is not None and "404" in reason, done[unknown]
    state, reason, retry_at = later[FIRST + 1]
    assert state == "pending" and reason is not None and "503" in reason, later[FIRST + 1]
    assert retry_at.replace(tzinfo=UTC) > datetime.now(UTC)  # not before its backoff
