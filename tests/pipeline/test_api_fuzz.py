"""Schemathesis over the management API's own OpenAPI (/openapi.json), against a real
gateway with an admin token: no 5xx, every status declared, every body valid against the
schema, invalid requests refused and valid ones accepted, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.pipeline.harness import (
    ADMIN_TOKEN,
    Gateway,
    connector_server,
    gateway,
    gateway_settings,
    http_handler,
    sandbox_server,
)

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))
# A handler definition is also valid only when its templates compile, its relative URLs
# have a base_url and its entry point imports: no JSON Schema states that, so a schema-valid
# definition may get the (declared) 422 with its details. Every other check still runs.
SCHEMA_CANNOT_TELL = {"POST /api/v1/handlers", "PUT /api/v1/handlers/{handler_id}"}


@pytest.fixture
def api_gateway(store_url: str, dataset_file: Path) -> Iterator[Gateway]:
    with sandbox_server(dataset_file) as sandbox, connector_server() as connector:
        settings_ = gateway_settings(store_url, sandbox.url, [http_handler(connector.url)])
        with gateway(settings_) as gw:
            sandbox.point_sender_at(f"{gw.url}/espf/events")
            sandbox.emit("Subscriber/Updated", i_account=100001)
            yield gw


def test_the_management_api_keeps_its_openapi_promises(api_gateway: Gateway) -> None:
    schema = schemathesis.openapi.from_url(f"{api_gateway.url}/openapi.json")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    failures: dict[str, str] = {}
    for result, mode in itertools.product(schema.get_all_operations(), GenerationMode):
        operation = result.ok()
        if operation.path.startswith("/espf/") or operation.path.startswith("/console/"):
            continue  # the ingress has its own fuzz test; the console is a browser's

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            excluded = (
                [positive_data_acceptance] if case.operation.label in SCHEMA_CANNOT_TELL else []
            )
            case.call_and_validate(
                base_url=api_gateway.url, headers=headers, excluded_checks=excluded
            )

        try:
            run()
        except Unsatisfiable:
            continue  # nothing of this operation can be made invalid (no parameters)
        # Gathered, so that one run shows every operation's failures (schemathesis raises a
        # BaseExceptionGroup).
        except (Exception, BaseExceptionGroup) as exc:
            failures[f"{operation.label} ({mode.value})"] = str(exc)[:1500]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
