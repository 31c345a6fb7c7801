"""The HSS connector end to end: sandbox PortaBilling → OpenNSPS → HSS connector → HSS
stand-in (PyHSS's API and quirks), through a subscriber's whole life, every delivery
repeated, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.connectors.hss_support import PROVISIONING_KEY, hss_handler, hss_server
from tests.pipeline.harness import Gateway, Sandbox, wait_for, wired


def settled(gw: Gateway) -> dict[str, int] | None:
    with gw.api() as api:
        stats = api.get("/stats").json()
    states: dict[str, int] = stats["deliveries_by_state"]
    open_ = states.get("pending", 0) + states.get("in_flight", 0)
    return None if open_ or stats["status_outbox_backlog"] else states


def step(sandbox: Sandbox, gw: Gateway, method: str, path: str, body: Any = None) -> None:
    answer = httpx.request(method, f"{sandbox.url}{path}", json=body or {}, timeout=10)
    answer.raise_for_status()
    wait_for(lambda: sandbox.get("/sandbox/eventsender?limit=0")["queue"]["pending"] == 0)
    wait_for(lambda: settled(gw), what="every delivery finished")


def replay_account(gw: Gateway, i_account: int) -> int:
    with gw.api() as api:
        answer = api.post("/replay", json={"i_account": i_account})
    answer.raise_for_status()
    replayed: int = answer.json()["replayed"]
    wait_for(lambda: settled(gw), what="every replayed delivery finished")
    return replayed


def portabilling(sandbox: Sandbox, method: str, i_account: int) -> dict[str, Any]:
    """One call of the sandbox's PortaBilling JSON API, as OpenNSPS makes it."""
    answer = httpx.post(
        f"{sandbox.url}/rest/{method}",
        data={
            "auth_info": '{"login": "opennsps", "password": "sandbox-password"}',
            "params": f'{{"i_account": {i_account}}}',
        },
        timeout=10,
    )
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found


def imsi_of(sandbox: Sandbox, i_account: int) -> str:
    return str(portabilling(sandbox, "SIMCard/get_card_list", i_account)["card_list"][0]["imsi"])


def non_delivered_attempts(gw: Gateway) -> list[dict[str, Any]]:
    with gw.api() as api:
        items = api.get("/attempts", params={"limit": 500}).json()["items"]
    return [a for a in items if a["outcome"] != "delivered"]


