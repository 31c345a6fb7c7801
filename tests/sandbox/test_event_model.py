"""The sandbox's event model: the EventSender's subscriptions, and the changes a real
PortaBilling makes that the ESPF guide and the NSPS connector guide name (customer status,
product with its policy and add-ons, bundles, the SIM inventory)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from opennsps.sandbox import changes, dataset, records
from opennsps.sandbox.eventsender import EVENT_TYPES
from tests.sandbox.conftest import API_LOGIN, API_PASSWORD, Receiver, start_sandbox

FIRST = 100_001
SUBSCRIPTIONS = "/sandbox/eventsender/subscriptions"


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def db(dataset_file: Path) -> Iterator[sqlite3.Connection]:
    connection = dataset.connect(dataset_file)
    yield connection
    connection.close()


def types(events: list[changes.Event]) -> list[str]:
    return [event_type for event_type, _ in events]


def account(db: sqlite3.Connection, i_account: int) -> dict[str, Any]:
    info = records.account_info(db, i_account)
    assert info is not None
    return info


# -- subscriptions -----------------------------------------------------------------------


def test_the_eventsender_sends_only_the_types_it_is_subscribed_to(
    dataset_file: Path, receiver: Receiver
) -> None:
    for sandbox in start_sandbox(dataset_file, url=receiver.url, rate=200):
        with sandbox.client() as client:
            assert client.get(SUBSCRIPTIONS).json()["subscriptions"] == sorted(EVENT_TYPES)
            left = client.delete(f"{SUBSCRIPTIONS}/SIM/Updated").json()["subscriptions"]
            assert "SIM/Updated" not in left and "SIM/Replaced" in left
            answer = client.post(f"/sandbox/accounts/{FIRST}/block").json()
            assert [e["event_type"] for e in answer["events"]] == ["Subscriber/Updated"]
            assert answer["not_sent"] == [
                {
                    "event_type": "SIM/Updated",
                    "variables": {"i_account": FIRST},
                    "reason": "not subscribed",
                }
            ]
            unknown = client.post(SUBSCRIPTIONS, json={"event_type": "Account/Vanished"})
            assert unknown.status_code == 400 and "unknown event type" in unknown.json()["error"]
            again = client.delete(f"{SUBSCRIPTIONS}/SIM/Updated")
            assert again.status_code == 400 and "not subscribed" in again.json()["error"]
            # a custom type is sent once subscribed to (ESPF guide: evctl.pl handler subscribe)
            client.post(SUBSCRIPTIONS, json={"event_type": "Custom/Reminder"}).raise_for_status()
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            with httpx.Client(base_url=sandbox.url, auth=(API_LOGIN, API_PASSWORD)) as espf:
                for event_type in ("Custom/Unheard", "Custom/Reminder"):
                    espf.post(
                        "/espf/v1/event/create",
                        json={
                            "event_type": event_type,
                            "variables": {"i_account": FIRST},
                            "start_time": now,
                        },
                    ).raise_for_status()
            wait_for(lambda: len(receiver.received) == 2)
            replaced = client.put(SUBSCRIPTIONS, json={"event_types": ["Subscriber/Deleted"]})
            assert replaced.json()["subscriptions"] == ["Subscriber/Deleted"]
            bad = client.put(SUBSCRIPTIONS, json={"event_types": "Subscriber/Deleted"})
            assert bad.status_code == 400
    sent = [json.loads(r["body"])["event_type"] for r in receiver.received]
    assert sent == ["Subscriber/Updated", "Custom/Reminder"]


def test_subscriptions_set_at_start_stay_with_the_dataset(dataset_file: Path) -> None:
    chosen = ["Subscriber/Created", "Subscriber/Deleted", "Subscriber/Updated"]
    for sandbox in start_sandbox(dataset_file, subscriptions=chosen):
        with sandbox.client() as client:
            assert client.get(SUBSCRIPTIONS).json()["subscriptions"] == chosen
            client.post(SUBSCRIPTIONS, json={"event_type": "SIM/Replaced"}).raise_for_status()
    for sandbox in start_sandbox(dataset_file):
        with sandbox.client() as client:
            kept = client.get(SUBSCRIPTIONS).json()["subscriptions"]
            answer = client.post(f"/sandbox/accounts/{FIRST}/sim", json={}).json()
    assert kept == sorted([*chosen, "SIM/Replaced"])
    assert [e["event_type"] for e in answer["events"]] == ["Subscriber/Updated", "SIM/Replaced"]
    assert [e["event_type"] for e in answer["not_sent"]] == ["SIM/Updated", "SIM/Updated"]


# -- changes -----------------------------------------------------------------------------


def test_a_customer_status_reaches_every_account_of_the_customer(db: sqlite3.Connection) -> None:
    customer_accounts = list(range(FIRST, FIRST + 5))  # customer 6001 holds 100001..100005
    assert {account(db, i)["i_customer"] for i in customer_accounts} == {6001}
    suspended = changes.update_customer(db, 6001, bill_status="S")
    assert types(suspended) == ["Customer/Updated"] + ["Subscriber/Updated", "SIM/Updated"] * 5
    assert [v.get("i_account") for _, v in suspended[1:]] == [
        i for i in customer_accounts for _ in range(2)
    ]
    for i_account in customer_accounts:
        info = account(db, i_account)
        if info["status"] != "closed":
            assert info["bill_status"] in {"S", "I"}
    open_before = [i for i in customer_accounts if account(db, i)["status"] == "customer_suspended"]
    assert open_before, "an open account of a suspended customer is suspended by it"
    assert types(changes.update_customer(db, 6001, name="Same status")) == ["Customer/Updated"]
    changes.update_customer(db, 6001, bill_status="O")
    assert all(account(db, i)["status"] != "customer_suspended" for i in customer_accounts)

    ended = changes.delete_customer(db, 6001)
    assert types(ended)[-1] == "Customer/Deleted"
    assert types(ended).count("Subscriber/Deleted") == 5
    closed = [account(db, i) for i in customer_accounts]
    assert {(a["bill_status"], a["status"]) for a in closed} == {("C", "closed")}
    assert all(records.card_list(db, i) == [] for i in customer_accounts)
    customer = records.customer_info(db, 6001)
    assert customer is not None and customer["bill_status"] == "C"
    with pytest.raises(changes.ChangeError, match="no customer 6001"):
        changes.update_customer(db, 6001, name="gone")


def test_a_product_change_brings_the_products_policy_and_add_ons(db: sqlite3.Connection) -> None:
    created = changes.create_account(db)  # Pay as you go: LTE standard, no add-ons
    i_account = created[0][1]["i_account"]
    info = account(db, i_account)
    assert _policy(info) == "179" and info["assigned_addons"] == []
    changes.add_addon(db, i_account, 3775)

    moved = changes.change_product(db, i_account, 3776)  # Unlimited: premium + Roaming Pack
    assert types(moved) == ["Subscriber/Updated"]  # no SIM yet: no SIM/Updated
    info = account(db, i_account)
    assert _policy(info) == "180"
    assert [a["i_product"] for a in info["assigned_addons"]] == [3775, 3779]

    changes.assign_sim(db, i_account)
    iot = changes.change_product(db, i_account, 3778)  # IoT allows no add-ons
    assert types(iot) == ["Subscriber/Updated", "SIM/Updated"]
    info = account(db, i_account)
    assert _policy(info) == "181" and info["assigned_addons"] == []
    with pytest.raises(changes.ChangeError, match="not allowed"):
        changes.add_addon(db, i_account, 3775)
    with pytest.raises(changes.ChangeError, match="no main product 3775"):
        changes.change_product(db, i_account, 3775)


def _policy(info: dict[str, Any]) -> str:
    feature = info["service_features"][0]
    assert feature["name"] == "netaccess_policy"
    value: str = feature["attributes"][0]["effective_value"]
    return value


def test_an_exhausted_voice_bundle_is_a_sim_trigger_and_renewal_makes_quota_available(
    db: sqlite3.Connection,
) -> None:
    created = changes.create_account(db, i_product=3777)  # Voice 300
    i_account = created[0][1]["i_account"]
    changes.assign_sim(db, i_account)
    assert types(changes.exceed_quota(db, i_account)) == [
        "Account/Service/QuotaExceeded",
        "SIM/Updated",
    ]
    counters = records.full_vd_counter_info(db, i_account)
    assert [c["remaining"] for c in counters] == ["0"]
    assert types(changes.renew_bundles(db, i_account)) == [
        "Subscriber/Updated",
        "SIM/Updated",
        "Account/Service/QuotaAvailable",
    ]
    assert [c["remaining"] for c in records.full_vd_counter_info(db, i_account)] == ["300"]
    # nothing had run out: no QuotaAvailable
    assert "Account/Service/QuotaAvailable" not in types(changes.renew_bundles(db, i_account))


def test_the_sim_inventory_emits_sim_events(db: sqlite3.Connection) -> None:
    added = changes.add_sim(db)
    assert types(added) == ["SIM/Created"] and set(added[0][1]) == {"i_sim_card"}
    i_sim_card = added[0][1]["i_sim_card"]
    card = records.card_info(db, i_sim_card, None)
    assert card is not None and card["status"] == "active" and len(card["imsi"]) == 15

    reserved = changes.set_sim_status(db, i_sim_card, "reserved")
    assert reserved == [
        (
            "SIM/Updated",
            {"i_sim_card": i_sim_card, "curr_status": "reserved", "prev_status": "active"},
        )
    ]
    with pytest.raises(changes.ChangeError, match="not available"):
        changes.assign_sim(db, FIRST, i_sim_card)
    with pytest.raises(changes.ChangeError, match="free SIM card's status must be one of"):
        changes.set_sim_status(db, i_sim_card, "used")
    assert changes.set_sim_status(db, i_sim_card, "active")[0][1]["prev_status"] == "reserved"
    assert changes.set_sim_status(db, i_sim_card, "active") == []

    changes.assign_sim(db, FIRST, i_sim_card)
    blocked = changes.set_sim_status(db, i_sim_card, "blocked")
    assert blocked[0][1] == {
        "i_sim_card": i_sim_card,
        "i_account": FIRST,
        "curr_status": "blocked",
        "prev_status": "used",
    }
    removed = changes.remove_sim(db, i_sim_card)
    assert removed == [
        ("Subscriber/Updated", {"i_account": FIRST}),
        ("SIM/Replaced", {"i_account": FIRST, "prev_i_sim_card": i_sim_card}),
        ("SIM/Deleted", {"i_sim_card": i_sim_card, "i_account": FIRST}),
    ]
    assert records.card_list(db, FIRST) == []
    gone = records.card_info(db, i_sim_card, None)
    assert gone is not None and gone["status"] == "deleted" and gone["i_account"] is None
    with pytest.raises(changes.ChangeError, match=f"no SIM card {i_sim_card}"):
        changes.remove_sim(db, i_sim_card)
    free = changes.add_sim(db)[0][1]["i_sim_card"]
    assert changes.remove_sim(db, free) == [("SIM/Deleted", {"i_sim_card": free})]
