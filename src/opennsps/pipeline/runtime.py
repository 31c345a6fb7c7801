"""The running pipeline of one process: worker, status sender, retention, queue figures."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import Engine

from opennsps import metrics
from opennsps.config import HandlerConfig, Settings
from opennsps.domain.retry import RetrySchedule
from opennsps.logging import get_logger
from opennsps.pipeline.dispatch import Dispatcher
from opennsps.pipeline.enrichment import Enrichment
from opennsps.pipeline.retention import RetentionLoop
from opennsps.pipeline.schedules import schedule_from
from opennsps.pipeline.status_sender import StatusSender, espf_clients
from opennsps.pipeline.store_calls import StoreCalls
from opennsps.pipeline.worker import Worker, worker_id
from opennsps.store.circuits import CircuitStore
from opennsps.store.deliveries import DeliveryQueue
from opennsps.store.engine import build_engine
from opennsps.store.handlers import HandlerStore
from opennsps.store.outbox import StatusOutbox
from opennsps.store.queries import Queries
from opennsps.store.replay import Replayer
from opennsps.store.statistics import refresh_statistics

log = get_logger("opennsps.pipeline")

QUEUE_FIGURES_SECONDS = 5.0
STATISTICS_SECONDS = 15.0


class Pipeline:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.owner = worker_id()
        self.handler_store = HandlerStore(engine)
        # The worker's own writes (claims, outcomes, sent reports) do not wait for the disk:
        # a power loss can only make work be done again. Everything else commits durably.
        self.work_engine = build_engine(settings.store, relaxed=True)
        self.queue = DeliveryQueue(self.work_engine)
        self.circuits = CircuitStore(engine)
        self.outbox = StatusOutbox(engine, work_engine=self.work_engine)
        self.queries = Queries(engine)
        self.replayer = Replayer(engine)
        self.enrichment = Enrichment(settings.ingress.sources)
        self._default_schedule = schedule_from(settings.pipeline.retry)
        self._schedules: dict[str, tuple[HandlerConfig, RetrySchedule]] = {}
        self.dispatcher = Dispatcher(self.enrichment, self.schedule_for)
        store_calls = StoreCalls(on_loop=engine.dialect.name == "sqlite")
        self.worker = Worker(
            settings.pipeline,
            self.handler_store,
            self.queue,
            self.dispatcher,
            self.circuits,
            single_process=engine.dialect.name == "sqlite",
            store_calls=store_calls,
            owner=self.owner,
            on_reports=lambda: self.status_sender.wake(),
        )
        self.status_sender = StatusSender(
            self.outbox, espf_clients(settings.ingress.sources), self.owner, store_calls=store_calls
        )
        self.retention = RetentionLoop(engine, settings.retention)
        self._loops: list[asyncio.Task[None]] = []

    def schedule_for(self, handler: HandlerConfig) -> RetrySchedule:
        if handler.retry is None:
            return self._default_schedule
        cached = self._schedules.get(handler.id)
        if cached is None or cached[0] != handler:
            cached = (handler, schedule_from(handler.retry))
            self._schedules[handler.id] = cached
        return cached[1]

    async def start(self) -> None:
        await self.worker.start()
        self.status_sender.start()
        self.retention.start()
        self._loops = [asyncio.create_task(self._queue_figures(), name="queue-figures")]
        if self.engine.dialect.name == "postgresql":
            self._loops.append(asyncio.create_task(self._statistics(), name="statistics"))

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await self.retention.stop()
        await self.worker.stop()
        await self.status_sender.stop()
        await self.enrichment.close()
        if self.work_engine is not self.engine:
            self.work_engine.dispose()

    def wake(self) -> None:
        self.worker.wake()
        self.status_sender.wake()

    def reload_handlers(self) -> None:
        """Handlers or the pause changed: the worker reads them before its next claim."""
        self.worker.reload()

    async def _queue_figures(self) -> None:
        while True:
            try:
                stats = await asyncio.to_thread(self.queries.stats)
                metrics.QUEUE_DEPTH.clear()
                for handler_id, states in stats["queue_depth"].items():
                    for state, count in states.items():
                        metrics.QUEUE_DEPTH.labels(handler_id, state).set(count)
                metrics.OLDEST_PENDING_AGE.set(stats["oldest_pending_age_seconds"] or 0)
                metrics.STATUS_OUTBOX_BACKLOG.set(await asyncio.to_thread(self.outbox.backlog))
            except Exception:
                log.exception("reading queue figures failed")
            await asyncio.sleep(QUEUE_FIGURES_SECONDS)

    async def _statistics(self) -> None:
        """Keep PostgreSQL's planner statistics of the work tables fresh (store/statistics.py)."""
        while True:
            try:
                analysed = await asyncio.to_thread(refresh_statistics, self.engine)
                if analysed:
                    log.info("planner statistics refreshed", tables=analysed)
            except Exception:
                log.exception("refreshing planner statistics failed; trying again later")
            await asyncio.sleep(STATISTICS_SECONDS)
