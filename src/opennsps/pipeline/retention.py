"""The background purge of history older than `retention.days`."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from opennsps.config import RetentionConfig
from opennsps.logging import get_logger
from opennsps.store.retention import purge_batch

log = get_logger("opennsps.retention")

PAUSE_BETWEEN_BATCHES = 0.05


async def purge_old(engine: Engine, config: RetentionConfig, now: datetime | None = None) -> int:
    """Purge in batches until nothing older is left; yields to other work between batches."""
    before = (now or datetime.now(UTC)) - timedelta(days=config.days)
    total = 0
    while True:
        removed = await asyncio.to_thread(purge_batch, engine, before, config.batch_size)
        total += removed
        if removed == 0:
            return total
        await asyncio.sleep(PAUSE_BETWEEN_BATCHES)


class RetentionLoop:
    def __init__(self, engine: Engine, config: RetentionConfig) -> None:
        self.engine = engine
        self.config = config
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                removed = await purge_old(self.engine, self.config)
                if removed:
                    log.info("purged history", rows=removed, older_than_days=self.config.days)
            except Exception:
                log.exception("purging history failed; trying again at the next interval")
            await asyncio.sleep(self.config.interval_seconds)
