"""The HSS connector against the real PyHSS 2.0.0 (tests/connectors/pyhss.py), end to end:
sandbox PortaBilling → OpenNSPS → HSS connector → PyHSS's API.

The initial load by `reconcile --fix`, a new subscriber's whole life, and the same changes on
subscribers PyHSS records as attached to an MME (the case the stand-in could not show: PyHSS
cannot take its own timestamps back, so a connector that echoes the object it read fails).
Afterwards PyHSS holds exactly what PortaBilling holds, reconciliation finds no drift, no
delivery is retrying or dead and every provisioning status is OK.

The store is SQLite only: the store engine does not change what reaches PyHSS, and the
pipeline's PostgreSQL paths run in the stand-in's tests.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from opennsps.config import Settings
from opennsps.connector import Event
from opennsps.connector.errors import Unavailable
from opennsps.connectors.hss import HssConnector
from opennsps.connectors.hss.client import Duplicate, PyHssClient
from opennsps.sandbox.hss import sim_secrets
from tests.connectors.hss_support import PROFILES, PROVISIONING_KEY, hss_handler, reconcile
from tests.connectors.pyhss import RealPyHss, real_pyhss
from tests.connectors.test_hss_connector import imsi_of, non_delivered_attempts, settled
from tests.pipeline.harness import Gateway, Sandbox, gateway, gateway_config, sandbox_server
from tests.pipeline.harness import wait_for as wait_until

pytestmark = pytest.mark.slow
ACCOUNTS = 200  # tests/conftest.py's dataset
FREE_SIMS_LOADED = 20  # new SIMs come from the lowest free ones
PREMIUM = 180  # access policy "LTE premium": eps-premium (default APN 2, 500000/200000)
SETTLE = 120.0


def wait_for(condition: Any, what: str) -> Any:
    return wait_until(condition, timeout=SETTLE, what=what)


@pytest.fixture
def pyhss(tmp_path: Path, dataset_file: Path) -> Iterator[RealPyHss]:
    """The real PyHSS with the SIM vendor's file loaded (the AUC of every SIM in use and of
    the first free ones)."""
    with real_pyhss(tmp_path / "pyhss", PROVISIONING_KEY) as hss:
        with sqlite3.connect(dataset_file) as db:
            sims = db.execute(
                "SELECT imsi, iccid FROM sim_cards WHERE i_account IS NOT NULL UNION ALL "
                "SELECT * FROM (SELECT imsi, iccid FROM sim_cards WHERE i_account IS NULL "
                "ORDER BY i_sim_card LIMIT ?)",
                (FREE_SIMS_LOADED,),
            ).fetchall()
        with hss.client() as api:
            for imsi, iccid in sims:
                ki, opc = sim_secrets(imsi)
                auc = {"ki": ki, "opc": opc, "amf": "8000", "imsi": imsi, "iccid": iccid}
                api.put("/auc/", json=auc).raise_for_status()
        yield hss


def change(sandbox: Sandbox, gw: Gateway, method: str, path: str, body: Any = None) -> None:
    """One change in PortaBilling; returns when OpenNSPS has delivered what it caused."""
    httpx.request(method, f"{sandbox.url}{path}", json=body or {}, timeout=10).raise_for_status()
    wait_for(
        lambda: sandbox.get("/sandbox/eventsender?limit=0")["queue"]["pending"] == 0,
        "the EventSender's queue to empty",
    )
    wait_for(lambda: settled(gw), "every delivery finished")
    assert non_delivered_attempts(gw) == [], "a delivery to the real PyHSS did not succeed"


def portabilling_view(dataset: Path, i_account: int) -> dict[str, Any]:
    """What the HSS must hold for the account, worked out from PortaBilling's raw records."""
    db = sqlite3.connect(dataset)
    try:
        # a suspended or closed customer suspends or closes its accounts
        account = db.execute(
            "SELECT CASE WHEN c.bill_status = 'C' THEN 'C'"
            " WHEN c.bill_status = 'S' AND a.bill_status = 'O' THEN 'S' ELSE a.bill_status END,"
            " a.blocked, a.i_access_policy, a.deleted"
            " FROM accounts a JOIN customers c USING (i_customer) WHERE a.i_account = ?",
            (i_account,),
        ).fetchone()
        sim = db.execute(
            "SELECT imsi, msisdn FROM sim_cards WHERE i_account = ?", (i_account,)
        ).fetchone()
    finally:
        db.close()
    bill_status, blocked, policy, deleted = account
    if deleted or sim is None or bill_status == "C":
        return {}
    default_apn, ambr = (2, (500000, 200000)) if policy == PREMIUM else (1, (100000, 50000))
    return {
        sim[0]: {
            "msisdn": sim[1],
            "enabled": bill_status == "O" and blocked == "N",
            "default_apn": default_apn,
            "apn_list": "1,2",
            "ue_ambr_dl": ambr[0],
            "ue_ambr_ul": ambr[1],
        }
    }


