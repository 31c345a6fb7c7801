"""The template connector: YAML + Jinja2 → a REST call, through OpenNSPS to a test server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError

from opennsps.config import HandlerConfig
from opennsps.connectors.template import TemplateConnector, compile_calls
from opennsps.domain.outcomes import OutcomeKind
from tests.pipeline.harness import FAST_RETRY, Answer, ConnectorServer, wait_for, wired

FIRST = 100_001
CRM_TOKEN = "crm-secret-token-0123456789"


def template_handler(server: ConnectorServer, **overrides: Any) -> dict[str, Any]:
    base = server.url.rsplit("/events", 1)[0]
    return {
        "id": "crm",
        "events": ["Subscriber/*"],
        "type": "template",
        "retry": FAST_RETRY,
        "template": {
            "base_url": base,
            "secrets": {"crm_token": CRM_TOKEN},
            "calls": {
                "Subscriber/Updated": {
                    "method": "POST",
                    "url": "/events?account={{ i_account }}",
                    "headers": {"Authorization": "Bearer {{ secrets.crm_token }}"},
                    "body": {
                        "event_id": "{{ event_id }}",
                        "account": "{{ i_account }}",
                        "msisdn": "{{ pb_data.sim_info.msisdn }}",
                        "barred": "{{ pb_data.account_info.blocked }}",
                        "label": "{{ event_type }} of {{ pb_data.account_info.id }}",
                        "source": "opennsps",
                    },
                    "success": "status == 201 and body.ok",
                }
            },
            **overrides,
        },
    }


def test_an_event_becomes_the_templated_call(store_url: str, dataset_file: Path) -> None:
    # Per account: the sandbox posts the two events concurrently, in either order.
    answers = {
        FIRST: iter([(503, {}, b"busy"), (201, {}, b'{"ok": false}')]),
        FIRST + 1: iter([(201, {}, b'{"ok": true}')]),
    }

    def decide(body: dict[str, Any]) -> Answer:
        return next(answers[body["account"]])

    with wired(
        store_url,
        dataset_file,
        lambda c: [template_handler(c)],
        connector=ConnectorServer(decide=decide),
    ) as (sandbox, gw, server):
        sandbox.post(f"/sandbox/accounts/{FIRST}/block")  # 503, retried, then 201 ok:false
        sandbox.post(f"/sandbox/accounts/{FIRST + 1}/block")  # 201 ok:true

        def finished() -> list[dict[str, Any]] | None:
            with gw.api() as api:
                items = api.get("/deliveries", params={"limit": 10}).json()["items"]
            done = [d for d in items if d["state"] in ("delivered", "rejected")]
            return items if len(done) == 2 else None

        deliveries = wait_for(finished, what="both deliveries finished")
        states = sorted(d["state"] for d in deliveries)
        assert states == ["delivered", "rejected"]
        first = next(r for r in server.received if r["body"]["account"] == FIRST)
        body = first["body"]
        assert first["headers"]["authorization"] == f"Bearer {CRM_TOKEN}"
        assert first["headers"]["x-b3-traceid"]
        assert body["account"] == FIRST  # a single expression keeps its type
        assert body["barred"] is True
        assert body["msisdn"].isdigit()
        assert body["label"].startswith("Subscriber/Updated of ")
        assert body["source"] == "opennsps"
        with gw.api() as api:
            rejected = api.get("/attempts", params={"outcome": "rejected"}).json()["items"]
            view = api.get("/handlers/crm").json()
        assert "success condition is false" in rejected[0]["error"]
        assert view["template"]["secrets"] == {"crm_token": "[redacted]"}
        assert CRM_TOKEN not in orjson.dumps(view).decode()


def test_template_mistakes_are_refused_when_the_handler_is_loaded() -> None:
    server = ConnectorServer(url="http://127.0.0.1:9/events")
    broken = template_handler(server)
    broken["template"]["calls"]["Subscriber/Updated"]["body"]["msisdn"] = "{{ pb_data. }}"
    with pytest.raises(ValidationError, match=r"calls\.Subscriber/Updated\.body\.msisdn"):
        HandlerConfig.model_validate(broken)
    bad_success = template_handler(server)
    bad_success["template"]["calls"]["Subscriber/Updated"]["success"] = "status =="
    with pytest.raises(ValidationError, match=r"success"):
        HandlerConfig.model_validate(bad_success)


def test_when_picks_the_call_a_terminated_account_needs(store_url: str, dataset_file: Path) -> None:
    """A closed (terminated) account is deprovisioned whichever event tells of it: the
    Subscriber/Deleted of a deletion, or the Subscriber/Updated of a billing status C."""
    upsert = {
        "op": "upsert",
        "account": "{{ i_account }}",
        "event_id": "{{ event_id }}",
        # docs/connectors.md's expression: an account without a SIM card yet gives null
        "msisdn": "{{ (pb_data.sim_info | default({})).msisdn | default(none) }}",
    }
    remove = {"op": "delete", "account": "{{ i_account }}", "event_id": "{{ event_id }}"}
    calls = {
        "Subscriber/Deleted": {"url": "/events", "body": remove},
        "Subscriber/Updated": {
            "url": "/events",
            "body": remove,
            "when": "pb_data.account_info.bill_status == 'terminated'",
        },
        "Subscriber/*": {"url": "/events", "body": upsert},
    }
    with wired(
        store_url,
        dataset_file,
        lambda c: [template_handler(c, calls=calls)],
        connector=ConnectorServer(),
    ) as (sandbox, _, server):
        sandbox.post(f"/sandbox/accounts/{FIRST}/bill-status", {"bill_status": "C"})
        sandbox.post(f"/sandbox/accounts/{FIRST + 1}/block")
        httpx.delete(f"{sandbox.url}/sandbox/accounts/{FIRST + 2}", timeout=10).raise_for_status()
        created = sandbox.post("/sandbox/accounts")["events"][0]["variables"]["i_account"]
        wait_for(lambda: len(server.received) == 4 or None, what="four calls")
    ops = {r["body"]["account"]: r["body"]["op"] for r in server.received}
    assert ops == {FIRST: "delete", FIRST + 1: "upsert", FIRST + 2: "delete", created: "upsert"}
    bodies = {r["body"]["account"]: r["body"] for r in server.received}
    assert bodies[created]["msisdn"] is None and bodies[FIRST + 1]["msisdn"].isdigit()
    assert {r["headers"]["content-type"] for r in server.received} == {"application/json"}


def test_a_when_that_fails_on_the_event_rejects_it_with_the_call_named() -> None:
    connector = TemplateConnector(
        {"Subscriber/*": {"url": "/x", "when": "pb_data.account_info.bill_status == 'open'"}},
        base_url="http://127.0.0.1:9",
        secrets={},
        timeout=5,
    )
    event = {"event_id": "e1", "data": {"event_type": "Subscriber/Updated", "variables": {}}}
    result = asyncio.run(connector.deliver(event, request_id=None, unique_id=None))
    asyncio.run(connector.close())
    assert result.outcome.kind is OutcomeKind.REJECTED
    assert "calls.Subscriber/*.when" in str(result.error)


def test_calls_are_tried_most_specific_first_whatever_their_written_order() -> None:
    """PostgreSQL keeps a handler as JSONB, which does not keep the order of the calls:
    the order they are tried in must not depend on it."""
    call = {"url": "/x"}
    patterns = ["*", "Subscriber/*", "Subscriber/Updated", "*/Updated", "SIM/*"]
    orders = {
        tuple(c.pattern for c in compile_calls({p: call for p in written}))
        for written in (patterns, list(reversed(patterns)), sorted(patterns, key=len))
    }
    assert orders == {("Subscriber/Updated", "Subscriber/*", "*/Updated", "SIM/*", "*")}
