"""The real PyHSS 2.0.0 on 127.0.0.1, for tests that must not trust the stand-in.

The unmodified source tarball in ../shared/vendor/pyhss/ is unpacked into .cache/pyhss/ and
given a virtualenv of its own, built by uv from PyPI with PyHSS's own pins (never mixed with
OpenNSPS's environment); both are reused while the tarball and the pins stay the same.

Each `real_pyhss()` runs a private redis-server on an ephemeral port (PyHSS 2.0.0 always
uses Redis database 0, so sharing the machine's Redis could mix its keys with anything else
that uses it), a fresh SQLite database created by PyHSS's own schema code, and PyHSS's API
service (services/apiService.py) on an ephemeral port with provisioning locked by a key.
Whatever fails, every process it started is stopped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.support import REPO, free_port, uv_command

VENDOR = REPO.parent / "shared" / "vendor" / "pyhss"
TARBALL = VENDOR / "pyhss-2.0.0-47a3a16.tar.gz"
REQUIREMENTS = VENDOR / "requirements-api.txt"
CACHE = REPO / ".cache" / "pyhss"
VERSION = "2.0.0"
# PyHSS's PostgreSQL driver (its SQLAlchemy URL is postgresql+psycopg2), which its API
# requirements leave out; installed beside its pins.
POSTGRES_DRIVER = "psycopg2-binary==2.9.13"
START_TIMEOUT = 90.0
BUILD_TIMEOUT = 900.0
API_LOG = "pyhss-api.log"

# PyHSS's own code, run inside its environment: create the schema (what its HSS service does
# at start), or record an attach as its Diameter service does on an Update-Location-Request.
CREATE_SCHEMA = """
import sys; sys.path.insert(0, "lib")
from pyhss_config import config
from logtool import LogTool
import database
database.Database(LogTool(config), main_service=True)
"""
UPDATE_SERVING_MME = """
import sys; sys.path.insert(0, "lib")
from pyhss_config import config
from logtool import LogTool
import database
imsi, mme, realm, peer = sys.argv[1:5]
database.Database(LogTool(config)).Update_Serving_MME(imsi, mme, realm, peer, propagate=False)
"""


def _fingerprint() -> str:
    digest = hashlib.sha256(TARBALL.read_bytes())
    digest.update(REQUIREMENTS.read_bytes())
    digest.update(POSTGRES_DRIVER.encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()[:16]


def installed() -> Path:
    """PyHSS's source tree with its virtualenv beside it (built once, then reused)."""
    if not TARBALL.exists():
        pytest.skip(f"the real PyHSS is not at {TARBALL}")
    home = CACHE / _fingerprint()
    if (home / "ready").exists():
        return home
    building = CACHE / f"building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        with tarfile.open(TARBALL) as archive:
            archive.extractall(building, filter="data")
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
        }
        venv = building / "venv"
        for command in (
            [uv_command(), "venv", "--quiet", "--python", sys.executable, str(venv)],
            [
                uv_command(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                "-r", str(REQUIREMENTS), POSTGRES_DRIVER,
            ],
        ):  # fmt: skip
            subprocess.run(command, check=True, env=env, timeout=BUILD_TIMEOUT)
        (building / "ready").write_text(VERSION)
        shutil.rmtree(home, ignore_errors=True)
        building.rename(home)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return home


@dataclass
class RealPyHss:
    """A running PyHSS API: its URL, its Provisioning-Key and its own Python for its code."""

    url: str
    provisioning_key: str
    source: Path
    python: Path
    config: Path
    workdir: Path

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Provisioning-Key": self.provisioning_key}, timeout=30
        )

    def subscribers(self) -> dict[str, dict[str, Any]]:
        """IMSI → subscriber, read over PyHSS's own API."""
        with self.client() as api:
            rows = api.get("/subscriber/list", params={"page": 0, "page_size": 100000}).json()
        return {row["imsi"]: row for row in rows}

    def auc_by_imsi(self, imsi: str) -> dict[str, Any] | None:
        with self.client() as api:
            found: dict[str, Any] | None = api.get(f"/auc/imsi/{imsi}").json()
        return found

    def attach(self, imsi: str, mme: str = "mme01.epc.example", realm: str = "epc.example") -> None:
        """Record the subscriber as attached to an MME, through PyHSS's own Update_Serving_MME."""
        self.run_own(UPDATE_SERVING_MME, imsi, mme, realm, f"{mme};hss01")

    def log(self) -> str:
        """What PyHSS's API service printed so far."""
        return (self.workdir / API_LOG).read_text(errors="replace")

    def run_own(self, code: str, *args: str) -> None:
        subprocess.run(
            [str(self.python), "-c", code, *args],
            cwd=self.source,
            env=_pyhss_env(self.config),
            check=True,
            capture_output=True,
            timeout=120,
        )