def portabilling_customer(dataset: Path, i_account: int) -> str:
    """The control API path of the account's customer."""
    db = sqlite3.connect(dataset)
    try:
        (i_customer,) = db.execute(
            "SELECT i_customer FROM accounts WHERE i_account = ?", (i_account,)
        ).fetchone()
    finally:
        db.close()
    return f"/sandbox/customers/{i_customer}"


def hss_view(pyhss: RealPyHss, imsis: set[str]) -> dict[str, Any]:
    subscribers = pyhss.subscribers()
    owned = ("msisdn", "enabled", "default_apn", "apn_list", "ue_ambr_dl", "ue_ambr_ul")
    return {
        imsi: {name: subscribers[imsi][name] for name in owned}
        for imsi in imsis
        if imsi in subscribers
    }


def test_the_real_pyhss_follows_portabilling_through_every_change_attached_or_not(
    pyhss: RealPyHss, dataset_file: Path, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'opennsps.db'}"
    with sandbox_server(dataset_file) as sandbox:
        data = gateway_config(store_url, sandbox.url, [hss_handler(pyhss, tmp_path / "links.db")])
        config = tmp_path / "opennsps.yaml"
        config.write_text(yaml.safe_dump(data))
        with gateway(Settings.model_validate(data)) as gw:
            sandbox.point_sender_at(f"{gw.url}/espf/events")
            imsis_seen: dict[int, set[str]] = {}

            def agrees(i_account: int) -> None:
                """The HSS holds, of every IMSI the account ever had, what PortaBilling says."""
                seen = imsis_seen.setdefault(i_account, set())
                seen.add(imsi_of_or_none(sandbox, i_account) or "")
                wanted = portabilling_view(dataset_file, i_account)
                assert hss_view(pyhss, seen) == wanted

            # Initial load: the HSS starts empty; reconcile --fix enqueues one repair each.
            code, output = reconcile(config, "--fix")
            assert code == 3 and f"enqueued {ACCOUNTS} repair event(s)" in output, output
            wait_for(lambda: settled(gw) == {"delivered": ACCOUNTS}, "the initial load")
            assert len(pyhss.subscribers()) == ACCOUNTS

            # A new subscriber's whole life.
            created = sandbox.post("/sandbox/accounts")
            i_account = created["events"][0]["variables"]["i_account"]
            account = f"/sandbox/accounts/{i_account}"
            wait_for(lambda: settled(gw), "the creation delivered")
            customer = portabilling_customer(dataset_file, i_account)
            steps: list[tuple[str, str, dict[str, Any] | None]] = [
                ("POST", f"{account}/sim", None),
                ("POST", f"{account}/product", {"i_product": 3776}),  # LTE premium with it
                ("POST", f"{account}/product", {"i_product": 3774}),  # back to LTE standard
                ("POST", f"{account}/access-policy", {"i_access_policy": PREMIUM}),
                ("POST", customer, {"bill_status": "S"}),  # the customer suspended
                ("POST", customer, {"bill_status": "O"}),
                ("POST", f"{account}/block", None),
                ("POST", f"{account}/unblock", None),
                ("POST", f"{account}/bill-status", {"bill_status": "S"}),
                ("POST", f"{account}/bill-status", {"bill_status": "O"}),
                ("POST", f"{account}/sim", None),  # the SIM replaced
                ("POST", f"{account}/bill-status", {"bill_status": "C"}),  # closed
                ("DELETE", account, None),
            ]
            for method, path, body in steps:
                change(sandbox, gw, method, path, body)
                agrees(i_account)
            assert len(imsis_seen[i_account] - {""}) == 2, "the new subscriber had two SIMs"

            # The same changes on subscribers attached to an MME.
            first, second = 100001, 100002
            for attached in (first, second):
                pyhss.attach(imsi_of(sandbox, attached))
                agrees(attached)
            attach_time = pyhss.subscribers()[imsi_of(sandbox, first)]["serving_mme_timestamp"]
            for method, path, body in [
                ("POST", f"/sandbox/accounts/{first}/access-policy", {"i_access_policy": PREMIUM}),
                ("POST", f"/sandbox/accounts/{first}/block", None),
                ("POST", f"/sandbox/accounts/{first}/unblock", None),
                ("POST", f"/sandbox/accounts/{first}/bill-status", {"bill_status": "S"}),
                ("POST", f"/sandbox/accounts/{first}/bill-status", {"bill_status": "O"}),
            ]:
                change(sandbox, gw, method, path, body)
                agrees(first)
                attached_now = pyhss.subscribers()[imsi_of(sandbox, first)]
                # PyHSS's own fields are left alone: still attached, same attach time.
                assert attached_now["serving_mme"] == "mme01.epc.example"
                assert attached_now["serving_mme_timestamp"] == attach_time
            # Barring an attached subscriber made PyHSS cancel its location at the MME.
            assert "Sent CLR via Peer mme01.epc.example" in pyhss.log()
            old_imsi = imsi_of(sandbox, second)
            change(sandbox, gw, "POST", f"/sandbox/accounts/{second}/sim")
            agrees(second)
            assert old_imsi not in pyhss.subscribers()
            change(sandbox, gw, "DELETE", f"/sandbox/accounts/{first}")
            agrees(first)

            # PyHSS agrees with PortaBilling, as reconciliation proves on its own.
            code, output = reconcile(config)
            assert code == 0, output
            assert "0 drift" in output
            with gw.api() as api:
                states = api.get("/stats").json()["deliveries_by_state"]
            assert set(states) == {"delivered"}, states
            latest = sandbox.get("/sandbox/statuses")["latest_by_group"]
            assert set(latest) == {"HSS"} and set(latest["HSS"]) == {"OK"}, latest


