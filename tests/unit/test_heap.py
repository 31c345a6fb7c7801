"""The start-up heap freeze: what exists at start-up leaves the collector's view, what is
made afterwards is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from opennsps.ops.heap import freeze_startup_heap


class Node:
    def __init__(self) -> None:
        self.partner: Node | None = None


@pytest.fixture
def frozen_heap() -> Iterator[int]:
    # This test process is not the gateway: its objects go back to the collector after.
    try:
        yield freeze_startup_heap()
    finally:
        gc.unfreeze()


def test_objects_alive_at_start_up_are_frozen(frozen_heap: int) -> None:
    assert frozen_heap > 10_000  # pytest's and the project's modules at the least
    # A full collection no longer walks them (some frozen objects are freed meanwhile).
    assert len(gc.get_objects()) < gc.get_freeze_count() / 4


def test_cycles_made_after_start_up_are_still_collected(frozen_heap: int) -> None:
    first, second = Node(), Node()
    first.partner, second.partner = second, first
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None
