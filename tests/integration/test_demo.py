"""`make run`'s command, `opennsps demo --once`, completes with zero drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import free_port


def test_the_demo_ends_with_the_hss_agreeing_with_portabilling(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "opennsps.cli",
            "demo",
            "--once",
            "--accounts",
            "60",
            "--lifecycle",
            "30",
            "--workdir",
            str(tmp_path / "demo"),
            "--gateway-port",
            str(free_port()),
            "--sandbox-port",
            str(free_port()),
            "--hss-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "60 agree, 0 drift, 0 could not be checked" in done.stdout
    assert "The HSS agrees with PortaBilling for every account." in done.stdout
    assert "rejected, 0 dead" in done.stdout and ", 0 rejected" in done.stdout
    assert "HSS" in done.stdout and "OK: 90" in done.stdout  # 60 loaded + 30 new accounts
    # The demo's processes are gone and their logs kept.
    assert (tmp_path / "demo" / "opennsps.log").stat().st_size > 0
