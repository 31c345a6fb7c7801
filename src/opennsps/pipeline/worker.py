"""The worker: claims due deliveries, runs their attempts concurrently, and records the
outcomes in batches (one transaction for many completions).

- Concurrency is bounded per handler (max_concurrency) and in total (max_in_flight).
- A claimed delivery is leased, and the lease is renewed while its attempt runs; a worker
  that dies leaves it to be taken over once the lease expires. With SQLite (one process
  by design) a restart takes over at once.
- Outcomes not yet written when the process dies are not lost work: their deliveries are
  still leased and go out again (at-least-once, with the same event_id).
- A handler whose circuit is open (domain/circuit.py) gets no attempts but one probe at a
  time; a rate-limited handler gets no more than its limit allows (both kept in the store,
  so shared by every process).
- Stopping gracefully stops claiming, lets in-flight attempts finish for a grace period,
  writes their outcomes, and hands the rest back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from opennsps import metrics
from opennsps.config import PipelineConfig
from opennsps.connectors.base import Connector
from opennsps.connectors.factory import build_connector
from opennsps.connectors.paced import PacedConnector
from opennsps.domain.circuit import CLOSED, Circuit, CircuitState, Signal
from opennsps.logging import get_logger
from opennsps.pipeline.dispatch import Dispatcher
from opennsps.pipeline.schedules import circuit_policy
from opennsps.pipeline.store_calls import StoreCalls
from opennsps.pipeline.wakeup import set_from_any_thread
from opennsps.store.circuits import CircuitStore
from opennsps.store.deliveries import ClaimedDelivery, Completion, DeliveryQueue
from opennsps.store.handlers import HandlerStore, StoredHandler

log = get_logger("opennsps.worker")

HANDLER_REFRESH_SECONDS = 1.0
EXPIRY_SECONDS = 30.0
CIRCUIT_GAUGE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
BUSY_IN_FLIGHT = 8
BUSY_FLUSH_DELAY_SECONDS = 0.005


Attempt = Literal["attempt", "probe", "expire"]


def worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class _ActiveHandler:
    stored: StoredHandler
    connector: Connector | None
    error: str | None


class Worker:
    def __init__(
        self,
        config: PipelineConfig,
        handler_store: HandlerStore,
        queue: DeliveryQueue,
        dispatcher: Dispatcher,
        circuits: CircuitStore,
        *,
        single_process: bool,
        store_calls: StoreCalls | None = None,
        owner: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_reports: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.handler_store = handler_store
        self.queue = queue
        self.dispatcher = dispatcher
        self.circuit_store = circuits
        self.circuits: dict[str, Circuit] = {}
        self.single_process = single_process
        self.db = store_calls or StoreCalls(on_loop=False)
        self.owner = owner or worker_id()
        # Told when recorded outcomes left status reports in the outbox (the sender then
        # sends them now rather than at its next poll).
        self.on_reports = on_reports
        self.clock = clock
        self.handlers: dict[str, _ActiveHandler] = {}
        self._closing: set[asyncio.Task[None]] = set()  # retired connectors closing later
        self.paused = False
        self._in_flight: dict[asyncio.Task[None], ClaimedDelivery] = {}
        self._in_flight_by_handler: Counter[str] = Counter()
        self._completions: list[Completion] = []
        self._wake = asyncio.Event()
        self._flush_wanted = asyncio.Event()
        self._running = False
        self._tasks: list[asyncio.Task[None]] = []
        self._refreshed_at = 0.0
        self._reaped_at = 0.0
        self._expired_at = 0.0
        self._probing: set[str] = set()
        self._renewed_at = 0.0
        self._rotation = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        self._loop = asyncio.get_running_loop()
        if self.single_process:
            taken = await self.db(self.queue.take_over_expired, self.clock(), any_lease=True)
            if taken:
                log.warning("took over deliveries left in flight by the last run", count=taken)
        await self._refresh_handlers()
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="worker-claim"),
            asyncio.create_task(self._flush_loop(), name="worker-flush"),
        ]
        log.info("worker started", owner=self.owner, handlers=sorted(self.handlers))

    async def stop(self) -> None:
        """Stop claiming; let in-flight attempts finish within the grace period."""
        if not self._running:
            return
        self._running = False
        self._wake.set()
        claim_task = self._tasks[0]
        with contextlib.suppress(asyncio.CancelledError):
            await claim_task
        if self._in_flight:
            _, pending = await asyncio.wait(
                list(self._in_flight), timeout=self.config.shutdown_grace
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._flush_wanted.set()
        flush_task = self._tasks[1]
        with contextlib.suppress(asyncio.CancelledError):
            await flush_task
        await self._write_completions()
        released = await self.db(self.queue.release, self.owner, self.clock())
        for active in self.handlers.values():
            if active.connector is not None:
                await active.connector.close()
        log.info("worker stopped", owner=self.owner, handed_back=released)

    def wake(self) -> None:
        """New work may be due (an event was stored, an outcome written, a replay asked).
        Safe to call from any thread."""
        set_from_any_thread(self._wake, self._loop)

    def reload(self) -> None:
        """Handlers or the pause changed in the store: read them again before the next
        claim, so a pause takes effect at once in this process."""
        self._refreshed_at = 0.0
        self.wake()

    # -- claiming ---------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._running:
            self._wake.clear()
            claimed_full = False
            try:
                if loop.time() - self._refreshed_at >= HANDLER_REFRESH_SECONDS:
                    await self._refresh_handlers()
                if loop.time() - self._renewed_at >= self.config.lease_seconds / 3:
                    self._renewed_at = loop.time()
                    await self._renew_leases()
                if loop.time() - self._reaped_at >= self.config.lease_seconds / 4:
                    self._reaped_at = loop.time()
                    taken = await self.db(self.queue.take_over_expired, self.clock())
                    if taken:
                        log.warning("took over deliveries whose lease expired", count=taken)
                if not self.paused:
                    claimed_full = await self._claim_round()
                    await self._probe_round()
                    if loop.time() - self._expired_at >= EXPIRY_SECONDS:
                        self._expired_at = loop.time()
                        await self._expiry_round()
            except Exception:
                log.exception("claiming deliveries failed; trying again shortly")
            if claimed_full:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_interval):
                    await self._wake.wait()

    async def _claim_round(self) -> bool:
        room = self.config.max_in_flight - len(self._in_flight)
        batch = min(room, self.config.claim_batch)
        # Under load, wait until a useful batch fits rather than claiming one or two at a
        # time (each claim is a transaction); when idle, claim at once.
        if batch <= 0 or (self._in_flight and batch < self.config.claim_batch // 4):
            return False
        limits = self._share(batch)
        if not limits:
            return False
        rates = {
            handler_id: rate
            for handler_id in limits
            if (rate := self.handlers[handler_id].stored.definition.rate_limit) is not None
        }
        now = self.clock()
        claimed = await self.db(
            self.queue.claim, self.owner, limits, now, now + self._lease(), rates
        )
        for delivery in claimed:
            self._start(delivery)
        return len(claimed) >= batch

    def _start(self, delivery: ClaimedDelivery, how: Attempt = "attempt") -> None:
        task = asyncio.create_task(self._run(delivery, how))
        self._in_flight[task] = delivery
        self._in_flight_by_handler[delivery.handler_id] += 1

    def _holding(self) -> list[tuple[str, Circuit]]:
        """The active handlers whose circuit holds their deliveries back."""
        return [
            (handler_id, self.circuits[handler_id])
            for handler_id, active in self.handlers.items()
            if active.stored.status == "enabled"
            and not active.stored.paused
            and self._held(handler_id, active)
        ]

    def _held(self, handler_id: str, active: _ActiveHandler) -> bool:
        circuit = self.circuits.get(handler_id)
        return circuit is not None and circuit.holding and active.stored.definition.circuit.enabled

    async def _probe_round(self) -> None:
        """Probe each open circuit whose probe is due, if this process wins the probe."""
        now = self.clock()
        for handler_id, circuit in self._holding():
            if handler_id in self._probing or circuit.probe_at is None or circuit.probe_at > now:
                continue
            stale = now - self._lease()
            if not await self.db(self.circuit_store.take_probe, handler_id, self.owner, now, stale):
                continue
            delivery = await self.db(
                self.queue.claim_probe, self.owner, handler_id, now, now + self._lease()
            )
            if delivery is None:
                await self.db(self.circuit_store.give_back_probe, handler_id, self.owner, now)
                continue
            log.info("probing an open circuit", handler=handler_id, delivery=delivery.id)
            self._probing.add(handler_id)
            self._start(delivery, "probe")

    async def _expiry_round(self) -> None:
        """Give up the deliveries that waited behind an open circuit past their schedule."""
        now = self.clock()
        for handler_id, _ in self._holding():
            give_up = self.dispatcher.schedule_for(
                self.handlers[handler_id].stored.definition
            ).give_up_after
            expired = await self.db(
                self.queue.claim_expired,
                self.owner,
                handler_id,
                now - give_up,
                self.config.claim_batch,
                now,
                now + self._lease(),
            )
            for delivery in expired:
                self._start(delivery, "expire")

    def _share(self, batch: int) -> dict[str, int]:
        """Split one claim batch between the handlers with room (and a closed circuit),
        starting with a different handler each round so that none is starved."""
        ready = [
            (handler_id, room)
            for handler_id, active in self.handlers.items()
            if active.stored.status == "enabled"
            and not active.stored.paused
            and not self._held(handler_id, active)
            and (room := self._room(handler_id, active.stored.definition.max_concurrency))
        ]
        if not ready:
            return {}
        self._rotation = (self._rotation + 1) % len(ready)
        limits: dict[str, int] = {}
        remaining = batch
        for handler_id, room in ready[self._rotation :] + ready[: self._rotation]:
            take = min(room, remaining)
            if take > 0:
                limits[handler_id] = take
                remaining -= take
        return limits

    def _room(self, handler_id: str, max_concurrency: int) -> int:
        """How many more of the handler's deliveries to claim now: none while it is busy
        and has less than a quarter of its concurrency free (each claim is a
        transaction: claiming one or two at every completion cost more than it gained)."""
        busy = self._in_flight_by_handler[handler_id]
        room = max_concurrency - busy
        return room if not busy or room >= max(1, max_concurrency // 4) else 0

    def _lease(self) -> timedelta:
        return timedelta(seconds=self.config.lease_seconds)

    async def _renew_leases(self) -> None:
        ids = [delivery.id for delivery in self._in_flight.values()]
        if ids:
            await self.db(self.queue.extend_leases, self.owner, ids, self.clock() + self._lease())

    async def _refresh_handlers(self) -> None:
        self._refreshed_at = asyncio.get_running_loop().time()
        stored = await self.db(self.handler_store.list)
        self.paused = await self.db(self.handler_store.paused)
        circuits = await self.db(self.circuit_store.all)
        current = {h.id: h for h in stored}
        for handler_id in list(self.handlers):
            if handler_id not in current:
                await self._retire(handler_id)
        for handler_id, handler in current.items():
            active = self.handlers.get(handler_id)
            if active is not None and active.stored.updated_at == handler.updated_at:
                continue
            if active is not None and active.stored.definition == handler.definition:
                active.stored = handler
                continue
            await self._retire(handler_id)
            try:
                connector: Connector | None = build_connector(handler.definition)
                if connector is not None and handler.definition.rate_limit is not None:
                    connector = PacedConnector(connector, handler.definition.rate_limit)
                error = None
            except Exception as exc:  # a bad definition must not stop the other handlers
                connector, error = None, f"the handler's connector cannot be built: {exc}"
                log.error("handler connector unusable", handler=handler_id, error=error)
            self.handlers[handler_id] = _ActiveHandler(handler, connector, error)
        self._circuits_now(circuits, everything=True)

    async def _retire(self, handler_id: str) -> None:
        active = self.handlers.pop(handler_id, None)
        if active is None or active.connector is None:
            return
        connector = active.connector
        if self._in_flight_by_handler[handler_id]:
            # Attempts still use it: close it once they are done.
            async def close_later() -> None:
                while self._in_flight_by_handler[handler_id]:
                    await asyncio.sleep(0.5)
                await connector.close()

            # Held until done: the event loop keeps only a weak reference to a task.
            closing = asyncio.get_running_loop().create_task(close_later())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        else:
            await connector.close()

    # -- attempts ---------------------------------------------------------------------

    async def _run(self, delivery: ClaimedDelivery, how: Attempt) -> None:
        try:
            active = self.handlers.get(delivery.handler_id)
            if active is None:
                active = await self._handler_now(delivery.handler_id)
            if how == "expire":
                completion = self.dispatcher.expire(
                    delivery, active.stored.definition, active.connector
                )
            else:
                completion = await self.dispatcher.attempt(
                    delivery,
                    active.stored.definition,
                    active.connector,
                    active.error,
                    probe=how == "probe",
                )
            self._observe(completion)
            self._completions.append(completion)
            self._flush_wanted.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The delivery stays leased and is taken over when the lease expires.
            log.exception("attempt failed unexpectedly", delivery=delivery.id)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.pop(task, None)
            self._in_flight_by_handler[delivery.handler_id] -= 1
            if how == "probe":
                self._probing.discard(delivery.handler_id)

    async def _handler_now(self, handler_id: str) -> _ActiveHandler:
        stored = await self.db(self.handler_store.get, handler_id)
        return _ActiveHandler(stored, None, f"handler {handler_id!r} is no longer active here")

    def _observe(self, completion: Completion) -> None:
        handler = completion.delivery.handler_id
        metrics.DELIVERIES.labels(handler, completion.attempt.outcome).inc()
        if completion.attempt.outcome == "delivered":
            seconds = (self.clock() - completion.delivery.received_at).total_seconds()
            metrics.END_TO_END_LATENCY.labels(handler).observe(max(seconds, 0.0))
        log.info(
            "delivery attempt",
            delivery=completion.delivery.id,
            event_id=completion.delivery.event_id,
            handler=handler,
            attempt=completion.delivery.attempts,
            outcome=completion.attempt.outcome,
            status_code=completion.attempt.status_code,
            duration_ms=round(completion.attempt.duration_ms, 1),
            error=completion.attempt.error,
            request_id=completion.delivery.request_id,
            unique_id=completion.delivery.unique_id,
        )

    # -- recording outcomes -----------------------------------------------------------

    async def _flush_loop(self) -> None:
        while self._running or self._completions:
            await self._flush_wanted.wait()
            if self._running and len(self._in_flight) >= BUSY_IN_FLIGHT:
                # Busy: gather a few milliseconds' worth of outcomes into one transaction.
                await asyncio.sleep(BUSY_FLUSH_DELAY_SECONDS)
            self._flush_wanted.clear()
            if not await self._write_completions():
                await asyncio.sleep(1.0)
                self._flush_wanted.set()
            if not self._running:
                return

    async def _write_completions(self) -> bool:
        batch, self._completions = self._completions, []
        if not batch:
            return True
        signals = self._circuit_signals(batch)
        policies = {
            handler_id: circuit_policy(self.handlers[handler_id].stored.definition.circuit)
            for handler_id in signals
            if handler_id in self.handlers
        }
        try:
            circuits = await self.db(
                self.queue.complete, self.owner, batch, self.clock(), signals, policies
            )
        except Exception:
            log.exception("recording delivery outcomes failed; will retry", count=len(batch))
            self._completions[:0] = batch
            return False
        self._circuits_now(circuits)
        self._wake.set()
        if self.on_reports is not None and any(c.report is not None for c in batch):
            self.on_reports()
        return True

    def _circuit_signals(self, batch: list[Completion]) -> dict[str, list[Signal]]:
        """What the batch says of each connector's health, leaving out successes of a
        handler whose circuit is closed with no failures (nothing would change)."""
        signals: dict[str, list[Signal]] = {}
        for completion in batch:
            signal = completion.health
            if signal is None:
                continue
            handler_id = completion.delivery.handler_id
            if signal.healthy and not signal.probe and self.circuits.get(handler_id) is None:
                continue
            signals.setdefault(handler_id, []).append(signal)
        return signals

    def _circuits_now(self, circuits: dict[str, Circuit], *, everything: bool = False) -> None:
        """Take in circuits read from the store (all of them, or those just changed)."""
        if not circuits and not everything:
            return  # an outcome batch that changed no circuit (the usual flush)
        for handler_id, circuit in circuits.items():
            before = self.circuits.get(handler_id, CLOSED)
            if circuit.state is not before.state:
                self._log_change(handler_id, before, circuit)
        known = circuits if everything else {**self.circuits, **circuits}
        # A closed circuit with no failures is the default: not kept.
        self.circuits = {h: c for h, c in known.items() if c.holding or c.failures}
        for handler_id in self.handlers:
            state = self.circuits.get(handler_id, CLOSED).state
            metrics.CIRCUIT_STATE.labels(handler_id).set(CIRCUIT_GAUGE[state])

    @staticmethod
    def _log_change(handler_id: str, before: Circuit, after: Circuit) -> None:
        if after.state is CircuitState.OPEN and before.state is CircuitState.CLOSED:
            metrics.CIRCUIT_OPENED.labels(handler_id).inc()
            log.warning(
                "circuit opened: the handler's deliveries wait for a probe to succeed",
                handler=handler_id,
                failures=after.failures,
                last_error=after.last_error,
                next_probe_at=after.probe_at.isoformat() if after.probe_at else None,
            )
        elif after.state is CircuitState.CLOSED:
            log.info("circuit closed: the handler's backlog goes out now", handler=handler_id)
