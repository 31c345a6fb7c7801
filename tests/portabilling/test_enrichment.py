"""The PortaBilling client and enrichment into pb_data, against the sandbox over HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from opennsps.portabilling.client import PortaBillingClient, PortaBillingError, PortaBillingSettings
from opennsps.portabilling.espf_client import EspfApiClient, EspfApiError, EspfApiSettings
from opennsps.portabilling.pb_data import Enricher
from tests.sandbox.conftest import API_LOGIN, API_PASSWORD, API_TOKEN, SandboxServer
from tests.support import contract_validator

FIRST = 100_001


def pb_data_validator() -> Any:
    return contract_validator("PBData")


def client_for(sandbox: SandboxServer, **overrides: Any) -> PortaBillingClient:
    settings = PortaBillingSettings(
        url=sandbox.url, login=API_LOGIN, password=API_PASSWORD, **overrides
    )
    return PortaBillingClient(settings)


def enrich(
    sandbox: SandboxServer, event_type: str, variables: dict[str, Any], **overrides: Any
) -> tuple[dict[str, Any], PortaBillingClient]:
    async def run() -> tuple[dict[str, Any], PortaBillingClient]:
        client = client_for(sandbox, **overrides)
        try:
            return await Enricher(client).pb_data(event_type, variables), client
        finally:
            await client.close()

    return asyncio.run(run())


def test_a_subscriber_event_is_enriched_as_the_contract_says(sandbox: SandboxServer) -> None:
    pb_data, _ = enrich(sandbox, "Subscriber/Updated", {"i_account": str(FIRST), "i_event": 5})
    pb_data_validator().validate(pb_data)
    info = pb_data["account_info"]
    assert info["i_account"] == FIRST and info["id"] == "79120000000@msisdn"
    assert info["bill_status"] in {"open", "suspended", "inactive", "terminated"}
    assert info["billing_model"] in {"credit_account", "debit_account"}
    assert isinstance(info["blocked"], bool)
    feature = info["service_features"][0]
    assert (
        feature["name"] == "netaccess_policy"
        and feature["attributes"][0]["name"] == "access_policy"
    )
    assert pb_data["sim_info"]["imsi"] == "001010000000000"
    policy = pb_data["access_policy_info"]
    assert str(policy["i_access_policy"]) == feature["attributes"][0]["effective_value"]
    assert {a["name"] for a in policy["attributes"]} == {"cs_profile", "eps_profile"}
    assert pb_data["product_info"]["i_product"] == info["i_product"]
    assert all("remaining" in counter for counter in pb_data["full_vd_counter_info"])


def test_raw_codes_are_mapped(sandbox: SandboxServer) -> None:
    db = sandbox.app.state.sandbox.control_db
    db.execute(
        "UPDATE accounts SET bill_status = 'S', billing_model = -1, blocked = 'Y'"
        " WHERE i_account = ?",
        (FIRST,),
    )
    pb_data, _ = enrich(sandbox, "Subscriber/Updated", {"i_account": FIRST})
    info = pb_data["account_info"]
    assert (info["bill_status"], info["billing_model"], info["blocked"]) == (
        "suspended",
        "debit_account",
        True,
    )


def test_sim_replaced_carries_the_previous_sim(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        events = control.post(f"/sandbox/accounts/{FIRST}/sim").json()["events"]
    event = next(e for e in events if e["event_type"] == "SIM/Replaced")
    pb_data, _ = enrich(sandbox, "SIM/Replaced", event["variables"])
    pb_data_validator().validate(pb_data)
    assert pb_data["prev_sim_info"]["i_sim_card"] == event["variables"]["prev_i_sim_card"]
    assert pb_data["prev_sim_info"]["imsi"] != pb_data["sim_info"]["imsi"]


def test_a_deleted_account_is_closed_with_its_sim_released(sandbox: SandboxServer) -> None:
    """ESPF guide, Example 3: the terminated account is still read (its ID), and no SIM
    card is assigned to it any more."""
    with sandbox.client() as control:
        control.delete(f"/sandbox/accounts/{FIRST}")
    pb_data, _ = enrich(sandbox, "Subscriber/Deleted", {"i_account": FIRST})
    pb_data_validator().validate(pb_data)
    assert pb_data["account_info"]["i_account"] == FIRST
    assert pb_data["account_info"]["bill_status"] == "terminated"
    assert "sim_info" not in pb_data


def test_an_unknown_account_gives_partial_data_not_a_failure(sandbox: SandboxServer) -> None:
    pb_data, _ = enrich(sandbox, "Subscriber/Deleted", {"i_account": 9_999_999})
    assert pb_data == {}


@pytest.mark.parametrize(
    ("event_type", "variables", "keys"),
    [
        ("Customer/Updated", {"i_customer": 6001}, {"customer_info"}),
        (
            "Invoice/Created",
            {"i_customer": 6001, "i_invoice": 900001},
            {"invoice_info", "customer_info"},
        ),
        ("Custom/NextMonth", {"i_account": FIRST}, {"account_info", "sim_info"}),
        ("Custom/Unknown", {"foo": 1}, set()),
    ],
)
def test_other_groups(
    sandbox: SandboxServer, event_type: str, variables: dict[str, Any], keys: set[str]
) -> None:
    pb_data, _ = enrich(sandbox, event_type, variables)
    assert keys <= set(pb_data) and (keys or pb_data == {})


def test_did_events(sandbox: SandboxServer) -> None:
    number = sandbox.app.state.sandbox.control_db.execute(
        "SELECT number FROM dids LIMIT 1"
    ).fetchone()[0]
    pb_data, _ = enrich(sandbox, "DID/Updated", {"number": number})
    assert pb_data["number_info"]["number"] == number


def test_one_session_many_events_and_a_session_expiry_storm(sandbox: SandboxServer) -> None:
    async def run() -> PortaBillingClient:
        client = client_for(sandbox, cache_ttl=0)
        enricher = Enricher(client)
        try:
            for i_account in range(FIRST, FIRST + 20):
                await enricher.pb_data("Subscriber/Updated", {"i_account": i_account})
            async with httpx.AsyncClient() as control:
                await control.post(f"{sandbox.url}/sandbox/sessions/expire")
            for i_account in range(FIRST, FIRST + 5):
                assert "account_info" in await enricher.pb_data(
                    "Subscriber/Updated", {"i_account": i_account}
                )
        finally:
            await client.close()
        return client

    client = asyncio.run(run())
    assert client.logins == 2
    assert sandbox.app.state.sandbox.portabilling.sessions.opened == 2


def test_the_cache_makes_several_handlers_cost_one_set_of_calls(sandbox: SandboxServer) -> None:
    async def run() -> PortaBillingClient:
        client = client_for(sandbox)
        enricher = Enricher(client)
        try:
            await asyncio.gather(
                *(enricher.pb_data("Subscriber/Updated", {"i_account": FIRST}) for _ in range(4))
            )
        finally:
            await client.close()
        return client

    client = asyncio.run(run())
    # login + account, cards, counters, access policy, product: once, not four times.
    assert client.calls == 6


def test_token_login(sandbox: SandboxServer) -> None:
    async def run() -> dict[str, Any]:
        client = PortaBillingClient(
            PortaBillingSettings(url=sandbox.url, login=API_LOGIN, token=API_TOKEN)
        )
        try:
            return await client.call("Account/get_account_info", {"i_account": FIRST})
        finally:
            await client.close()

    assert "account_info" in asyncio.run(run())


def test_server_faults_are_retried_and_client_faults_are_not(sandbox: SandboxServer) -> None:
    async def run(method: str, params: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        client = client_for(sandbox, backoff=0.01, **overrides)
        try:
            return await client.call(method, params)
        finally:
            await client.close()

    with sandbox.client() as control:
        control.put(
            "/sandbox/faults", json={"error_rate": {"Account/get_account_info": 0.5}, "clear": True}
        )
    answers = [
        asyncio.run(run("Account/get_account_info", {"i_account": FIRST}, attempts=10, cache_ttl=0))
        for _ in range(5)
    ]
    assert all("account_info" in a for a in answers)
    with sandbox.client() as control:
        control.put("/sandbox/faults", json={"error_rate": {"Account/get_account_info": 1.0}})
    with pytest.raises(PortaBillingError) as failed:
        asyncio.run(run("Account/get_account_info", {"i_account": FIRST}, attempts=3))
    assert failed.value.retryable and failed.value.faultcode == "Server.Internal.injected"
    with pytest.raises(PortaBillingError) as refused:
        asyncio.run(run("SIMCard/get_card_list", {}, attempts=3))
    assert refused.value.retryable is False

    async def wrong_password() -> None:
        client = PortaBillingClient(
            PortaBillingSettings(url=sandbox.url, login=API_LOGIN, password="x")
        )
        try:
            await client.call("Account/get_account_info", {"i_account": FIRST})
        finally:
            await client.close()

    with pytest.raises(PortaBillingError) as refused_login:
        asyncio.run(wrong_password())
    assert refused_login.value.retryable is False


def test_concurrency_toward_portabilling_is_bounded(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        control.put(
            "/sandbox/faults",
            json={
                "latency": {"Product/get_product_info": {"mean_ms": 200, "distribution": "fixed"}}
            },
        )

    async def run() -> float:
        client = client_for(sandbox, max_concurrency=2, cache_ttl=0)
        try:
            await client.call("Account/get_account_info", {"i_account": FIRST})  # logs in
            started = time.monotonic()
            await asyncio.gather(
                *(
                    client.call(
                        "Product/get_product_info", {"i_product": 3774 + n % 2}, cached=False
                    )
                    for n in range(6)
                )
            )
            return time.monotonic() - started
        finally:
            await client.close()

    # Six 200 ms calls, two at a time: at least three rounds.
    assert asyncio.run(run()) >= 0.6


def test_the_espf_api_client(sandbox: SandboxServer) -> None:
    async def run() -> int:
        settings = EspfApiSettings(url=sandbox.url, login=API_LOGIN, password=API_PASSWORD)
        espf = EspfApiClient(settings)
        try:
            await espf.set_status(FIRST, "HSS", "IN_PROGRESS")
            await espf.set_status(FIRST, "Provisioning-Lab", "FAILED", error="x" * 5000)
            from datetime import UTC, datetime, timedelta

            return await espf.create_event(
                "Custom/NextMonth", {"i_account": FIRST}, datetime.now(UTC) + timedelta(days=1)
            )
        finally:
            await espf.close()

    i_event = asyncio.run(run())
    statuses = {s["group"]: s for s in sandbox.app.state.sandbox.espf.statuses(FIRST)}
    assert statuses["HSS"]["status"] == "IN_PROGRESS"
    assert statuses["Provisioning-Lab"]["status"] == "FAILED"  # the group was registered first
    assert len(statuses["Provisioning-Lab"]["error"]) == 4000
    assert i_event > 0

    async def unknown_account() -> None:
        espf = EspfApiClient(
            EspfApiSettings(url=sandbox.url, login=API_LOGIN, password=API_PASSWORD)
        )
        try:
            await espf.set_status(1, "HSS", "OK")
        finally:
            await espf.close()

    with pytest.raises(EspfApiError) as missing:
        asyncio.run(unknown_account())
    assert missing.value.status_code == 404 and missing.value.retryable is False


def test_expired_answers_leave_the_cache(sandbox: SandboxServer) -> None:
    now = [0.0]

    async def run() -> int:
        settings = PortaBillingSettings(url=sandbox.url, login=API_LOGIN, password=API_PASSWORD)
        client = PortaBillingClient(settings, clock=lambda: now[0])
        try:
            for i_account in range(FIRST, FIRST + 20):
                await client.call("Account/get_account_info", {"i_account": i_account})
            assert len(client._cache) == 20
            now[0] = 6.0  # past the 5 s TTL
            await client.call("Account/get_account_info", {"i_account": FIRST})
            return len(client._cache)
        finally:
            await client.close()

    assert asyncio.run(run()) == 1


def test_an_event_never_gets_an_answer_read_before_it_arrived(sandbox: SandboxServer) -> None:
    """A subscriber (un)blocked right after a first enrichment: the next event's
    enrichment, within the cache TTL, must see the change (the cache serves only answers
    sent after the event was received)."""

    async def run() -> tuple[bool, bool, bool]:
        client = client_for(sandbox)
        enricher = Enricher(client)
        try:
            first = await enricher.pb_data("Subscriber/Updated", {"i_account": FIRST})
            change = "unblock" if first["account_info"]["blocked"] else "block"
            httpx.post(
                f"{sandbox.url}/sandbox/accounts/{FIRST}/{change}", json={}
            ).raise_for_status()
            received = time.time()
            stale = await enricher.pb_data("Subscriber/Updated", {"i_account": FIRST})
            fresh = await enricher.pb_data(
                "Subscriber/Updated", {"i_account": FIRST}, fresh_after=received
            )
            calls_before = client.calls
            # Another handler of the same event shares the fresh answers.
            again = await enricher.pb_data(
                "Subscriber/Updated", {"i_account": FIRST}, fresh_after=received
            )
            assert client.calls == calls_before and again == fresh
        finally:
            await client.close()
        return (
            first["account_info"]["blocked"],
            stale["account_info"]["blocked"],
            fresh["account_info"]["blocked"],
        )

    first, stale, fresh = asyncio.run(run())
    assert stale == first  # without fresh_after the cached answer is served
    assert fresh is not first


def test_a_sim_event_without_an_account_gets_the_card(sandbox: SandboxServer) -> None:
    """NSPS connector guide: SIM/Created and SIM/Deleted are read for
    `pb_data.sim_info.imsi`; an inventory card names no account."""
    with sandbox.client() as control:
        created = control.post("/sandbox/sims").json()["events"][0]
        i_sim_card = created["variables"]["i_sim_card"]
        pb_data, _ = enrich(sandbox, "SIM/Created", created["variables"])
        assert set(pb_data) == {"sim_info"}
        assert pb_data["sim_info"]["i_sim_card"] == i_sim_card and pb_data["sim_info"]["imsi"]
        pb_data_validator().validate(pb_data)
        # once assigned, the card's account comes with it
        control.post(f"/sandbox/accounts/{FIRST}/sim", json={"i_sim_card": i_sim_card})
        status = control.post(f"/sandbox/sims/{i_sim_card}/status", json={"status": "blocked"})
        changed = status.json()["events"][0]
        assert changed["variables"]["i_account"] == FIRST
        pb_data, _ = enrich(sandbox, "SIM/Updated", {"i_sim_card": i_sim_card})
        assert pb_data["account_info"]["i_account"] == FIRST
        assert pb_data["sim_info"]["status"] == "blocked"
        deleted = control.delete(f"/sandbox/sims/{i_sim_card}").json()["events"][-1]
    pb_data, _ = enrich(sandbox, "SIM/Deleted", {"i_sim_card": i_sim_card})
    assert pb_data["sim_info"]["imsi"] and pb_data["sim_info"]["status"] == "deleted"
    assert deleted["variables"] == {**deleted["variables"], "i_account": FIRST}
    assert enrich(sandbox, "SIM/Created", {"i_sim_card": 1})[0] == {}


def test_only_the_parts_a_handler_reads_are_called_for(sandbox: SandboxServer) -> None:
    """The HSS connector's parts: the account and its SIM cards (2 calls an event); the
    access policy is reference data, read once for many events; no balance counters."""
    api = sandbox.app.state.sandbox.portabilling
    parts = ("account_info", "sim_info", "access_policy_info", "prev_sim_info")

    async def run() -> list[dict[str, Any]]:
        client = client_for(sandbox)
        enricher = Enricher(client)
        try:
            found = []
            for n in range(10):
                # each event received now: the account's own answers are never reused
                found.append(
                    await enricher.pb_data(
                        "Subscriber/Updated",
                        {"i_account": FIRST + n % 2},
                        fresh_after=time.time(),
                        parts=parts,
                    )
                )
            return found
        finally:
            await client.close()

    before = dict(api.calls)
    found = asyncio.run(run())
    made = {k: v - before.get(k, 0) for k, v in api.calls.items() if v != before.get(k, 0)}
    assert made.get("Account/get_account_info") == 10
    assert made.get("SIMCard/get_card_list") == 10
    assert "Account/get_full_vd_counter_info" not in made
    assert "Product/get_product_info" not in made
    assert made.get("AccessPolicy/get_access_policy_info", 0) <= 2  # one per policy
    for pb_data in found:
        assert set(pb_data) <= set(parts) and {"account_info", "sim_info"} <= set(pb_data)
    # Without parts, everything as before.
    full, _ = enrich(sandbox, "Subscriber/Updated", {"i_account": FIRST})
    assert {"full_vd_counter_info", "product_info"} <= set(full)
