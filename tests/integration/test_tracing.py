"""OpenTelemetry traces carry PortaBilling's trace: an ESPF event posted with
`x-b3-traceid` yields an ingest span and a delivery span (with its enrichment and
connector children) in that very trace, exported over OTLP/HTTP to a collector (here a
real HTTP server decoding the protobuf OTLP requests)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typer.testing import CliRunner

from opennsps.cli import app as cli
from opennsps.config import Settings
from tests.pipeline.harness import (
    connector_server,
    gateway,
    gateway_config,
    http_handler,
    sandbox_server,
    wait_for,
)
from tests.support import basic_header, event_body, running

B3_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@contextmanager
def collector() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An OTLP/HTTP traces endpoint: every span it receives, decoded."""
    spans: list[dict[str, Any]] = []

    async def traces(request: Request) -> Response:
        export = ExportTraceServiceRequest.FromString(await request.body())
        for resource in export.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    spans.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "attributes": {
                                a.key: a.value.string_value or a.value.int_value
                                for a in span.attributes
                            },
                            "service": service.get("service.name"),
                        }
                    )
        return Response(b"", media_type="application/x-protobuf")

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    with running(app) as url:
        yield f"{url}/v1/traces", spans


def test_an_events_spans_land_in_the_trace_espf_started(dataset_file: Path, tmp_path: Path) -> None:
    with (
        collector() as (endpoint, spans),
        sandbox_server(dataset_file) as sandbox,
        connector_server() as connector,
    ):
        config = gateway_config(
            f"sqlite:///{tmp_path / 'store.db'}", sandbox.url, [http_handler(connector.url)]
        )
        config["tracing"] = {"enabled": True, "endpoint": endpoint, "export_delay_seconds": 0.1}
        with gateway(Settings.model_validate(config)) as gw:
            answer = httpx.post(
                f"{gw.url}/espf/events",
                json=event_body(1, "Subscriber/Updated", i_account=100_001),
                headers={**basic_header(), "x-b3-traceid": B3_TRACE, "x-request-id": "req-1"},
                timeout=10,
            )
            assert answer.status_code == 200
            event_id = answer.json()["event_id"]
            wait_for(lambda: connector.received, what="the delivery")
            wait_for(
                lambda: (
                    {"espf.ingest", "opennsps.delivery", "opennsps.connector"}
                    <= {s["name"] for s in spans}
                ),
                what="the spans exported",
            )
    by_name = {s["name"]: s for s in spans}
    ingest, delivery = by_name["espf.ingest"], by_name["opennsps.delivery"]
    assert {s["trace_id"] for s in spans} == {B3_TRACE}  # all in PortaBilling's trace
    assert ingest["service"] == "opennsps"
    assert ingest["attributes"]["opennsps.request_id"] == B3_TRACE
    assert ingest["attributes"]["opennsps.unique_id"] == "req-1"
    assert delivery["attributes"]["opennsps.event_id"] == event_id
    assert delivery["attributes"]["opennsps.outcome"] == "delivered"
    assert ingest["parent"] == delivery["parent"]  # siblings under the event's one parent
    assert by_name["opennsps.connector"]["parent"] == delivery["span_id"]
    assert by_name["opennsps.enrich"]["parent"] == delivery["span_id"]


def test_tracing_without_opentelemetry_says_how_to_install_it(tmp_path: Path) -> None:
    config = tmp_path / "opennsps.yaml"
    config.write_text("tracing: {enabled: true}\n")
    blocked = {"opentelemetry.sdk": None, "opentelemetry.exporter.otlp.proto.http": None}
    saved = {name: sys.modules.get(name) for name in blocked}
    # The extra is installed here: hiding its modules is how its absence can be shown.
    sys.modules.update(blocked)
    try:
        checked = CliRunner().invoke(cli, ["config", "check", str(config)])
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    assert checked.exit_code == 2
    assert "pip install 'opennsps[otel]'" in checked.output
