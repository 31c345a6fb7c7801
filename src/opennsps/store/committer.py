"""Group commit: many concurrent requests, one transaction (one fsync) per batch.

Each caller awaits an asyncio future that settles only after the transaction holding its
item has committed, so durability does not cap throughput at the disk's fsync rate.

Two ways to run the writes, same contract:
- LoopCommitter writes on the event loop itself: every item submitted during one loop
  iteration goes into one transaction at the end of it. For SQLite on a local disk this
  avoids the cost of a second thread contending for the GIL. A batch that finds the
  database locked is not waited for on the loop; it is retried with backoff.
- ThreadCommitter writes from a dedicated thread, for a database across the network
  (PostgreSQL) where the wait for the server must not stall the loop.
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

BatchObserver = Callable[[int, float, bool], None]
GATHER_ITERATIONS = 3


class CommitterStopped(RuntimeError):
    """The committer is not running; nothing was written."""


class CommitTimedOut(Exception):
    """The item was not committed within the committer's timeout; it was not written."""


class RetryLater(Exception):
    """Raised by a batch writer when the database is busy: the batch is tried again."""


def _run_batch(
    write_batch: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
    items: Sequence[Item],
    observe: BatchObserver | None,
) -> Sequence[Result | BaseException]:
    """Write one batch; RetryLater propagates, any other failure answers every item.

    A batch is observed as failed only when its transaction failed as a whole; one item
    refused inside a committed batch is that item's answer, not a store failure.
    """
    started = time.perf_counter()
    try:
        outcomes = write_batch(items)
        ok = True
    except RetryLater:
        raise
    except BaseException as exc:  # every caller must be answered
        outcomes = [exc] * len(items)
        ok = False
    if observe is not None:
        observe(len(items), time.perf_counter() - started, ok)
    return outcomes


def _settle(settled: list[tuple[asyncio.Future[Result], Result | BaseException]]) -> None:
    for future, outcome in settled:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class LoopCommitter(Generic[Item, Result]):
    """Writes on the event loop, one transaction per few loop iterations' worth of items.

    Under load, requests reach their commit over several loop iterations, so a batch is
    written once an iteration brings no new item, or after GATHER_ITERATIONS iterations,
    or when it is full; an item alone waits one idle iteration (microseconds), or none
    when the previous transaction held one item too. Fewer,
    fuller transactions mean fewer fsyncs: on bench/ingest this cut the database's share
    of the work by a fifth.

    An item is only ever kept waiting by a busy database's retries, so the committer
    times items out itself (CommitTimedOut) when it retries, instead of each caller
    arming a timer of its own.
    """

    def __init__(
        self,
        write_batch: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        *,
        max_batch: int,
        timeout: float,
        observe: BatchObserver | None = None,
        first_retry_delay: float = 0.001,
        max_retry_delay: float = 0.025,
    ) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._timeout = timeout
        self._observe = observe
        self._first_retry_delay = first_retry_delay
        self._max_retry_delay = max_retry_delay
        self._retry_delay = first_retry_delay
        # (item, its caller's future, the loop time by which it must be committed)
        self._pending: list[tuple[Item, asyncio.Future[Result], float]] = []
        self._flush_handle: asyncio.Handle | None = None
        self._gathered = 0  # iterations the waiting batch has been gathering
        self._seen = 0  # how many items waited at the last of them
        self._last_batch = 0  # how many items the last transaction wrote
        self._running = False

    def start(self) -> None:
        self._running = True

    def stop(self, timeout: float = 30.0) -> None:
        self._running = False
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        waiting, self._pending = self._pending, []
        for _, future, _ in waiting:
            if not future.done():
                settled: list[tuple[asyncio.Future[Result], Result | BaseException]] = [
                    (future, CommitterStopped("the store is closed"))
                ]
                future.get_loop().call_soon_threadsafe(_settle, settled)

    def submit(self, item: Item) -> asyncio.Future[Result]:
        if not self._running:
            raise CommitterStopped("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future, loop.time() + self._timeout))
        if self._flush_handle is None:
            self._flush_handle = loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_handle = None
        waiting = len(self._pending)
        # A lone item after a lone item (requests arriving one by one, e.g. while the
        # pipeline keeps the loop busy) is written at once: gathering would only add loop
        # iterations to its answer's latency.
        sparse = waiting == 1 and self._last_batch <= 1
        if (
            not sparse
            and self._seen < waiting < self._max_batch
            and self._gathered < GATHER_ITERATIONS
        ):
            self._gathered += 1
            self._seen = waiting
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)
            return
        self._gathered = self._seen = 0
        self._expire()
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        if not batch:
            return
        try:
            outcomes = _run_batch(self._write_batch, [i for i, _, _ in batch], self._observe)
        except RetryLater:
            self._pending[:0] = batch
            self._schedule(self._retry_delay)
            self._retry_delay = min(self._retry_delay * 2, self._max_retry_delay)
            return
        self._retry_delay = self._first_retry_delay
        self._last_batch = len(batch)
        _settle(
            [(future, outcome) for (_, future, _), outcome in zip(batch, outcomes, strict=True)]
        )
        if self._pending:
            self._schedule(0)

    def _expire(self) -> None:
        """Drop the items whose callers gave up; time out those past their deadline."""
        now = asyncio.get_running_loop().time()
        kept: list[tuple[Item, asyncio.Future[Result], float]] = []
        late: list[tuple[asyncio.Future[Result], Result | BaseException]] = []
        for entry in self._pending:
            if entry[1].cancelled():
                continue
            if entry[2] < now:
                late.append((entry[1], CommitTimedOut(f"not committed within {self._timeout:g} s")))
            else:
                kept.append(entry)
        self._pending = kept
        _settle(late)

    def _schedule(self, delay: float) -> None:
        if self._flush_handle is not None or not self._running:
            return
        loop = asyncio.get_running_loop()
        if delay:
            self._flush_handle = loop.call_later(delay, self._flush)
        else:
            self._flush_handle = loop.call_soon(self._flush)


class _Stop:
    pass


_STOP = _Stop()


class ThreadCommitter(Generic[Item, Result]):
    """A writer thread that drains a queue into batches; a batch settles with one wake-up."""

    def __init__(
        self,
        write_batch: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        *,
        max_batch: int,
        name: str = "store-group-commit",
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
        while True:
            try:
                outcomes = _run_batch(
                    self._write_batch, [item for item, _, _ in live], self._observe
                )
                break
            except RetryLater:
                time.sleep(0.01)
                live = [entry for entry in live if not entry[1].cancelled()]
                if not live:
                    return
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Result], Result | BaseException]]
        ] = {}
        for (_, future, loop), outcome in zip(live, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, settled in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, settled)
