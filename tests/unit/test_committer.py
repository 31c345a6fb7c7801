"""Group commit semantics of both committers, with a recording batch writer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from opennsps.store.committer import (
    CommitterStopped,
    CommitTimedOut,
    LoopCommitter,
    RetryLater,
    ThreadCommitter,
)


class Recorder:
    def __init__(self, busy_times: int = 0) -> None:
        self.batches: list[list[int]] = []
        self.busy_times = busy_times
        self.lock = threading.Lock()

    def write(self, items: Sequence[int]) -> list[int | BaseException]:
        with self.lock:
            if self.busy_times:
                self.busy_times -= 1
                raise RetryLater
            self.batches.append(list(items))
        return [ValueError("bad") if item < 0 else item * 10 for item in items]


def make(kind: type, write: object, **options: object) -> Any:
    """Either committer; the loop committer times its own items out."""
    if kind is LoopCommitter:
        options.setdefault("timeout", 5.0)
    return kind(write, **options)


async def submit_all(
    committer: LoopCommitter[int, int] | ThreadCommitter[int, int], items: list[int]
) -> list[object]:
    futures = [committer.submit(i) for i in items]
    return await asyncio.gather(*futures, return_exceptions=True)


@pytest.mark.parametrize("kind", [LoopCommitter, ThreadCommitter])
def test_concurrent_items_share_batches_and_each_gets_its_own_outcome(kind: type) -> None:
    recorder = Recorder()
    committer = make(kind, recorder.write, max_batch=50)
    committer.start()
    try:
        results = asyncio.run(submit_all(committer, [1, 2, -3, 4] * 25))
    finally:
        committer.stop()
    assert results[:4] == [10, 20, results[2], 40]
    assert isinstance(results[2], ValueError)
    assert sum(len(b) for b in recorder.batches) == 100
    assert len(recorder.batches) < 100
    assert max(len(b) for b in recorder.batches) <= 50


@pytest.mark.parametrize("kind", [LoopCommitter, ThreadCommitter])
def test_a_busy_database_is_retried_not_failed(kind: type) -> None:
    recorder = Recorder(busy_times=3)
    committer = make(kind, recorder.write, max_batch=10)
    committer.start()
    try:
        assert asyncio.run(submit_all(committer, [1, 2, 3])) == [10, 20, 30]
    finally:
        committer.stop()


@pytest.mark.parametrize("kind", [LoopCommitter, ThreadCommitter])
def test_a_whole_batch_failure_answers_every_caller(kind: type) -> None:
    def broken(items: Sequence[int]) -> list[int]:
        raise OSError("disk gone")

    committer = make(kind, broken, max_batch=10)
    committer.start()
    try:
        results = asyncio.run(submit_all(committer, [1, 2, 3]))
    finally:
        committer.stop()
    assert all(isinstance(r, OSError) for r in results)


@pytest.mark.parametrize("kind", [LoopCommitter, ThreadCommitter])
def test_submit_after_stop_is_refused(kind: type) -> None:
    committer = make(kind, Recorder().write, max_batch=10)
    committer.start()
    committer.stop()

    async def late() -> None:
        committer.submit(1)

    with pytest.raises(CommitterStopped):
        asyncio.run(late())


def test_a_caller_that_gave_up_is_not_written() -> None:
    recorder = Recorder()
    committer: LoopCommitter[int, int] = LoopCommitter(recorder.write, max_batch=10, timeout=5)
    committer.start()

    async def scenario() -> int:
        abandoned = committer.submit(1)
        abandoned.cancel()
        return await committer.submit(2)

    assert asyncio.run(scenario()) == 20
    committer.stop()
    assert recorder.batches == [[2]]


@pytest.mark.parametrize("kind", [LoopCommitter, ThreadCommitter])
def test_one_refused_item_is_not_a_failed_batch(kind: type) -> None:
    observed: list[tuple[int, bool]] = []

    def observe(size: int, seconds: float, ok: bool) -> None:
        observed.append((size, ok))

    def broken(items: Sequence[int]) -> list[int]:
        raise OSError("disk gone")

    for writer, expected in [(Recorder().write, True), (broken, False)]:
        observed.clear()
        committer = make(kind, writer, max_batch=10, observe=observe)
        committer.start()
        try:
            asyncio.run(submit_all(committer, [1, -2, 3]))  # -2 is refused on its own
        finally:
            committer.stop()
        assert observed == [(3, expected)]


def test_an_item_kept_waiting_by_a_busy_database_times_out_unwritten() -> None:
    recorder = Recorder(busy_times=1_000_000)
    committer: LoopCommitter[int, int] = LoopCommitter(
        recorder.write, max_batch=10, timeout=0.2, max_retry_delay=0.02
    )
    committer.start()

    async def scenario() -> tuple[list[object], float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await submit_all(committer, [1, 2])
        return results, loop.time() - started

    try:
        results, waited = asyncio.run(scenario())
    finally:
        committer.stop()
    assert all(isinstance(r, CommitTimedOut) for r in results), results
    assert 0.2 <= waited < 1.0
    assert recorder.batches == []


def test_items_arriving_over_a_few_loop_iterations_share_one_transaction() -> None:
    recorder = Recorder()
    committer: LoopCommitter[int, int] = LoopCommitter(recorder.write, max_batch=100, timeout=5)
    committer.start()

    async def scenario() -> list[object]:
        futures = []
        for wave in range(3):  # as requests reach their commit in successive iterations
            futures += [committer.submit(wave * 10 + i) for i in range(5)]
            await asyncio.sleep(0)
        return list(await asyncio.gather(*futures))

    try:
        results = asyncio.run(scenario())
    finally:
        committer.stop()
    assert len(results) == 15
    assert [len(b) for b in recorder.batches] == [15]


def test_a_lone_item_is_written_after_one_idle_iteration() -> None:
    recorder = Recorder()
    committer: LoopCommitter[int, int] = LoopCommitter(recorder.write, max_batch=100, timeout=5)
    committer.start()

    async def scenario() -> int:
        future = committer.submit(7)
        for iteration in range(1, 4):
            await asyncio.sleep(0)
            if future.done():
                return iteration
        return -1

    try:
        iterations = asyncio.run(scenario())
    finally:
        committer.stop()
    assert iterations in (1, 2, 3), "the lone item was still waiting after three iterations"
    assert recorder.batches == [[7]]
