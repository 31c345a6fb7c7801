"""Make sure the local PostgreSQL server answers on 127.0.0.1:5432, starting it if needed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST, PORT = "127.0.0.1", 5432
WAIT_SECONDS = 30


def answers(host: str = HOST, port: int = PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def start_local_cluster() -> None:
    versions = (
        sorted(p.name for p in Path("/etc/postgresql").glob("*"))
        if Path("/etc/postgresql").is_dir()
        else []
    )
    if not versions or shutil.which("pg_ctlcluster") is None:
        raise SystemExit(
            "PostgreSQL is not running on 127.0.0.1:5432 and no local cluster was found; "
            "install it (apt-get install postgresql) or set TEST_POSTGRES_URL"
        )
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
    )


def ensure() -> None:
    if os.environ.get("TEST_POSTGRES_URL") or answers():
        return
    print("PostgreSQL is down; starting the local cluster", file=sys.stderr)
    start_local_cluster()
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if answers():
            return
        time.sleep(0.5)
    raise SystemExit(f"PostgreSQL did not come up on {HOST}:{PORT} within {WAIT_SECONDS} s")


if __name__ == "__main__":
    ensure()
