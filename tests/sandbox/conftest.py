from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opennsps.sandbox.app import SandboxSettings, create_sandbox_app
from opennsps.sandbox.eventsender import SenderConfig
from tests.support import running

API_LOGIN, API_PASSWORD, API_TOKEN = "opennsps", "sandbox-password", "sandbox-token"


@dataclass
class Receiver:
    """An application that ESPF posts to: records every request, answers as told."""

    answers: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            self.received.append({"headers": dict(request.headers), "body": body})
            if self.delays:
                await asyncio.sleep(self.delays.pop(0))
            status = self.answers.pop(0) if self.answers else 200
            return Response(b"{}", status_code=status, media_type="application/json")

        return Starlette(routes=[Route("/events", endpoint, methods=["POST"])])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    recorder = Receiver()
    with running(recorder.app()) as url:
        recorder.url = f"{url}/events"
        yield recorder


@dataclass
class SandboxServer:
    url: str
    app: Starlette

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


def start_sandbox(dataset_file: Path, **sender: Any) -> Iterator[SandboxServer]:
    settings = SandboxSettings(dataset=dataset_file, sender=SenderConfig(**sender))
    app = create_sandbox_app(settings)
    with running(app) as url:
        yield SandboxServer(url, app)


@pytest.fixture
def sandbox(dataset_file: Path) -> Iterator[SandboxServer]:
    yield from start_sandbox(dataset_file)
