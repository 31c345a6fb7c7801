"""Content filters (ESPF handler management: a handler may "forbid or allow the action"): a
handler's condition over the event and its pb_data decides whether a delivery goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from opennsps.config import HandlerConfig
from tests.pipeline.harness import ConnectorServer, Gateway, http_handler, wait_for, wired

PAY_AS_YOU_GO, UNLIMITED = 100_001, 100_002  # products 3774 and 3776 in the dataset
LTE_ONLY = "pb_data.account_info.i_product in [3776, 3777]"


def by_account(gw: Gateway) -> dict[int, list[str]]:
    with gw.api() as api:
        items = api.get("/attempts", params={"limit": 50}).json()["items"]
    found: dict[int, list[str]] = {}
    for attempt in reversed(items):
        found.setdefault(attempt["i_account"], []).append(attempt["outcome"])
    return found


@pytest.mark.parametrize("filter_status", ["none", "OK"])
def test_a_false_filter_skips_the_delivery_and_holds_nothing_back(
    store_url: str, dataset_file: Path, filter_status: str
) -> None:
    handler = lambda c: [  # noqa: E731
        {
            **http_handler(c.url, "hss", status_group="HSS"),
            "filter": LTE_ONLY,
            "filter_status": filter_status,
        }
    ]
    with wired(store_url, dataset_file, handler) as (sandbox, gw, server):
        for account in (PAY_AS_YOU_GO, UNLIMITED, PAY_AS_YOU_GO):
            sandbox.post(f"/sandbox/accounts/{account}/topup", {"amount": 1})
        wait_for(
            lambda: by_account(gw) == {PAY_AS_YOU_GO: ["skipped"] * 2, UNLIMITED: ["delivered"]},
            what="two skipped (in order, none held back) and one delivered",
        )
        # Nothing was sent for the skipped account.
        assert [r["body"]["pb_data"]["account_info"]["i_account"] for r in server.received] == [
            UNLIMITED
        ]
        with gw.api() as api:
            skipped = api.get(
                "/attempts", params={"i_account": PAY_AS_YOU_GO, "outcome": "skipped"}
            ).json()["items"]
            detail = api.get(f"/attempts/{skipped[0]['id']}").json()
            stats = api.get("/stats").json()
            events = api.get("/events", params={"i_account": PAY_AS_YOU_GO}).json()["items"]
        # The execution log says why, with the data the condition saw.
        assert LTE_ONLY in detail["error"] and "false" in detail["response_excerpt"]
        assert detail["pb_data"]["account_info"]["i_product"] == 3774
        assert detail["payload"] is None  # nothing was sent
        assert stats["deliveries_by_state"] == {"delivered": 1, "skipped": 2}
        assert {e["state"] for e in events} == {"delivered"}  # nothing failed
        # PortaBilling hears of a skipped delivery only when the handler says so.
        wait_for(lambda: stats_backlog(gw) == 0, what="statuses sent")
        latest = sandbox.get(f"/sandbox/statuses/{PAY_AS_YOU_GO}")["latest"]
        assert [s["status"] for s in latest] == (["OK"] if filter_status == "OK" else [])


def stats_backlog(gw: Gateway) -> int:
    with gw.api() as api:
        backlog: int = api.get("/stats").json()["status_outbox_backlog"]
    return backlog


def test_a_filter_that_fails_on_an_event_is_retried_as_a_configuration_problem(
    store_url: str, dataset_file: Path
) -> None:
    def handler(connector: ConnectorServer) -> list[dict[str, Any]]:
        return [{**http_handler(connector.url), "filter": "pb_data.sim_info.imsi[0] == '0'"}]

    with wired(store_url, dataset_file, handler) as (sandbox, gw, server):
        sandbox.post(
            "/sandbox/customers/6001", {"name": "No account, no SIM"}
        )  # no pb_data.sim_info
        wait_for(lambda: by_account(gw).get(None) == ["retry"], what="the failed evaluation")
        with gw.api() as api:
            attempts = api.get("/attempts").json()["items"]
        # retried (FAST_RETRY: a second attempt may already have followed), never sent
        assert attempts and all(a["outcome"] == "retry" for a in attempts)
        for attempt in attempts:
            assert attempt["configuration_problem"] is True
            assert "filter cannot be evaluated" in attempt["error"]
        assert server.received == []


def test_a_filter_is_checked_when_the_handler_is_saved() -> None:
    definition = http_handler("http://127.0.0.1:9/e", "hss")
    with pytest.raises(ValidationError, match=r"filter"):
        HandlerConfig.model_validate({**definition, "filter": "pb_data.account_info.("})
    with pytest.raises(ValidationError, match=r"filter_status"):
        HandlerConfig.model_validate({**definition, "filter_status": "FAILED"})
    blank = HandlerConfig.model_validate({**definition, "filter": "  "})
    assert blank.filter is None
