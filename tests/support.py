"""Helpers shared by the tests: a real uvicorn server in a thread, ESPF request builders."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

from opennsps.config import Settings

REPO = Path(__file__).resolve().parents[1]

BASIC_USER, BASIC_PASSWORD = "username", "secret"
CUSTOM_TYPE, CUSTOM_CREDENTIALS = "Plain", "passexample"
SIGNATURE_KEYS = {"test": "signature", "next": "rotated-signature-key"}
BEARER_KEYS = ["superkey-superkey-superkey-32byt", "rotated-bearer-key-rotated-32byte"]
BEARER_I_ENV = 3


def settings_for(store_url: str, **store: Any) -> Settings:
    """Settings with one source per authentication scheme, as the tests use them."""
    return Settings.model_validate(
        {
            "store": {"url": store_url, **store},
            "ingress": {
                "sources": {
                    "default": {
                        "i_env": 1,
                        "auth": {"username": BASIC_USER, "password": BASIC_PASSWORD},
                    },
                    "custom": {
                        "auth": {
                            "scheme": "custom",
                            "auth_type": CUSTOM_TYPE,
                            "credentials": CUSTOM_CREDENTIALS,
                        }
                    },
                    "signed": {"i_env": 2, "auth": {"scheme": "signature", "keys": SIGNATURE_KEYS}},
                    "jwt": {
                        "i_env": BEARER_I_ENV,
                        "auth": {"scheme": "bearer", "keys": BEARER_KEYS},
                    },
                }
            },
        }
    )


def basic_header(user: str = BASIC_USER, password: str = BASIC_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def signature_header(
    key_id: str = "test", key: str = SIGNATURE_KEYS["test"], at: float | None = None
) -> dict[str, str]:
    """Appendix A: HMAC-SHA1 of the Date header's value with the key, base64-encoded."""
    date = formatdate(at if at is not None else time.time(), usegmt=True)
    digest = hmac.new(key.encode(), date.encode(), hashlib.sha1).digest()
    signature = base64.b64encode(digest).decode()
    return {
        "Date": date,
        "Authorization": (
            f'Signature keyId="{key_id}",algorithm="hmac-sha1",signature="{signature}"'
        ),
    }


def event_body(
    i_event: int | str, event_type: str = "Subscriber/Created", **variables: Any
) -> dict[str, Any]:
    if not variables and event_type.split("/")[0] in {"Subscriber", "Account", "SIM"}:
        variables = {"i_account": 1000889}
    return {"event_type": event_type, "variables": {**variables, "i_event": i_event}}


class ThreadedServer:
    """A real uvicorn server on 127.0.0.1 with an ephemeral port, run in a thread."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)


@contextmanager
def running(app: ASGIApp) -> Iterator[str]:
    server = ThreadedServer(app)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def stop_process(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Terminate a child process, kill it if it does not end within `timeout`."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def uv_command() -> str:
    """The uv that `make test` bootstrapped (or one on the PATH)."""
    import pytest

    for candidate in (REPO / ".tools" / "bin" / "uv", Path(sys.executable).parent / "uv"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed: run the tests through `make test`, which installs it")
    return found


def child_processes() -> dict[int, str]:
    """This process's living children (not zombies): pid → command line."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with contextlib.suppress(OSError):
            found.update(int(pid) for pid in (task / "children").read_text().split())
    alive = {}
    for pid in found:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive[pid] = command.replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    return alive


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class GatewayProcess:
    """`opennsps serve` as a child process, its stdout (JSON log lines) kept in a file."""

    def __init__(
        self,
        config_file: Path,
        log_file: Path,
        env: dict[str, str] | None = None,
        tls_certificate: Path | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        scheme = "https" if tls_certificate else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        # With TLS, the gateway's own certificate is the one to trust.
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(tls_certificate)) if tls_certificate else True
        )
        self._log = log_file.open("ab")
        self.process = subprocess.Popen(
            [
                *(command or [sys.executable, "-m", "opennsps.cli"]),
                "serve",
                "-c",
                str(config_file),
                "--port",
                str(self.port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=config_file.parent,
        )
        try:
            self.wait_ready()
        except BaseException:
            self.kill()  # a gateway that never became ready is not left running
            self._log.close()
            raise

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"opennsps serve exited with {self.process.returncode}")
            try:
                answer = httpx.get(f"{self.url}/ready", timeout=1, verify=self.verify)
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("opennsps serve did not become ready")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


CONTRACT = REPO.parent / "shared" / "reference" / "nsps-connector-openapi.json"


def contract_validator(schema: str) -> Any:
    """A validator for one schema of the NSPS connector contract (skips the test when the
    contract is not beside the repository)."""
    import json

    import jsonschema
    import pytest

    if not CONTRACT.exists():
        pytest.skip(f"the connector contract is not at {CONTRACT}")
    components = json.loads(CONTRACT.read_text())["components"]
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": components}
    )
