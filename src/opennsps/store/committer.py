"""Group commit: many concurrent writers, one transaction and one fsync per batch.

Each caller awaits an asyncio future that is settled only after the transaction holding
its item has committed, so durability does not cap throughput at the disk's fsync rate.
A whole batch is settled with one wake-up of the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchWriter = Callable[[Sequence[Item]], Sequence[Result | BaseException]]
BatchObserver = Callable[[int, float, bool], None]
_Entry = tuple[Item, "asyncio.Future[Result]", asyncio.AbstractEventLoop]


class CommitterStopped(RuntimeError):
    """The committer is not running; nothing was written."""


class _Stop:
    pass


_STOP = _Stop()


class GroupCommitter(Generic[Item, Result]):
    """A writer thread that drains a queue into batches and writes each in one call."""

    def __init__(
        self,
        write_batch: BatchWriter[Item, Result],
        *,
        max_batch: int,
        name: str = "group-committer",
        observe: BatchObserver | None = None,
    ) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._name = name
        self._observe = observe
        self._queue: queue.SimpleQueue[
            tuple[Item, asyncio.Future[Result], asyncio.AbstractEventLoop] | _Stop
        ] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._accepting = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._accepting = True
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything already submitted, then stop the thread."""
        with self._lock:
            if self._thread is None:
                return
            self._accepting = False
            self._queue.put(_STOP)
            thread, self._thread = self._thread, None
        thread.join(timeout)

    def submit(self, item: Item) -> asyncio.Future[Result]:
        """Queue an item; the returned future (of the running loop) settles after its commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        with self._lock:
            if not self._accepting:
                raise CommitterStopped("the store is closed")
            self._queue.put((item, future, loop))
        return future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if isinstance(first, _Stop):
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(following, _Stop):
                    stopping = True
                    break
                batch.append(following)
            self._commit(batch)

    def _commit(
        self, batch: list[tuple[Item, asyncio.Future[Result], asyncio.AbstractEventLoop]]
    ) -> None:
        # A caller that gave up (timed out) before its batch started is not written.
        live = [entry for entry in batch if not entry[1].cancelled()]
        if not live:
            return
        started = time.perf_counter()
        outcomes: Sequence[Result | BaseException]
        try:
            outcomes = self._write_batch([item for item, _, _ in live])
            ok = True
        except BaseException as exc:  # every caller must be answered
            outcomes = [exc] * len(live)
            ok = False
        if self._observe is not None:
            self._observe(len(live), time.perf_counter() - started, ok)
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Result], Result | BaseException]]
        ] = {}
        for (_, future, loop), outcome in zip(live, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, settled in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Result], Result | BaseException]]) -> None:
    for future, outcome in settled:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
