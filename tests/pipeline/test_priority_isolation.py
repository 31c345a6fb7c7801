"""Failure isolation between the handlers of one event: priority orders them, and each
handler's `holds_back` says how long its failing delivery may hold back the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.harness import FAST_RETRY, Answer, Gateway, http_handler, wait_for, wired

FIRST = 100_001
# The HSS fails; its next attempt would be a minute away, and it gives up after `give_up`.
FAILING = {**FAST_RETRY, "fast_attempts": 1, "fast_first_seconds": 60, "slow_steps_seconds": [60]}


def states(gw: Gateway) -> dict[str, str]:
    with gw.api() as api:
        items = api.get("/deliveries", params={"limit": 10}).json()["items"]
    return {d["handler_id"]: d["state"] for d in items}


# The HSS fails a few times, 0.3 s apart, then gives up after 1.5 s.
DYING = {**FAST_RETRY, "fast_first_seconds": 0.3, "fast_max_seconds": 0.3}
DYING = {**DYING, "give_up_after_seconds": 1.5}


def handlers_for(
    url: str, holds_back: str | None, retry: dict[str, Any] = FAILING
) -> list[dict[str, Any]]:
    hss = http_handler(url, "hss", priority=1, retry=retry)
    if holds_back is not None:
        hss["holds_back"] = holds_back
    return [hss, http_handler(url, "crm", priority=2)]


def down_hss(body: dict[str, Any]) -> Answer:
    if body["handler_id"] == "hss":
        return 503, {}, b'{"message": "down"}'
    return 200, {}, b"{}"


@pytest.mark.parametrize("holds_back", [None, "until_first_attempt"])
def test_by_default_a_failing_handler_holds_back_others_only_until_its_first_attempt(
    store_url: str, dataset_file: Path, holds_back: str | None
) -> None:
    with wired(store_url, dataset_file, lambda c: handlers_for(c.url, holds_back)) as (
        sandbox,
        gw,
        server,
    ):
        server.decide = down_hss
        sandbox.post(f"/sandbox/accounts/{FIRST}/topup", {"amount": 1})
        wait_for(
            lambda: states(gw) == {"hss": "pending", "crm": "delivered"},
            what="the CRM delivered while the HSS retries",
        )
        order = [r["body"]["handler_id"] for r in server.received]
        assert order == ["hss", "crm"]  # priority still orders the first attempts


def test_until_done_holds_back_until_the_failing_delivery_is_finished(
    store_url: str, dataset_file: Path
) -> None:
    with wired(
        store_url, dataset_file, lambda c: handlers_for(c.url, "until_done", retry=DYING)
    ) as (sandbox, gw, server):
        server.decide = down_hss
        sandbox.post(f"/sandbox/accounts/{FIRST}/topup", {"amount": 1})
        wait_for(lambda: states(gw) == {"hss": "dead", "crm": "delivered"}, what="done in order")
        with gw.api() as api:
            attempts = api.get("/attempts", params={"limit": 50}).json()["items"]
    # oldest first: every HSS attempt (retries, then dead), then the CRM's
    outcomes = [(a["handler_id"], a["outcome"]) for a in reversed(attempts)]
    assert len(outcomes) >= 3
    assert outcomes[-1] == ("crm", "delivered") and outcomes[-2] == ("hss", "dead")
    assert {outcome for _, outcome in outcomes[:-2]} == {"retry"}


def test_never_lets_others_go_even_while_it_is_paused(store_url: str, dataset_file: Path) -> None:
    with wired(store_url, dataset_file, lambda c: handlers_for(c.url, "never")) as (
        sandbox,
        gw,
        server,
    ):
        with gw.api() as api:
            api.post("/handlers/hss/pause").raise_for_status()
        sandbox.post(f"/sandbox/accounts/{FIRST}/topup", {"amount": 1})
        wait_for(
            lambda: states(gw) == {"hss": "pending", "crm": "delivered"},
            what="the CRM delivered while the HSS is paused",
        )
        assert [r["body"]["handler_id"] for r in server.received] == ["crm"]
        # the default holds back while the higher handler has not tried yet
        with gw.api() as api:
            definition = api.get("/handlers/hss").json()
            assert definition["holds_back"] == "never"
