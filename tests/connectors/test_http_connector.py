"""Outcomes of a connector's answers, and the HTTP connector against a real test server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opennsps.connectors.base import AttemptResult
from opennsps.connectors.http import HttpConnector, HttpConnectorSettings
from opennsps.connectors.payload import nsps_event
from opennsps.domain.outcomes import OutcomeKind, classify, parse_retry_after
from tests.support import contract_validator, free_port, running


@pytest.mark.parametrize(
    ("status", "kind", "config"),
    [
        (200, OutcomeKind.DELIVERED, False),
        (202, OutcomeKind.DELIVERED, False),
        (204, OutcomeKind.DELIVERED, False),
        (400, OutcomeKind.REJECTED, False),
        (404, OutcomeKind.REJECTED, False),
        (405, OutcomeKind.REJECTED, False),
        (409, OutcomeKind.REJECTED, False),
        (410, OutcomeKind.REJECTED, False),
        (422, OutcomeKind.REJECTED, False),
        (401, OutcomeKind.RETRY, True),
        (403, OutcomeKind.RETRY, True),
        (408, OutcomeKind.RETRY, False),
        (425, OutcomeKind.RETRY, False),
        (429, OutcomeKind.RETRY, False),
        (500, OutcomeKind.RETRY, False),
        (503, OutcomeKind.RETRY, False),
        (301, OutcomeKind.RETRY, True),
    ],
)
def test_status_codes(status: int, kind: OutcomeKind, config: bool) -> None:
    outcome = classify(status)
    assert (outcome.kind, outcome.configuration_problem) == (kind, config)


def test_asynchronous_acceptance_and_transport_errors() -> None:
    assert classify(202, body_status="IN_PROGRESS").kind is OutcomeKind.WAITING
    assert classify(202, body_status="queued").kind is OutcomeKind.DELIVERED
    failed = classify(None, error="ConnectError: refused")
    assert failed.kind is OutcomeKind.RETRY and "refused" in failed.reason


def test_retry_after() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == timedelta(minutes=2)
    assert parse_retry_after(
        format_datetime(now + timedelta(seconds=90), usegmt=True), now
    ) == timedelta(seconds=90)
    assert parse_retry_after("999999") == timedelta(days=1)
    assert parse_retry_after("soon") is None
    assert classify(503, retry_after="30").retry_after == timedelta(seconds=30)


@dataclass
class ConnectorServer:
    answers: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0

    def app(self) -> Starlette:
        async def process(request: Request) -> Response:
            self.received.append(
                {"headers": dict(request.headers), "body": json.loads(await request.body())}
            )
            if self.delay:
                await asyncio.sleep(self.delay)
            status, body, headers = (
                self.answers.pop(0) if self.answers else (202, {"message": "ok"}, {})
            )
            return Response(
                json.dumps(body), status_code=status, headers=headers, media_type="application/json"
            )

        return Starlette(routes=[Route("/process-event", process, methods=["POST"])])


@pytest.fixture
def connector_server() -> Iterator[tuple[ConnectorServer, str]]:
    server = ConnectorServer()
    with running(server.app()) as url:
        yield server, f"{url}/process-event"


def sample_event() -> dict[str, Any]:
    now = datetime.now(UTC)
    return nsps_event(
        event_id="3e84c79f-ab6f-4546-8e27-0b6ab866f1fb",
        event_type="SIM/Updated",
        variables={"i_env": 1, "i_event": 999999, "i_account": 1},
        pb_data={"sim_info": {"i_sim_card": 3793, "imsi": "001010000020349"}},
        handler_id="hss",
        status="received",
        created_at=now,
        updated_at=now,
    )


def deliver(url: str, **settings: Any) -> AttemptResult:
    async def run() -> AttemptResult:
        connector = HttpConnector(HttpConnectorSettings(url=url, **settings))
        try:
            return await connector.deliver(
                sample_event(), request_id="463ac35c9f6413ad", unique_id="r-1"
            )
        finally:
            await connector.close()

    return asyncio.run(run())


def test_the_request_follows_the_nsps_contract(
    connector_server: tuple[ConnectorServer, str],
) -> None:
    server, url = connector_server
    result = deliver(url, token="s3cret-token")
    assert result.outcome.kind is OutcomeKind.DELIVERED and result.status_code == 202
    received = server.received[0]
    assert received["headers"]["authorization"] == "Bearer s3cret-token"
    assert received["headers"]["x-b3-traceid"] == "463ac35c9f6413ad"
    assert received["headers"]["x-request-id"] == "r-1"
    contract_validator("Event").validate(received["body"])


def test_answers_become_outcomes(connector_server: tuple[ConnectorServer, str]) -> None:
    server, url = connector_server
    server.answers = [
        (503, {"message": "busy", "error": "x", "type": "service_error"}, {"Retry-After": "7"}),
        (422, {"message": "bad imsi", "error": "validation", "type": "validation_error"}, {}),
        (401, {"message": "no", "error": "auth", "type": "authentication_error"}, {}),
        (202, {"status": "IN_PROGRESS"}, {}),
    ]
    busy, invalid, unauthorized, waiting = (deliver(url) for _ in range(4))
    assert busy.outcome.kind is OutcomeKind.RETRY and busy.outcome.retry_after == timedelta(
        seconds=7
    )
    assert invalid.outcome.kind is OutcomeKind.REJECTED and "bad imsi" in invalid.response_excerpt
    assert unauthorized.outcome.configuration_problem
    assert waiting.outcome.kind is OutcomeKind.WAITING


def test_excerpts_are_bounded(connector_server: tuple[ConnectorServer, str]) -> None:
    server, url = connector_server
    server.answers = [(500, {"blob": "x" * 10_000}, {})]
    assert len(deliver(url).response_excerpt) == 4096


def test_timeouts_and_refused_connections_are_retried(
    connector_server: tuple[ConnectorServer, str],
) -> None:
    server, url = connector_server
    server.delay = 1.0
    slow = deliver(url, timeout=0.2)
    assert slow.outcome.kind is OutcomeKind.RETRY and "no answer within 0.2 s" in (slow.error or "")
    refused = deliver(f"http://127.0.0.1:{free_port()}/process-event")
    assert refused.outcome.kind is OutcomeKind.RETRY and refused.status_code is None
