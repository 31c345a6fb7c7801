"""The HSS connector's convergence rules, driven with crafted enriched events against the
HSS stand-in over HTTP (PyHSS's quirks included)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opennsps.connector import Event, Rejected
from opennsps.connectors.account_events import NO_ACCOUNT
from opennsps.connectors.hss import HssConnector
from opennsps.sandbox.hss import sim_secrets
from tests.connectors.hss_support import Hss, hss_options, hss_server

IMSI_A, IMSI_B = "001010000099001", "001010000099002"
# One event loop for the whole module: a connector keeps its HTTP client across calls.
LOOP = asyncio.Runner()


@pytest.fixture
def hss() -> Iterator[Hss]:
    with hss_server() as server:
        for imsi in (IMSI_A, IMSI_B):
            ki, opc = sim_secrets(imsi)
            server.state.create_auc({"ki": ki, "opc": opc, "amf": "8000", "imsi": imsi})
        yield server


def enriched(
    i_account: int,
    imsi: str | None,
    *,
    event_type: str = "Subscriber/Updated",
    msisdn: str = "+420700000001",
    blocked: bool = False,
    bill_status: str = "open",
    profile: str = "eps-std",
    prev_imsi: str | None = None,
    gone: bool = False,
) -> dict[str, Any]:
    pb_data: dict[str, Any] = {}
    if not gone:
        pb_data["account_info"] = {
            "i_account": i_account,
            "id": f"{msisdn.lstrip('+')}@msisdn",
            "blocked": blocked,
            "bill_status": bill_status,
        }
        pb_data["access_policy_info"] = {
            "attributes": [{"group_name": "lte", "name": "eps_profile", "value": profile}]
        }
        if imsi:
            pb_data["sim_info"] = {"imsi": imsi, "msisdn": msisdn, "status": "used"}
    if prev_imsi:
        pb_data["prev_sim_info"] = {"imsi": prev_imsi}
    return {
        "event_id": f"ev-{i_account}-{imsi}",
        "data": {"event_type": event_type, "variables": {"i_account": i_account}},
        "pb_data": pb_data,
    }


def run(connector: HssConnector, body: dict[str, Any], times: int = 2) -> list[Any]:
    """Handle the event `times` times (a repeated delivery) and return each answer."""

    async def go() -> list[Any]:
        answers = []
        for _ in range(times):
            context = connector.context(None, None)
            answers.append(await connector.handle(Event.model_validate(body), context))
        return answers

    return LOOP.run(go())


def connector_for(hss: Hss, tmp_path: Path, **options: Any) -> HssConnector:
    return HssConnector(hss_options(hss, tmp_path / "links.db", provisioning_key=None, **options))


def test_create_strips_the_plus_and_a_repeat_changes_nothing(hss: Hss, tmp_path: Path) -> None:
    connector = connector_for(hss, tmp_path)
    answers = run(connector, enriched(1, IMSI_A))
    assert [a["hss"] for a in answers] == ["created", "unchanged"]
    [subscriber] = hss.subscribers().values()
    assert subscriber["msisdn"] == "420700000001"


def test_a_duplicate_answer_converges_the_existing_subscriber(hss: Hss, tmp_path: Path) -> None:
    # Someone created the subscriber between our lookup and our create: PyHSS says 400.
    auc = hss.state.auc_by_imsi(IMSI_A)
    assert auc is not None
    hss.state.create_subscriber(
        {
            "imsi": IMSI_A,
            "auc_id": auc["auc_id"],
            "default_apn": 1,
            "apn_list": "1",
            "enabled": False,
        }
    )
    connector = connector_for(hss, tmp_path)
    [answer] = run(connector, enriched(1, IMSI_A), times=1)
    assert answer["hss"] == "updated"
    assert hss.subscribers()[IMSI_A]["enabled"] is True
    assert hss.subscribers()[IMSI_A]["apn_list"] == "1,2"


def test_status_msisdn_and_profile_changes_converge(hss: Hss, tmp_path: Path) -> None:
    connector = connector_for(hss, tmp_path)
    run(connector, enriched(1, IMSI_A))
    for status in ("suspended", "inactive"):
        run(connector, enriched(1, IMSI_A, bill_status=status))
        assert hss.subscribers()[IMSI_A]["enabled"] is False
    run(connector, enriched(1, IMSI_A, msisdn="+420700000999", profile="eps-premium"))
    subscriber = hss.subscribers()[IMSI_A]
    assert subscriber["msisdn"] == "420700000999"
    assert subscriber["enabled"] is True
    assert (subscriber["default_apn"], subscriber["ue_ambr_dl"]) == (2, 500000)


def test_an_imsi_change_without_a_sim_event_moves_the_subscriber(hss: Hss, tmp_path: Path) -> None:
    connector = connector_for(hss, tmp_path)
    run(connector, enriched(1, IMSI_A))
    # A plain Subscriber/Updated whose pb_data shows another SIM: the link knows the old one.
    run(connector, enriched(1, IMSI_B))
    assert set(hss.subscribers()) == {IMSI_B}


def test_an_imsi_now_serving_another_account_is_left_alone(hss: Hss, tmp_path: Path) -> None:
    connector = connector_for(hss, tmp_path)
    run(connector, enriched(1, IMSI_A))
    run(connector, enriched(1, IMSI_B, event_type="SIM/Replaced", prev_imsi=IMSI_A))
    run(connector, enriched(2, IMSI_A))  # the old SIM went to account 2
    # An old SIM/Replaced of account 1 delivered again must not remove account 2's subscriber.
    run(connector, enriched(1, IMSI_B, event_type="SIM/Replaced", prev_imsi=IMSI_A))
    assert set(hss.subscribers()) == {IMSI_A, IMSI_B}


def test_deleted_or_terminated_accounts_lose_their_subscriber(hss: Hss, tmp_path: Path) -> None:
    connector = connector_for(hss, tmp_path)
    run(connector, enriched(1, IMSI_A))
    run(connector, enriched(2, IMSI_B))
    answers = run(connector, enriched(1, None, event_type="Subscriber/Deleted", gone=True))
    assert answers[0]["removed"] == [IMSI_A] and answers[1]["removed"] == []
    run(connector, enriched(2, IMSI_B, bill_status="terminated"))
    assert hss.subscribers() == {}


def test_a_sim_event_about_a_card_no_account_holds_changes_nothing(
    hss: Hss, tmp_path: Path
) -> None:
    """SIM/Created of an inventory card, or the released card's SIM/Updated, name no
    account: delivered, nothing to provision (the account's own events move its IMSI)."""
    connector = connector_for(hss, tmp_path)
    run(connector, enriched(1, IMSI_A))
    for event_type in ("SIM/Created", "SIM/Updated", "SIM/Deleted"):
        body = {
            "event_id": f"inventory-{event_type}",
            "data": {"event_type": event_type, "variables": {"i_sim_card": 3001}},
            "pb_data": {"sim_info": {"i_sim_card": 3001, "imsi": IMSI_B, "status": "active"}},
        }
        assert run(connector, body) == [{"hss": NO_ACCOUNT}] * 2
    assert set(hss.subscribers()) == {IMSI_A}


def test_an_unmapped_profile_or_missing_account_is_rejected(hss: Hss, tmp_path: Path) -> None:
    connector = connector_for(hss, tmp_path)
    with pytest.raises(Rejected, match="eps-gold"):
        run(connector, enriched(1, IMSI_A, profile="eps-gold"), times=1)
    body = enriched(1, IMSI_A)
    body["data"]["variables"] = {}
    body["pb_data"] = {}
    with pytest.raises(Rejected, match="no i_account"):
        run(connector, body, times=1)
    with_default = connector_for(hss, tmp_path, default_profile="eps-iot")
    with pytest.raises(Rejected, match="eps-gold"):  # a named but unmapped profile
        run(with_default, enriched(1, IMSI_A, profile="eps-gold"), times=1)
    no_policy = enriched(1, IMSI_A)
    del no_policy["pb_data"]["access_policy_info"]
    run(with_default, no_policy, times=1)
    assert hss.subscribers()[IMSI_A]["apn_list"] == "1"


def test_bad_options_are_refused_with_the_key_named(hss: Hss, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="default_profile"):
        connector_for(hss, tmp_path, default_profile="nope")
    with pytest.raises(ValueError, match="profiles"):
        HssConnector({"url": hss.url, "profiles": {}})