def _pyhss_env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    return {
        **env,
        "PYHSS_CONFIG": str(config),
        "PYHSS_LOG_STDOUT_NO_TIMESTAMP": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _database(workdir: Path, postgres_url: str | None) -> dict[str, Any]:
    if postgres_url is None:
        return {"db_type": "sqlite", "database": str(workdir / "hss.db")}
    url = urlsplit(postgres_url)
    return {
        "db_type": "postgresql",
        "server": f"{url.hostname}:{url.port or 5432}",
        "username": url.username or "postgres",
        "password": url.password or "",
        "database": url.path.lstrip("/"),
    }


def _write_config(
    source: Path, workdir: Path, ports: tuple[int, int], key: str, postgres_url: str | None
) -> Path:
    api_port, redis_port = ports
    config: dict[str, Any] = yaml.safe_load((source / "config.yaml").read_text())
    config["hss"].update(lock_provisioning=True, provisioning_key=key)
    config["api"].update(bind_ip="127.0.0.1", bind_port=api_port)
    config["database"] = _database(workdir, postgres_url)
    config["redis"].update(host="127.0.0.1", port=redis_port, connectionType="tcp")
    config["benchmarking"]["enabled"] = False
    config["logging"]["level"] = "WARNING"
    config["logging"]["logfiles"] = {
        name: str(workdir / f"{name}.log") for name in config["logging"]["logfiles"]
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(15)


def _started(stack: ExitStack, command: list[str], log: Path, **kwargs: Any) -> Any:
    output = stack.enter_context(log.open("ab"))
    process = subprocess.Popen(
        command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
    )
    stack.callback(_stop, process)
    return process


def _wait(ready: Any, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        try:
            if ready():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start in {START_TIMEOUT:g} s: {log.read_text()[-2000:]}")


def _redis_answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


@contextmanager
def real_pyhss(
    workdir: Path, provisioning_key: str, postgres_url: str | None = None
) -> Iterator[RealPyHss]:
    """PyHSS's API service with an empty database, its APNs `internet` (1) and `ims` (2).
    The database is SQLite in `workdir`, or the (empty) PostgreSQL database given."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.fail("redis-server is missing: `make test` installs the Debian package")
    home = installed()
    source, python = home / "pyhss", home / "venv" / "bin" / "python"
    workdir.mkdir(parents=True, exist_ok=True)
    api_port, redis_port = free_port(), free_port()
    config = _write_config(source, workdir, (api_port, redis_port), provisioning_key, postgres_url)
    with ExitStack() as stack:
        redis_log = workdir / "redis.log"
        redis = _started(
            stack,
            [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            redis_log,
        )  # fmt: skip
        _wait(lambda: _redis_answers(redis_port), redis, "redis-server", redis_log)
        hss = RealPyHss(
            f"http://127.0.0.1:{api_port}",
            provisioning_key,
            source,
            python,
            config,
            workdir,
        )
        hss.run_own(CREATE_SCHEMA)
        api_log = workdir / API_LOG
        api = _started(
            stack,
            [str(python), "services/apiService.py"],
            api_log,
            cwd=source,
            env=_pyhss_env(config),
        )
        _wait(
            lambda: httpx.get(f"{hss.url}/apn/list", timeout=2).status_code == 200,
            api,
            "PyHSS's API service",
            api_log,
        )
        with hss.client() as client:
            for apn in (
                {"apn": "internet", "apn_ambr_dl": 100000, "apn_ambr_ul": 50000},
                {"apn": "ims", "apn_ambr_dl": 128, "apn_ambr_ul": 128},
            ):
                client.put("/apn/", json=apn).raise_for_status()
        yield hss
