"""The guard that stops processes a test leaves behind (tests/conftest.py) sees them."""

from __future__ import annotations

import subprocess
import sys

from tests.pipeline.harness import wait_for
from tests.support import child_processes, stop_process


def test_a_running_child_is_seen_and_a_stopped_one_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert "time.sleep(60)" in child_processes()[child.pid]
    finally:
        stop_process(child)
    wait_for(lambda: child.pid not in child_processes(), what="the child gone")
