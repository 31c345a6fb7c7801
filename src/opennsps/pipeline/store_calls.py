"""How the pipeline's loops call the store.

On SQLite the calls run on the event loop itself, like the ingress commits: they are
short (no fsync, see store.engine.build_engine) and, on one thread, never collide with
the ingress writer nor hand the GIL back and forth with it. A write that finds the lock
held is tried again after 1 ms, doubling up to 25 ms, without blocking the loop.
On PostgreSQL the calls run in a thread: a round trip to the server must not stall the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from opennsps.store.engine import WriterBusy

P = ParamSpec("P")
R = TypeVar("R")

FIRST_RETRY_SECONDS = 0.001
MAX_RETRY_SECONDS = 0.025


class StoreCalls:
    def __init__(self, *, on_loop: bool) -> None:
        self.on_loop = on_loop

    async def __call__(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if not self.on_loop:
            return await asyncio.to_thread(fn, *args, **kwargs)
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                return fn(*args, **kwargs)
            except WriterBusy:
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
