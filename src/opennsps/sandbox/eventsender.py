"""The sandbox's EventSender: delivers ESPF events to an application exactly as ESPF does.

Events wait in a persistent queue. They are sent asynchronously at a configured rate and
concurrency. A 200 or any 4xx removes an event from the queue. Any other status, a
connection error, or no answer within the timeout (300 s by default) sends it again after
a delay. Every attempt is written to the delivery log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any, Literal

import httpx
import jwt
import orjson

from opennsps.domain.events import KNOWN_EVENT_TYPES
from opennsps.logging import get_logger

log = get_logger("opennsps.sandbox.eventsender")

SCHEMA = """
CREATE TABLE IF NOT EXISTS espf_queue (
    i_event INTEGER PRIMARY KEY, event_type TEXT NOT NULL, variables TEXT NOT NULL,
    event_time TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, last_status INTEGER, last_error TEXT
);
CREATE INDEX IF NOT EXISTS espf_queue_due ON espf_queue (state, next_attempt_at, i_event);
CREATE TABLE IF NOT EXISTS espf_attempts (
    id INTEGER PRIMARY KEY, i_event INTEGER NOT NULL, attempted_at TEXT NOT NULL,
    duration_ms REAL NOT NULL, http_status INTEGER, error TEXT, outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS espf_attempts_event ON espf_attempts (i_event);
CREATE TABLE IF NOT EXISTS espf_subscriptions (event_type TEXT PRIMARY KEY);
"""
FIRST_I_EVENT = 1_000_001
EVENT_TYPES = KNOWN_EVENT_TYPES
CUSTOM_PREFIX = "Custom/"


@dataclass
class SenderAuth:
    scheme: Literal["basic", "custom", "signature", "bearer", "none"] = "basic"
    username: str = ""
    password: str = ""
    auth_type: str = ""
    credentials: str = ""
    key_id: str = ""
    key: str = ""
    token_ttl: float = 300.0

    def headers(self, i_env: int, now: float) -> dict[str, str]:
        date = formatdate(now, usegmt=True)
        headers = {"Date": date}
        if self.scheme == "basic":
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        elif self.scheme == "custom":
            headers["Authorization"] = f"{self.auth_type} {self.credentials}"
        elif self.scheme == "signature":
            digest = hmac.new(self.key.encode(), date.encode(), hashlib.sha1).digest()
            signature = base64.b64encode(digest).decode()
            headers["Authorization"] = (
                f'Signature keyId="{self.key_id}",algorithm="hmac-sha1",signature="{signature}"'
            )
        elif self.scheme == "bearer":
            claims = {"i_env": i_env, "exp": int(now + self.token_ttl)}
            headers["Authorization"] = f"Bearer {jwt.encode(claims, self.key, algorithm='HS256')}"
        return headers


@dataclass
class SenderConfig:
    url: str | None = None
    auth: SenderAuth = field(default_factory=SenderAuth)
    i_env: int = 1
    rate: float = 10.0
    concurrency: int = 4
    timeout: float = 300.0
    retry_delay: float = 10.0
    #: The event types to send; None keeps the dataset's list (every type at first start).
    subscriptions: list[str] | None = None


class SubscriptionError(ValueError):
    """An event type the EventSender cannot subscribe to; the message says why."""


def check_event_type(event_type: str) -> str:
    """The event type if the EventSender can be subscribed to it: a known type, or a custom
    one (`Custom/<Name>`, as `evctl.pl type create` makes them)."""
    name = event_type.strip()
    if name in EVENT_TYPES:
        return name
    rest = name.removeprefix(CUSTOM_PREFIX)
    if name.startswith(CUSTOM_PREFIX) and rest and len(name) <= 64 and rest.isprintable():
        return name
    raise SubscriptionError(
        f"unknown event type {event_type!r}: one of {', '.join(EVENT_TYPES)},"
        f" or a custom type named {CUSTOM_PREFIX}<Name>"
    )


class EventSender:
    def __init__(self, connect: Callable[[], sqlite3.Connection], config: SenderConfig) -> None:
        self.config = config
        self._db = connect()
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('next_i_event', ?)", (str(FIRST_I_EVENT),)
            )
            first_start = self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('subscriptions_set', '1')"
            ).rowcount
        if config.subscriptions is not None:
            self.set_subscriptions(config.subscriptions)
        elif first_start:
            self.set_subscriptions(list(EVENT_TYPES))
        self._in_flight: set[int] = set()
        self._wake = asyncio.Event()
        self._next_slot = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self.due_scheduled: Callable[[datetime], list[tuple[int, str, dict[str, Any]]]] | None = (
            None
        )
        self.mark_scheduled: Callable[[int], None] | None = None

    # -- the queue ------------------------------------------------------------------

    def next_i_event(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'next_i_event'").fetchone()
            value = int(row[0])
            self._db.execute(
                "UPDATE meta SET value = ? WHERE key = 'next_i_event'", (str(value + 1),)
            )
        return value

    # -- subscriptions (evctl.pl handler subscribe|unsubscribe EventSender <type>) --------

    def subscriptions(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT event_type FROM espf_subscriptions ORDER BY event_type"
            ).fetchall()
        return [row[0] for row in rows]

    def set_subscriptions(self, event_types: list[str]) -> list[str]:
        checked = sorted({check_event_type(t) for t in event_types})
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM espf_subscriptions")
            self._db.executemany(
                "INSERT INTO espf_subscriptions VALUES (?)", [(t,) for t in checked]
            )
            self._db.execute("COMMIT")
        return checked

    def subscribe(self, event_type: str) -> list[str]:
        checked = check_event_type(event_type)
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO espf_subscriptions VALUES (?)", (checked,))
        return self.subscriptions()

    def unsubscribe(self, event_type: str) -> list[str]:
        with self._lock:
            gone = self._db.execute(
                "DELETE FROM espf_subscriptions WHERE event_type = ?", (event_type.strip(),)
            ).rowcount
        if not gone:
            raise SubscriptionError(f"the EventSender is not subscribed to {event_type!r}")
        return self.subscriptions()

    def is_subscribed(self, event_type: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM espf_subscriptions WHERE event_type = ?", (event_type,)
            ).fetchone()
        return row is not None

    def emit_subscribed(
        self, events: list[tuple[str, dict[str, Any]]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Queue the events of the types the EventSender is subscribed to, as ESPF sends a
        handler only those; returns (queued, not sent)."""
        subscribed = set(self.subscriptions())
        sent = [event for event in events if event[0] in subscribed]
        skipped = [
            {"event_type": event_type, "variables": variables, "reason": "not subscribed"}
            for event_type, variables in events
            if event_type not in subscribed
        ]
        return self.emit(sent), skipped

    def emit(self, events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Queue events for delivery whatever the subscriptions, each with a new i_event;
        returns what was queued."""
        queued = []
        for event_type, variables in events:
            queued.append(self._enqueue(self.next_i_event(), event_type, variables))
        self._wake.set()
        return queued

    def _enqueue(self, i_event: int, event_type: str, variables: dict[str, Any]) -> dict[str, Any]:
        event_time = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        full = {
            **variables,
            "i_event": i_event,
            "i_env": self.config.i_env,
            "event_time": event_time,
        }
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO espf_queue"
                " (i_event, event_type, variables, event_time, state,"
                " next_attempt_at) VALUES (?, ?, ?, ?, 'pending', 0)",
                (i_event, event_type, orjson.dumps(full).decode(), event_time),
            )
        return {"i_event": i_event, "event_type": event_type, "variables": full}

    def stats(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT state, COUNT(*) FROM espf_queue GROUP BY state"
            ).fetchall()
        counts = {"pending": 0, "delivered": 0, "dropped": 0}
        counts.update({state: count for state, count in rows})
        return counts

    def delivery_log(self, limit: int = 100, i_event: int | None = None) -> list[dict[str, Any]]:
        query = "SELECT a.*, q.event_type FROM espf_attempts a JOIN espf_queue q USING (i_event)"
        args: tuple[object, ...] = ()
        if i_event is not None:
            query += " WHERE a.i_event = ?"
            args = (i_event,)
        with self._lock:
            rows = self._db.execute(
                query + " ORDER BY a.id DESC LIMIT ?", (*args, limit)
            ).fetchall()
        return [dict(row) for row in rows]

    # -- running --------------------------------------------------------------------

    def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.config.timeout)
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.config.concurrency)]
        self._tasks.append(asyncio.create_task(self._scheduler()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _scheduler(self) -> None:
        while True:
            if self.due_scheduled is not None and self.mark_scheduled is not None:
                for i_event, event_type, variables in self.due_scheduled(datetime.now(UTC)):
                    if self.is_subscribed(event_type):
                        self._enqueue(i_event, event_type, variables)
                        self._wake.set()
                    else:
                        log.info(
                            "scheduled espf event not sent: the EventSender is not subscribed"
                            " to its type",
                            i_event=i_event,
                            event_type=event_type,
                        )
                    self.mark_scheduled(i_event)
            await asyncio.sleep(1.0)

    def _claim(self) -> sqlite3.Row | None:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM espf_queue WHERE state = 'pending' AND next_attempt_at <= ?"
                " ORDER BY i_event LIMIT ?",
                (time.time(), len(self._in_flight) + 1),
            ).fetchall()
        for row in rows:
            if row["i_event"] not in self._in_flight:
                self._in_flight.add(row["i_event"])
                claimed: sqlite3.Row = row
                return claimed
        return None

    async def _worker(self) -> None:
        while True:
            if not self.config.url:
                await asyncio.sleep(0.5)
                continue
            row = self._claim()
            if row is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.2)
                continue
            try:
                await self._pace()
                await self._deliver(row)
            finally:
                self._in_flight.discard(row["i_event"])

    async def _pace(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.config.rate
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _deliver(self, row: sqlite3.Row) -> None:
        assert self._client is not None and self.config.url
        body = {"event_type": row["event_type"], "variables": orjson.loads(row["variables"])}
        headers = {
            "Content-Type": "application/json",
            **self.config.auth.headers(self.config.i_env, time.time()),
        }
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            response = await self._client.post(
                self.config.url, content=orjson.dumps(body), headers=headers
            )
            status = response.status_code
        except httpx.TimeoutException:
            error = f"no answer within {self.config.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        if status is not None and (status == 200 or 400 <= status < 500):
            outcome = "delivered" if status == 200 else "dropped"
            state, next_at = outcome, 0.0
        else:
            outcome, state, next_at = "retry", "pending", time.time() + self.config.retry_delay
        duration = (time.perf_counter() - started) * 1000
        with self._lock:
            self._db.execute(
                "UPDATE espf_queue SET state = ?, attempts = attempts + 1, next_attempt_at = ?,"
                " last_status = ?, last_error = ? WHERE i_event = ?",
                (state, next_at, status, error, row["i_event"]),
            )
            self._db.execute(
                "INSERT INTO espf_attempts (i_event, attempted_at, duration_ms, http_status, error,"
                " outcome) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    row["i_event"],
                    datetime.now(UTC).isoformat(timespec="milliseconds"),
                    duration,
                    status,
                    error,
                    outcome,
                ),
            )
        if outcome == "retry":
            log.info(
                "espf event will be sent again", i_event=row["i_event"], status=status, error=error
            )