def imsi_of_or_none(sandbox: Sandbox, i_account: int) -> str | None:
    try:
        return imsi_of(sandbox, i_account)
    except (IndexError, KeyError, httpx.HTTPError):
        return None


def enriched(i_account: int, imsi: str, **account: Any) -> Event:
    """An enriched Subscriber/Updated as the pipeline hands it to the connector."""
    return Event.model_validate(
        {
            "event_id": f"ev-{i_account}",
            "data": {"event_type": "Subscriber/Updated", "variables": {"i_account": i_account}},
            "pb_data": {
                "account_info": {
                    "i_account": i_account,
                    "id": f"4207{i_account}@msisdn",
                    "bill_status": "open",
                    "blocked": False,
                    **account,
                },
                "access_policy_info": {
                    "attributes": [{"group_name": "lte", "name": "eps_profile", "value": "eps-std"}]
                },
                "sim_info": {"imsi": imsi, "msisdn": f"+4207{i_account}", "status": "used"},
            },
        }
    )


def handled(connector: HssConnector, event: Event) -> dict[str, Any]:
    async def once() -> dict[str, Any]:
        return await connector.handle(event, connector.context(None, None))

    return asyncio.run(once())


def connector_for(hss: RealPyHss, links: Path) -> HssConnector:
    return HssConnector(
        {"url": hss.url, "provisioning_key": PROVISIONING_KEY, "links": f"sqlite:///{links}",
         "profiles": PROFILES, "timeout": 30}
    )  # fmt: skip


def with_auc(hss: RealPyHss, imsi: str) -> None:
    ki, opc = sim_secrets(imsi)
    with hss.client() as api:
        api.put("/auc/", json={"ki": ki, "opc": opc, "amf": "8000", "imsi": imsi})


def test_a_locked_pyhss_database_is_retried_not_rejected(tmp_path: Path) -> None:
    imsi = "001010000077001"
    with real_pyhss(tmp_path / "pyhss", PROVISIONING_KEY) as hss:
        with_auc(hss, imsi)
        assert handled(connector_for(hss, tmp_path / "links.db"), enriched(7, imsi)) == {
            "hss": "created",
            "removed": [],
        }
        holder = sqlite3.connect(hss.workdir / "hss.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds PyHSS's SQLite database
        try:
            with pytest.raises(Unavailable, match="database is locked") as locked:
                handled(connector_for(hss, tmp_path / "links.db"), enriched(7, imsi, blocked=True))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert locked.value.retryable
        barred = handled(connector_for(hss, tmp_path / "links.db"), enriched(7, imsi, blocked=True))
        assert barred["hss"] == "updated"
        assert hss.subscribers()[imsi]["enabled"] is False


@pytest.mark.postgres
def test_on_postgresql_pyhss_answers_a_duplicate_with_null_and_it_is_still_recognised(
    tmp_path: Path, postgres_url: str
) -> None:
    imsi = "001010000078001"
    with real_pyhss(tmp_path / "pyhss", PROVISIONING_KEY, postgres_url) as hss:
        with_auc(hss, imsi)
        connector = connector_for(hss, tmp_path / "links.db")
        assert handled(connector, enriched(8, imsi))["hss"] == "created"
        body = {"imsi": imsi, "auc_id": 1, "default_apn": 1, "apn_list": "1"}
        with hss.client() as api:
            answer = api.put("/subscriber/", json=body)
        # Its error handler knows SQLite's "IntegrityError" wording, not psycopg's.
        assert (answer.status_code, answer.json()) == (200, None)

        async def create_again() -> None:
            client = PyHssClient(hss.url, provisioning_key=PROVISIONING_KEY, timeout=30)
            try:
                await client.create_subscriber(body)
            finally:
                await client.close()

        with pytest.raises(Duplicate, match=f"already holds a subscriber for IMSI {imsi}"):
            asyncio.run(create_again())
        # Everything else works the same on PostgreSQL: an attached subscriber is barred.
        hss.attach(imsi)
        assert handled(connector, enriched(8, imsi, blocked=True))["hss"] == "updated"
        assert hss.subscribers()[imsi]["enabled"] is False
