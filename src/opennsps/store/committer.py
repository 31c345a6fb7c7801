"""Group commit: many concurrent writers, one transaction and one fsync per batch.

Each caller is answered only after the transaction holding its item has committed, so
durability does not cap throughput at the disk's fsync rate.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchWriter = Callable[[Sequence[Item]], Sequence[Result | BaseException]]
BatchObserver = Callable[[int, float, bool], None]


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
        self._queue: queue.SimpleQueue[tuple[Item, Future[Result]] | _Stop] = queue.SimpleQueue()
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

    def submit(self, item: Item) -> Future[Result]:
        future: Future[Result] = Future()
        with self._lock:
            if not self._accepting:
                raise CommitterStopped("the store is closed")
            self._queue.put((item, future))
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

    def _commit(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        # A caller that gave up (timed out) before its batch started is not written.
        live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
        if not live:
            return
        started = time.perf_counter()
        try:
            results = self._write_batch([item for item, _ in live])
        except BaseException as exc:
            self._report(len(live), started, ok=False)
            for _, future in live:
                future.set_exception(exc)
            return
        self._report(len(live), started, ok=True)
        for (_, future), result in zip(live, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _report(self, size: int, started: float, *, ok: bool) -> None:
        if self._observe is not None:
            self._observe(size, time.perf_counter() - started, ok)
