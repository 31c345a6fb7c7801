"""When the store cannot commit, ESPF gets 503 (it sends again) and nothing is half-written."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from opennsps.app import create_app
from opennsps.store.event_store import EventStore
from tests.support import basic_header, event_body, running, settings_for
from tests.tcp_proxy import TcpProxy

AUTH = basic_header()


def post(url: str, i_event: int) -> httpx.Response:
    return httpx.post(f"{url}/espf/events", json=event_body(i_event), headers=AUTH, timeout=15)


def test_sqlite_locked_by_another_process_gives_503_then_recovers(tmp_path: Path) -> None:
    db = tmp_path / "opennsps.db"
    settings = settings_for(f"sqlite:///{db}", busy_timeout=0.2, commit_timeout=3)
    app = create_app(settings)
    with running(app) as url:
        store: EventStore = app.state.store
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            responses = [post(url, i) for i in (1, 2, 3)]
            assert [r.status_code for r in responses] == [503, 503, 503]
            body = responses[0].json()
            assert body["error"] == "store_unavailable" and body["type"] == "service_error"
            assert responses[0].headers["retry-after"] == "5"
            assert httpx.get(f"{url}/ready").status_code == 503
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert store.count_events() == 0
        assert httpx.get(f"{url}/ready").status_code == 200
        # ESPF sends the same events again: each is stored once.
        assert [post(url, i).status_code for i in (1, 2, 3, 1)] == [200, 200, 200, 200]
        assert sorted(e.i_event for e in store.list_events()) == [1, 2, 3]


@pytest.fixture
def proxied_postgres(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = proxy.start()
    netloc = f"{parts.username}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    yield proxy, urlunsplit(parts._replace(netloc=netloc))
    proxy.close()


@pytest.mark.postgres
def test_postgres_going_away_gives_503_then_recovers(
    proxied_postgres: tuple[TcpProxy, str], postgres_url: str
) -> None:
    proxy, url_through_proxy = proxied_postgres
    settings = settings_for(url_through_proxy, connect_timeout=1, commit_timeout=4)
    app = create_app(settings)
    with running(app) as url:
        assert post(url, 1).status_code == 200
        proxy.cut()
        try:
            assert [post(url, i).status_code for i in (2, 3)] == [503, 503]
            assert httpx.get(f"{url}/ready", timeout=10).status_code == 503
        finally:
            proxy.restore()
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 200
        assert [post(url, i).status_code for i in (2, 3, 2)] == [200, 200, 200]
    # Read back directly, not through the proxy.
    direct = EventStore(settings_for(postgres_url).store)
    try:
        assert sorted(e.i_event for e in direct.list_events()) == [1, 2, 3]
    finally:
        direct.close()


def test_a_locked_sqlite_never_stalls_the_event_loop(tmp_path: Path) -> None:
    db = tmp_path / "opennsps.db"
    app = create_app(settings_for(f"sqlite:///{db}", commit_timeout=3))
    with running(app) as url:
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with httpx.Client(timeout=10) as client:
                import threading

                waiting = threading.Thread(target=post, args=(url, 1))
                waiting.start()
                time.sleep(0.3)
                # While that event waits for the lock, the server keeps answering.
                answered = []
                for _ in range(15):
                    answered.append(client.get(f"{url}/health").elapsed.total_seconds())
                    time.sleep(0.05)
                waiting.join()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    assert max(answered) < 0.5


@pytest.mark.postgres
def test_two_processes_on_one_postgres_store_each_event_once(postgres_url: str) -> None:
    import asyncio

    first, second = create_app(settings_for(postgres_url)), create_app(settings_for(postgres_url))
    with running(first) as url_a, running(second) as url_b:

        async def both() -> list[httpx.Response]:
            async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
                posts = [
                    client.post(f"{url}/espf/events", json=event_body(i))
                    for i in range(1, 101)
                    for url in (url_a, url_b)
                ]
                return await asyncio.gather(*posts)

        responses = asyncio.run(both())
        assert all(r.status_code == 200 for r in responses)
        assert sum(r.json()["duplicate"] for r in responses) == 100
        store: EventStore = first.state.store
        assert store.count_events() == 100


@pytest.mark.postgres
def test_a_deadlock_between_two_writers_is_retried_not_refused(postgres_url: str) -> None:
    """Another writer holds key 2 and then wants key 1 while our batch holds key 1 and
    waits for key 2: PostgreSQL aborts our transaction (it waited first); the store runs
    the batch again instead of answering 503, and both events end up stored once."""
    import threading
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import text

    from opennsps.domain.events import parse_event
    from opennsps.store.records import NewEvent

    store = EventStore(settings_for(postgres_url).store)
    store.open()

    def new(i_event: int) -> NewEvent:
        body = event_body(i_event)
        return NewEvent(
            event_id=str(uuid.uuid4()),
            source="default",
            i_env=1,
            event=parse_event(body),
            raw_body=str(body),
            received_at=datetime.now(UTC),
            request_id=None,
            unique_id=None,
        )

    insert = text(
        "INSERT INTO events (event_id, source, i_event, event_type, variables, raw_body,"
        " received_at) VALUES (:id, 'default', :i_event, 'Subscriber/Updated',"
        " CAST('{}' AS jsonb), '{}', now())"
    )
    results: list[object] = []
    try:
        with store.engine.connect() as blocker:
            blocker.begin()
            blocker.execute(insert, {"id": str(uuid.uuid4()), "i_event": 2})
            writer = threading.Thread(
                target=lambda: results.append(store._write_transaction([new(1), new(2)]))
            )
            writer.start()
            time.sleep(0.5)  # the batch now holds key 1 and waits for key 2
            blocker.execute(insert, {"id": str(uuid.uuid4()), "i_event": 1})  # deadlock
            blocker.rollback()
            writer.join(30)
        assert len(results) == 1, "the batch was not retried after the deadlock"
        [outcomes] = results
        assert [o.duplicate for o in outcomes] == [False, False]  # type: ignore[attr-defined]
        assert sorted(e.i_event for e in store.list_events()) == [1, 2]
    finally:
        store.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB file system of its own (tmpfs), so that the test can fill it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs to fill (the tests run as root): {mounted.stderr}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the disk; returns the file that holds them."""
    filler = disk / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        for _ in range(100_000):  # bounded: 64 KiB each, far beyond 16 MiB
            out.write(b"\0" * 65536)
            out.flush()
    return filler


def test_ready_answers_503_while_the_disk_is_full_and_200_once_writes_fit(
    small_disk: Path,
) -> None:
    app = create_app(settings_for(f"sqlite:///{small_disk / 'opennsps.db'}", commit_timeout=3))
    with running(app) as url:
        assert post(url, 1).status_code == 200
        filler = fill(small_disk)
        big = {"padding": "x" * 20_000}
        answers = []
        for i_event in range(2, 400):  # bounded; the disk is full after a few
            answer = httpx.post(
                f"{url}/espf/events",
                json=event_body(i_event, "Custom/Filler", **big),
                headers=AUTH,
                timeout=15,
            )
            answers.append(answer.status_code)
            if answer.status_code == 503:
                break
        assert answers[-1] == 503, answers
        ready = httpx.get(f"{url}/ready", timeout=15)
        assert ready.status_code == 503, ready.text
        assert httpx.get(f"{url}/ready", timeout=15).status_code == 503  # and stays so
        filler.unlink()
        assert httpx.get(f"{url}/ready", timeout=15).status_code == 200
        assert post(url, 1000).status_code == 200
