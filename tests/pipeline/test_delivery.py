"""End to end over real HTTP: sandbox EventSender → OpenNSPS → connector test server."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.pipeline.harness import (
    CONNECTOR_TOKEN,
    Answer,
    ConnectorServer,
    http_handler,
    wait_for,
    wired,
)
from tests.support import contract_validator

FIRST = 100_001


def delivered_events(gw: Any) -> list[dict[str, Any]]:
    with gw.api() as api:
        return list(
            api.get("/events", params={"state": "delivered", "limit": 1000}).json()["items"]
        )


def test_enriched_payload_follows_the_contract(store_url: str, dataset_file: Path) -> None:
    validator = contract_validator("Event")
    with wired(store_url, dataset_file, lambda c: [http_handler(c.url)]) as (sandbox, gw, conn):
        sandbox.post(f"/sandbox/accounts/{FIRST}/block")
        received = wait_for(lambda: conn.received, what="the connector to get the event")
        request = received[0]
        body = request["body"]
        validator.validate(body)
        assert body["data"]["event_type"] == "Subscriber/Updated"
        assert body["handler_id"] == "hss"
        assert body["pb_data"]["account_info"]["i_account"] == FIRST
        assert body["pb_data"]["account_info"]["blocked"] is True
        assert body["pb_data"]["sim_info"]["imsi"].startswith("00101")
        assert request["headers"]["authorization"] == f"Bearer {CONNECTOR_TOKEN}"

        detail = wait_for(
            lambda: _detail_when(gw, body["event_id"], "delivered"), what="delivered state"
        )
        # The trace ids stored at ingress travel to the connector.
        assert request["headers"]["x-b3-traceid"] == detail["request_id"]
        assert request["headers"]["x-request-id"] == detail["unique_id"]
        [delivery] = detail["deliveries"]
        [attempt] = delivery["attempt_log"]
        assert attempt["status_code"] == 200
        assert attempt["outcome"] == "delivered"
        # The snapshot that was sent is kept with the attempt.
        assert attempt["pb_data"] == body["pb_data"]


def _detail_when(gw: Any, event_id: str, state: str) -> dict[str, Any] | None:
    with gw.api() as api:
        detail: dict[str, Any] = api.get(f"/events/{event_id}").json()
    return detail if detail.get("state") == state else None


def test_order_per_account_holds_while_the_connector_fails_intermittently(
    store_url: str, dataset_file: Path
) -> None:
    calls: dict[str, int] = defaultdict(int)

    def flaky(body: dict[str, Any]) -> Answer:
        calls[body["event_id"]] += 1
        # Every third event fails its first two attempts.
        if int(body["data"]["variables"]["i_event"]) % 3 == 0 and calls[body["event_id"]] <= 2:
            return 503, {}, b'{"message": "busy"}'
        return 200, {}, b"{}"

    accounts = [FIRST + n for n in range(5)]
    per_account = 8
    with wired(
        store_url, dataset_file, lambda c: [http_handler(c.url)], ConnectorServer(decide=flaky)
    ) as (sandbox, gw, conn):
        sent: dict[int, list[int]] = defaultdict(list)
        for _ in range(per_account):
            for account in accounts:
                sent[account].append(sandbox.emit("Subscriber/Updated", i_account=account))
        total = len(accounts) * per_account
        wait_for(lambda: len(delivered_events(gw)) == total, timeout=60, what="all delivered")
        # "In the order received": the order the gateway stored them (ESPF posts several
        # at once, so that need not be i_event order).
        received_order: dict[int, list[int]] = defaultdict(list)
        for event in sorted(delivered_events(gw), key=lambda e: e["seq"]):
            received_order[int(event["variables"]["i_account"])].append(event["i_event"])

    seen: dict[int, list[int]] = defaultdict(list)
    for request in conn.received:
        variables = request["body"]["data"]["variables"]
        seen[int(variables["i_account"])].append(int(variables["i_event"]))
    for account in accounts:
        assert sorted(received_order[account]) == sorted(sent[account])
        # A later event went out only after the earlier one succeeded: retries repeat
        # the same event, never skip ahead.
        assert list(dict.fromkeys(seen[account])) == received_order[account], (
            f"account {account} went out of order: {seen[account]}"
        )
        assert (
            sum(1 for a, b in zip(seen[account], seen[account][1:], strict=False) if a != b)
            == len(sent[account]) - 1
        )
    assert any(count > 1 for count in calls.values())  # the failures really happened
