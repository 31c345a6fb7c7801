"""Setting a loop's asyncio.Event from any thread (API endpoints run in a thread pool)."""

from __future__ import annotations

import asyncio


def set_from_any_thread(event: asyncio.Event, loop: asyncio.AbstractEventLoop | None) -> None:
    """Set `event`, which belongs to `loop`; nothing when the loop is not running yet."""
    if event.is_set():
        return  # (racy from another thread; the waiter polls anyway)
    if loop is None or loop.is_closed():
        return
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        event.set()
    else:
        loop.call_soon_threadsafe(event.set)
