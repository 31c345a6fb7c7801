"""The connector SDK: one class, as an HTTP service (the NSPS contract) and in-process."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from opennsps.connector import create_app
from opennsps.connector.gateway import GatewayClient, GatewayError, GatewaySettings
from opennsps.connectors.plugin import PluginConnector, load_plugin
from opennsps.domain.outcomes import OutcomeKind
from opennsps.logging import configure_logging
from tests.connectors.sdk_examples import Echo
from tests.pipeline.harness import OPERATOR_TOKEN, wait_for, wired
from tests.support import contract_validator, free_port, running

TOKEN = "sdk-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def event(**variables: Any) -> dict[str, Any]:
    return {
        "event_id": "3e84c79f-ab6f-4546-8e27-0b6ab866f1fb",
        "data": {"event_type": "Subscriber/Updated", "variables": {"i_account": 7, **variables}},
        "pb_data": {"account_info": {"i_account": 7}},
        "handler_id": "echo",
        "status": "queued",
        "future_field": "tolerated",
    }


@pytest.fixture
def service() -> Iterator[tuple[str, Echo]]:
    connector = Echo()
    with running(create_app(connector, token=TOKEN)) as url:
        yield url, connector


def test_health_needs_no_token(service: tuple[str, Echo]) -> None:
    url, _ = service
    answer = httpx.get(f"{url}/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "Healthy"}


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}"])
def test_a_missing_or_wrong_token_is_refused(service: tuple[str, Echo], header: str | None) -> None:
    url, connector = service
    headers = {"Authorization": header} if header else {}
    answer = httpx.post(f"{url}/process-event", json=event(), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    contract_validator("ErrorResponse").validate(answer.json())
    assert answer.json()["type"] == "authentication_error"
    assert connector.handled == []


def test_an_event_is_accepted_with_unknown_fields_on_both_paths(
    service: tuple[str, Echo],
) -> None:
    url, connector = service
    for path in ("/process-event", "/"):
        answer = httpx.post(f"{url}{path}", json=event(), headers=AUTH)
        assert answer.status_code == 202, answer.text
        assert answer.json()["message"] == "Event accepted for processing"
        assert answer.json()["seen"] == 7
    assert [e.i_account for e in connector.handled] == [7, 7]
    assert connector.handled[0].model_extra == {"future_field": "tolerated"}


def test_invalid_input_gets_422_with_details(service: tuple[str, Echo]) -> None:
    url, connector = service
    answer = httpx.post(f"{url}/process-event", json={"data": {}}, headers=AUTH)
    assert answer.status_code == 422
    body = answer.json()
    contract_validator("ErrorResponse").validate(body)
    assert "event_id" in body["message"] and "event_type" in body["message"]
    not_json = httpx.post(
        f"{url}/process-event",
        content=b"{not json",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 422
    assert connector.handled == []


@pytest.mark.parametrize(
    ("behave", "status", "error_type"),
    [
        ("reject", 422, "validation_error"),
        ("unavailable", 503, "connection_error"),
        ("busy", 429, "rate_limit_error"),
        ("unauthorized", 401, "authentication_error"),
        ("crash", 500, "internal_error"),
    ],
)
def test_errors_map_to_the_documented_status_and_type(
    service: tuple[str, Echo], behave: str, status: int, error_type: str
) -> None:
    url, _ = service
    answer = httpx.post(f"{url}/process-event", json=event(behave=behave), headers=AUTH)
    assert answer.status_code == status
    contract_validator("ErrorResponse").validate(answer.json())
    assert answer.json()["type"] == error_type
    if behave == "busy":
        assert answer.headers["retry-after"] == "7"


def test_wrong_method_and_unknown_path_answer_error_responses(service: tuple[str, Echo]) -> None:
    url, _ = service
    wrong_method = httpx.get(f"{url}/process-event", headers=AUTH)
    assert wrong_method.status_code == 405
    contract_validator("ErrorResponse").validate(wrong_method.json())
    missing = httpx.post(f"{url}/nowhere", json=event(), headers=AUTH)
    assert missing.status_code == 404
    contract_validator("ErrorResponse").validate(missing.json())


def test_waiting_answers_202_in_progress(service: tuple[str, Echo]) -> None:
    url, _ = service
    answer = httpx.post(f"{url}/process-event", json=event(behave="wait"), headers=AUTH)
    assert answer.status_code == 202
    assert answer.json()["status"] == "IN_PROGRESS"


def test_trace_ids_reach_every_log_line_and_are_generated_when_absent() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    try:
        with running(create_app(Echo(), token=TOKEN)) as url:
            traced = httpx.post(
                f"{url}/process-event",
                json=event(),
                headers={**AUTH, "x-b3-traceid": "trace-abc", "x-request-id": "unique-xyz"},
            )
            untraced = httpx.post(f"{url}/process-event", json=event(), headers=AUTH)
    finally:
        configure_logging("info")
    assert traced.headers["x-b3-traceid"] == "trace-abc"
    generated = untraced.headers["x-b3-traceid"], untraced.headers["x-request-id"]
    assert all(generated) and generated[0] != "trace-abc"
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    handling = [line for line in lines if line.get("event") == "echo handling"]
    assert {(line["request_id"], line["unique_id"]) for line in handling} == {
        ("trace-abc", "unique-xyz"),
        generated,
    }
    assert TOKEN not in stream.getvalue()


def test_the_same_class_runs_in_process_with_the_same_meanings() -> None:
    asyncio.run(_in_process())


async def _in_process() -> None:
    plugin = load_plugin("tests.connectors.sdk_examples:Echo", {})
    connector = PluginConnector(plugin, timeout=5)
    expected = {
        "ok": (OutcomeKind.DELIVERED, False),
        "wait": (OutcomeKind.WAITING, False),
        "reject": (OutcomeKind.REJECTED, False),
        "unavailable": (OutcomeKind.RETRY, False),
        "unauthorized": (OutcomeKind.RETRY, True),
        "crash": (OutcomeKind.RETRY, False),
    }
    for behave, (kind, configuration_problem) in expected.items():
        result = await connector.deliver(event(behave=behave), request_id="r", unique_id="u")
        assert result.outcome.kind is kind, behave
        assert result.outcome.configuration_problem is configuration_problem, behave
    busy = await connector.deliver(event(behave="busy"), request_id="r", unique_id="u")
    assert busy.outcome.retry_after is not None and busy.outcome.retry_after.total_seconds() == 7
    broken = await connector.deliver({"data": {}}, request_id=None, unique_id=None)
    assert broken.outcome.kind is OutcomeKind.REJECTED
    assert "NSPS Event schema" in (broken.error or "")


def test_connector_serve_command_runs_a_class_as_a_service(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "connector.log").open("wb")
    env = {**os.environ, "OPENNSPS_CONNECTOR_TOKEN": TOKEN}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opennsps.cli",
            "connector",
            "serve",
            "tests.connectors.sdk_examples:Echo",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        answer = httpx.post(f"{url}/process-event", json=event(), headers=AUTH)
        assert answer.status_code == 202
        assert httpx.post(f"{url}/process-event", json=event()).status_code == 401
    finally:
        process.terminate()
        process.wait(15)
        log.close()
    assert TOKEN not in (tmp_path / "connector.log").read_text()


def test_connector_serve_refuses_a_missing_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENNSPS_CONNECTOR_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-m", "opennsps.cli", "connector", "serve", "x:Y"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "OPENNSPS_CONNECTOR_TOKEN" in done.stderr


def test_a_connector_reports_back_through_the_gateway_client(
    dataset_file: Path, tmp_path: Path
) -> None:
    """The SDK's way back to OpenNSPS: a status that finished later reaches PortaBilling's
    ESPF, an event is scheduled there; a refusal is a GatewayError with the reason."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    with wired(store_url, dataset_file, lambda _: []) as (sandbox, gw, _connector):
        client = GatewayClient(GatewaySettings(url=gw.url, token=OPERATOR_TOKEN))
        wrong = GatewayClient(GatewaySettings(url=gw.url, token="not-a-token-0000"))

        async def use() -> str:
            await client.report_status(100_001, "CRM", "FAILED", error="no such plan")
            start = datetime.now(UTC) + timedelta(minutes=5)
            await client.schedule_event("Custom/NextMonth", {"i_account": 100_001}, start)
            try:
                await wrong.report_status(100_001, "CRM", "OK")
            except GatewayError as exc:
                return str(exc)
            finally:
                await client.close()
                await wrong.close()
            return ""

        refused = asyncio.run(use())
        assert "HTTP 401" in refused
        wait_for(
            lambda: sandbox.get("/sandbox/statuses/100001")["latest"],
            what="the status at PortaBilling",
        )
        [latest] = sandbox.get("/sandbox/statuses/100001")["latest"]
        assert (latest["group"], latest["status"], latest["error"]) == (
            "CRM",
            "FAILED",
            "no such plan",
        )