def test_a_subscriber_lifecycle_converges_the_hss_and_every_repeat_changes_nothing(
    store_url: str, dataset_file: Path, tmp_path: Path
) -> None:
    with (
        hss_server(dataset_file, provisioning_key=PROVISIONING_KEY) as hss,
        wired(store_url, dataset_file, lambda _: [hss_handler(hss, tmp_path / "links.db")]) as (
            sandbox,
            gw,
            _,
        ),
    ):
        created = httpx.post(f"{sandbox.url}/sandbox/accounts", json={}, timeout=10).json()
        i_account = created["events"][0]["variables"]["i_account"]
        account = f"/sandbox/accounts/{i_account}"
        wait_for(lambda: settled(gw))

        def repeated(check: Any) -> None:
            """Check the HSS, replay every event of the account so far, check again."""
            before = hss.subscribers()
            check(before)
            assert replay_account(gw, i_account) >= 1
            assert hss.subscribers() == before
            check(hss.subscribers())
            assert non_delivered_attempts(gw) == []

        # Created without a SIM: nothing to provision yet.
        repeated(lambda subs: _no_subscriber_for(subs, i_account))

        step(sandbox, gw, "POST", f"{account}/sim")
        first_imsi = imsi_of(sandbox, i_account)

        def active(subs: dict[str, dict[str, Any]], premium: bool = False) -> None:
            subscriber = subs[first_imsi]
            assert subscriber["enabled"] is True
            assert subscriber["msisdn"] == created_msisdn(sandbox, i_account)
            assert subscriber["default_apn"] == (2 if premium else 1)
            assert subscriber["apn_list"] == "1,2"
            bitrates = (500000, 200000) if premium else (100000, 50000)
            assert (subscriber["ue_ambr_dl"], subscriber["ue_ambr_ul"]) == bitrates
            auc = hss.state.auc_by_imsi(first_imsi)
            assert auc is not None and subscriber["auc_id"] == auc["auc_id"]

        repeated(active)

        # Unlimited Talk 5GB brings its access policy, LTE premium: the HSS changes with it.
        step(sandbox, gw, "POST", f"{account}/product", {"i_product": 3776})
        repeated(lambda subs: active(subs, premium=True))

        step(sandbox, gw, "POST", f"{account}/block")
        repeated(lambda subs: _assert(subs[first_imsi]["enabled"] is False))

        step(sandbox, gw, "POST", f"{account}/unblock")
        repeated(lambda subs: _assert(subs[first_imsi]["enabled"] is True))

        step(sandbox, gw, "POST", f"{account}/sim")
        second_imsi = imsi_of(sandbox, i_account)
        assert second_imsi != first_imsi

        def moved(subs: dict[str, dict[str, Any]]) -> None:
            assert first_imsi not in subs
            assert subs[second_imsi]["enabled"] is True

        repeated(moved)

        step(sandbox, gw, "DELETE", account)
        repeated(lambda subs: _assert(first_imsi not in subs and second_imsi not in subs))

        # Every outcome went back to PortaBilling under the HSS group.
        statuses = sandbox.get(f"/sandbox/statuses/{i_account}")
        [latest] = statuses["latest"]
        assert (latest["group"], latest["status"], latest["error"]) == ("HSS", "OK", None)
        # The plug-in's secret options never leave the server.
        with gw.api() as api:
            view = api.get("/handlers/hss").json()
        assert view["python"]["options"]["provisioning_key"] == "[redacted]"
        assert PROVISIONING_KEY not in str(view)


def created_msisdn(sandbox: Sandbox, i_account: int) -> str:
    info = portabilling(sandbox, "Account/get_account_info", i_account)["account_info"]
    return str(info["id"]).split("@")[0]


def _assert(condition: bool) -> None:
    assert condition


def _no_subscriber_for(subs: dict[str, dict[str, Any]], i_account: int) -> None:
    assert all(s["msisdn"] != str(i_account) for s in subs.values())
    assert len(subs) == 0


def test_a_sim_without_its_secrets_in_the_hss_is_rejected_with_the_reason(
    dataset_file: Path, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    with (
        hss_server(None) as hss,  # the SIM vendor's file was never loaded
        wired(store_url, dataset_file, lambda _: [hss_handler(hss, tmp_path / "links.db")]) as (
            sandbox,
            gw,
            _,
        ),
    ):
        sandbox.post("/sandbox/accounts/100001/block")
        wait_for(lambda: settled(gw))
        attempts = non_delivered_attempts(gw)  # Subscriber/Updated and SIM/Updated
        assert [a["outcome"] for a in attempts] == ["rejected", "rejected"]
        assert all("no AUC for IMSI" in a["error"] for a in attempts)
        assert hss.subscribers() == {}
        latest = sandbox.get("/sandbox/statuses/100001")["latest"][0]
        assert latest["status"] == "FAILED" and "no AUC for IMSI" in latest["error"]


def test_a_wrong_provisioning_key_is_retried_as_a_configuration_problem(
    dataset_file: Path, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    with (
        hss_server(dataset_file, provisioning_key="another-key-entirely-000") as hss,
        wired(store_url, dataset_file, lambda _: [hss_handler(hss, tmp_path / "links.db")]) as (
            sandbox,
            gw,
            _,
        ),
    ):
        sandbox.post("/sandbox/accounts/100001/block")

        def flagged() -> list[dict[str, Any]]:
            return [a for a in non_delivered_attempts(gw) if a["configuration_problem"]]

        [first, *_] = wait_for(flagged, what="a flagged attempt")
        assert first["outcome"] == "retry"
        assert "Provisioning-Key" in first["error"]
        assert hss.subscribers() == {}
