"""Running the sandbox's servers in one process: one signal handler stops them all, and
`--tls` gets a self-signed certificate made for the run."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import tempfile
from collections.abc import Iterator

import typer
import uvicorn

from opennsps.cli_support import err


class Server(uvicorn.Server):
    """A uvicorn server whose signals are handled once for all servers of the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_all(servers: list[Server]) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    await asyncio.gather(*(server.serve() for server in servers))


@contextlib.contextmanager
def certificate(enabled: bool) -> Iterator[tuple[str | None, str | None]]:
    if not enabled:
        yield None, None
        return
    with tempfile.TemporaryDirectory(prefix="opennsps-sandbox-tls-") as folder:
        cert, key = f"{folder}/cert.pem", f"{folder}/key.pem"
        try:
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "7",
                    "-subj",
                    "/CN=localhost",
                    "-keyout",
                    key,
                    "-out",
                    cert,
                ],
                check=True,
                capture_output=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            err.print(f"error: cannot make a self-signed certificate with openssl: {exc}")
            raise typer.Exit(1) from None
        yield cert, key
