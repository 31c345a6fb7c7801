"""The pipeline under test, wired as in production over real HTTP:
sandbox EventSender → OpenNSPS ingress → store → worker (enriching from the sandbox's
PortaBilling API) → a connector test server; statuses → the sandbox's ESPF API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opennsps.app import create_app
from opennsps.config import Settings
from opennsps.sandbox.app import SandboxSettings, create_sandbox_app
from opennsps.sandbox.eventsender import SenderAuth, SenderConfig
from tests.support import BASIC_PASSWORD, BASIC_USER, running

API_LOGIN, API_PASSWORD = "opennsps", "sandbox-password"
CONNECTOR_TOKEN = "connector-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"
OPERATOR_TOKEN = "operator-token-0123456789"
VIEWER_TOKEN = "viewer-token-0123456789"
FAST_RETRY = {
    "fast_attempts": 5,
    "fast_first_seconds": 0.2,
    "fast_max_seconds": 0.5,
    "slow_steps_seconds": [0.5],
    "give_up_after_seconds": 3600,
    "jitter": 0,
}

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class ConnectorServer:
    """An NSPS connector: records every request and answers as the test decides.

    `decide(body)` returns (status, headers, body); the default is 200 `{}`. `delay`
    seconds pass before answering. It also notes when one event was in flight twice.
    """

    decide: Callable[[dict[str, Any]], Answer] | None = None
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    in_flight: set[tuple[str, str]] = field(default_factory=set)
    overlaps: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            body = orjson.loads(await request.body())
            key = (body["event_id"], body.get("handler_id") or "")
            if key in self.in_flight:
                self.overlaps.append(key)
            self.in_flight.add(key)
            self.received.append(
                {"headers": dict(request.headers), "body": body, "at": time.time()}
            )
            try:
                if self.delay:
                    await asyncio.sleep(self.delay)
                status, headers, content = self.decide(body) if self.decide else (200, {}, b"{}")
            finally:
                self.in_flight.discard(key)
            return Response(
                content, status_code=status, headers=headers, media_type="application/json"
            )

        async def health(_: Request) -> Response:
            return Response(b'{"status":"Healthy"}', media_type="application/json")

        return Starlette(
            routes=[Route("/events", endpoint, methods=["POST"]), Route("/health", health)]
        )

    def bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.received]


@contextmanager
def connector_server(**kwargs: Any) -> Iterator[ConnectorServer]:
    server = ConnectorServer(**kwargs)
    with running(server.app()) as url:
        server.url = f"{url}/events"
        yield server


def http_handler(
    url: str, handler_id: str = "hss", events: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "id": handler_id,
        "name": f"{handler_id} connector",
        "events": events or ["*"],
        "type": "http",
        "http": {"url": url, "token": CONNECTOR_TOKEN, "timeout": 5},
        "retry": FAST_RETRY,
        **extra,
    }


def gateway_settings(
    store_url: str,
    sandbox_url: str,
    handlers: list[dict[str, Any]],
    **pipeline: Any,
) -> Settings:
    return Settings.model_validate(gateway_config(store_url, sandbox_url, handlers, **pipeline))


def gateway_config(
    store_url: str,
    sandbox_url: str,
    handlers: list[dict[str, Any]],
    **pipeline: Any,
) -> dict[str, Any]:
    """The configuration file's content (as a mapping) for a gateway wired to the sandbox."""
    return {
        "store": {"url": store_url},
        "ingress": {
            "sources": {
                "default": {
                    "i_env": 1,
                    "auth": {"username": BASIC_USER, "password": BASIC_PASSWORD},
                    "portabilling": {
                        "url": sandbox_url,
                        "login": API_LOGIN,
                        "password": API_PASSWORD,
                        "espf_api": {"login": API_LOGIN, "password": API_PASSWORD},
                    },
                }
            }
        },
        "handlers": handlers,
        "pipeline": {"poll_interval": 0.1, "lease_seconds": 10, **pipeline},
        "api": {
            "tokens": [
                {"name": "admin", "token": ADMIN_TOKEN, "role": "admin"},
                {"name": "ops", "token": OPERATOR_TOKEN, "role": "operator"},
                {"name": "viewer", "token": VIEWER_TOKEN, "role": "viewer"},
            ]
        },
    }


@dataclass
class Sandbox:
    url: str
    app: Starlette

    def point_sender_at(self, url: str) -> None:
        self.app.state.sandbox.sender.config.url = url

    def put_faults(self, change: dict[str, Any]) -> None:
        httpx.put(f"{self.url}/sandbox/faults", json=change, timeout=10).raise_for_status()

    def emit(self, event_type: str, **variables: Any) -> int:
        answer = httpx.post(
            f"{self.url}/sandbox/events",
            json={"event_type": event_type, "variables": variables},
            timeout=10,
        )
        answer.raise_for_status()
        return int(answer.json()["events"][0]["i_event"])

    def get(self, path: str) -> Any:
        answer = httpx.get(f"{self.url}{path}", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = httpx.post(f"{self.url}{path}", json=body or {}, timeout=10)
        answer.raise_for_status()
        return answer.json()


@contextmanager
def sandbox_server(dataset: Path, **sender: Any) -> Iterator[Sandbox]:
    config = SenderConfig(
        auth=SenderAuth(scheme="basic", username=BASIC_USER, password=BASIC_PASSWORD),
        rate=sender.pop("rate", 500),
        concurrency=sender.pop("concurrency", 8),
        retry_delay=sender.pop("retry_delay", 0.2),
        **sender,
    )
    app = create_sandbox_app(SandboxSettings(dataset=dataset, sender=config))
    with running(app) as url:
        yield Sandbox(url, app)


@dataclass
class Gateway:
    url: str
    settings: Settings

    def api(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )


@contextmanager
def gateway(settings: Settings) -> Iterator[Gateway]:
    with running(create_app(settings)) as url:
        yield Gateway(url, settings)


@contextmanager
def wired(
    store_url: str,
    dataset: Path,
    handlers: Callable[[ConnectorServer], list[dict[str, Any]]],
    connector: ConnectorServer | None = None,
    sender: dict[str, Any] | None = None,
    **pipeline: Any,
) -> Iterator[tuple[Sandbox, Gateway, ConnectorServer]]:
    """Sandbox, gateway and connector, with the sandbox's EventSender posting to the gateway."""
    with (
        sandbox_server(dataset, **(sender or {})) as sandbox,
        connector_server() if connector is None else serving(connector) as server,
    ):
        settings = gateway_settings(store_url, sandbox.url, handlers(server), **pipeline)
        with gateway(settings) as gw:
            sandbox.point_sender_at(f"{gw.url}/espf/events")
            yield sandbox, gw, server


@contextmanager
def serving(server: ConnectorServer) -> Iterator[ConnectorServer]:
    with running(server.app()) as url:
        server.url = f"{url}/events"
        yield server


def api_get(url: str, path: str, **params: Any) -> Any:
    """GET /api/v1{path} of a gateway at `url` (an admin's token); the answer's JSON."""
    answer = httpx.get(
        f"{url}/api/v1{path}",
        params=params,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def wait_for(
    condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll until condition() is truthy (bounded in time); returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")
