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


def test_the_demo_keeps_serving_until_ctrl_c_then_stops_everything(tmp_path: Path) -> None:
    import signal
    import time

    import httpx

    ports = [free_port(), free_port(), free_port()]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opennsps.cli",
            "demo",
            "--accounts",
            "10",
            "--lifecycle",
            "3",
            "--workdir",
            str(tmp_path / "demo"),
            "--gateway-port",
            str(ports[0]),
            "--sandbox-port",
            str(ports[1]),
            "--hss-port",
            str(ports[2]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen = []
        deadline = time.monotonic() + 180
        for line in process.stdout:  # bounded: the process ends or the deadline passes
            seen.append(line)
            if "Still serving" in line or time.monotonic() > deadline:
                break
        assert "Still serving" in "".join(seen), "".join(seen)
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/health").status_code == 200
        # The console it points at takes the password it wrote down.
        assert f"127.0.0.1:{ports[0]}/console/ (user admin" in "".join(seen)
        password = (tmp_path / "demo" / "console-password").read_text().strip()
        assert password not in "".join(seen)
        login = httpx.post(
            f"http://127.0.0.1:{ports[0]}/console/login",
            json={"username": "admin", "password": password},
        )
        assert login.status_code == 200 and login.json()["role"] == "admin"
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for port in ports:  # the sandbox, the HSS and the gateway are gone too
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        except httpx.ConnectError:
            continue
        raise AssertionError(f"something still answers on port {port}")
