"""EventSender semantics against a recording receiver, and into the real OpenNSPS ingress."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest

from opennsps.app import create_app
from opennsps.sandbox.eventsender import SenderAuth
from opennsps.store.event_store import EventStore
from tests.sandbox.conftest import Receiver, SandboxServer, start_sandbox
from tests.support import (
    BASIC_PASSWORD,
    BASIC_USER,
    BEARER_I_ENV,
    BEARER_KEYS,
    CUSTOM_CREDENTIALS,
    CUSTOM_TYPE,
    SIGNATURE_KEYS,
    running,
    settings_for,
)

FIRST = 100_001


def wait_for(condition: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def bodies(receiver: Receiver) -> list[dict[str, object]]:
    return [json.loads(r["body"]) for r in receiver.received]


SUB_UPDATED = "Subscriber/Updated"
SIM_UPDATED = "SIM/Updated"


def test_changes_emit_both_event_families_in_order(dataset_file: Path, receiver: Receiver) -> None:
    """Every change emits the events of docs/sandbox.md's table: the ESPF guide's group
    event and the NSPS connector guide's SIM events, in one increasing i_event order."""
    for sandbox in start_sandbox(dataset_file, url=receiver.url, rate=200, concurrency=1):
        with sandbox.client() as client:
            created = client.post("/sandbox/accounts", json={}).json()["events"]
            assert [e["event_type"] for e in created] == ["Subscriber/Created"]
            i_account = created[0]["variables"]["i_account"]
            on = f"/sandbox/accounts/{i_account}"
            steps: list[tuple[str, str, dict[str, object], list[str]]] = [
                ("POST", f"{on}/sim", {}, [SUB_UPDATED, "SIM/Replaced", SIM_UPDATED]),
                ("POST", f"{on}/product", {"i_product": 3776}, [SUB_UPDATED, SIM_UPDATED]),
                ("POST", f"{on}/block", {}, [SUB_UPDATED, SIM_UPDATED]),
                ("POST", f"{on}/unblock", {}, [SUB_UPDATED, SIM_UPDATED]),
                ("POST", f"{on}/sim", {}, [SUB_UPDATED, "SIM/Replaced", SIM_UPDATED, SIM_UPDATED]),
                ("POST", f"{on}/addons", {"i_product": 3775}, [SUB_UPDATED, SIM_UPDATED]),
                ("POST", f"{on}/topup", {"amount": 10}, [SUB_UPDATED]),
                ("POST", f"{on}/password", {"password": "n3w"}, [SUB_UPDATED]),
                # every bundle is Internet access here: no SIM/Updated (NSPS guide)
                ("POST", f"{on}/quota-exceeded", {}, ["Account/Service/QuotaExceeded"]),
                (
                    "POST",
                    f"{on}/bundles/renew",
                    {},
                    [SUB_UPDATED, SIM_UPDATED, "Account/Service/QuotaAvailable"],
                ),
                ("POST", "/sandbox/customers/6001", {"name": "Alice Roe"}, ["Customer/Updated"]),
                ("POST", "/sandbox/customers/6001/invoices", {"amount": 12.5}, ["Invoice/Created"]),
                ("POST", "/sandbox/dids", {"number": "12065559999"}, ["DID/Created"]),
                (
                    "POST",
                    "/sandbox/dids/12065559999/assign",
                    {"i_account": i_account},
                    ["DID/Updated"],
                ),
                ("DELETE", f"{on}/addons/3775", {}, [SUB_UPDATED, SIM_UPDATED]),
                ("DELETE", "/sandbox/dids/12065559999", {}, ["DID/Deleted"]),
                ("DELETE", on, {}, ["Subscriber/Deleted", "SIM/Replaced", SIM_UPDATED]),
            ]
            for method, path, body, expected in steps:
                answer = client.request(method, path, json=body)
                assert answer.status_code == 200, (path, answer.text)
                got = answer.json()["events"]
                assert [e["event_type"] for e in got] == expected, path
                assert answer.json()["not_sent"] == []
            refused = client.post("/sandbox/accounts/1/block")
        assert refused.status_code == 400 and "no account 1" in refused.json()["error"]
        total = 1 + sum(len(expected) for *_, expected in steps)
        wait_for(lambda total=total: len(receiver.received) == total)
    sent = bodies(receiver)
    assert [b["event_type"] for b in sent] == ["Subscriber/Created"] + [
        t for *_, expected in steps for t in expected
    ]
    i_events = [b["variables"]["i_event"] for b in sent]  # type: ignore[index]
    assert i_events == sorted(i_events) and len(set(i_events)) == len(i_events)
    assert all(b["variables"]["i_env"] == 1 and b["variables"]["event_time"] for b in sent)  # type: ignore[index]
    variables = [b["variables"] for b in sent]
    # the first SIM: assigned (active -> used), nothing replaced
    first_sim = variables[2]["i_sim_card"]  # type: ignore[index]
    assert _without_envelope(variables[2]) == {"i_account": i_account, "i_sim_card": first_sim}
    assert _without_envelope(variables[3]) == {
        "i_account": i_account,
        "i_sim_card": first_sim,
        "curr_status": "used",
        "prev_status": "active",
    }
    # an account change's SIM/Updated is seed 002's example: the account only
    assert _without_envelope(variables[5]) == {"i_account": i_account}
    # the replacement: the new card used, the old one disposed (no account any more)
    second = sent.index(next(b for b in sent[4:] if b["event_type"] == "SIM/Replaced"))
    replaced = _without_envelope(variables[second])
    new_sim = replaced["i_sim_card"]
    assert replaced == {"i_account": i_account, "i_sim_card": new_sim, "prev_i_sim_card": first_sim}
    assert _without_envelope(variables[second + 2]) == {
        "i_sim_card": first_sim,
        "curr_status": "disposed",
        "prev_status": "used",
    }
    # the deletion: the card taken from the account, then disposed
    assert _without_envelope(variables[-2]) == {"i_account": i_account, "prev_i_sim_card": new_sim}
    assert _without_envelope(variables[-1]) == {
        "i_sim_card": new_sim,
        "curr_status": "disposed",
        "prev_status": "used",
    }


def _without_envelope(variables: object) -> dict[str, object]:
    assert isinstance(variables, dict)
    return {k: v for k, v in variables.items() if k not in {"i_event", "i_env", "event_time"}}


def test_resends_on_500_and_drops_on_4xx(dataset_file: Path, receiver: Receiver) -> None:
    receiver.answers = [500, 503, 200, 404]
    for sandbox in start_sandbox(
        dataset_file, url=receiver.url, rate=100, concurrency=1, retry_delay=0.2
    ):
        with sandbox.client() as client:
            first = client.post(f"/sandbox/accounts/{FIRST}/topup", json={"amount": 1}).json()[
                "events"
            ][0]["i_event"]
            wait_for(lambda: sandbox_stats(client)["delivered"] == 1)
            second = client.post(f"/sandbox/accounts/{FIRST}/topup", json={"amount": 2}).json()[
                "events"
            ][0]["i_event"]
            wait_for(lambda: sandbox_stats(client)["dropped"] == 1)
            log = client.get("/sandbox/eventsender", params={"i_event": first}).json()["log"]
            dropped = client.get("/sandbox/eventsender", params={"i_event": second}).json()["log"]
    assert [a["http_status"] for a in reversed(log)] == [500, 503, 200]
    assert [a["outcome"] for a in reversed(log)] == ["retry", "retry", "delivered"]
    assert [(a["http_status"], a["outcome"]) for a in dropped] == [(404, "dropped")]
    same = {json.loads(r["body"])["variables"]["i_event"] for r in receiver.received[:3]}
    assert same == {first}


def sandbox_stats(client: httpx.Client) -> dict[str, int]:
    stats: dict[str, int] = client.get("/sandbox/eventsender").json()["queue"]
    return stats


def test_resends_when_no_answer_comes_within_the_timeout(
    dataset_file: Path, receiver: Receiver
) -> None:
    receiver.delays = [1.5]
    for sandbox in start_sandbox(dataset_file, url=receiver.url, timeout=0.5, retry_delay=0.1):
        with sandbox.client() as client:
            i_event = client.post(f"/sandbox/accounts/{FIRST}/topup", json={"amount": 1}).json()[
                "events"
            ][0]["i_event"]
            wait_for(lambda: sandbox_stats(client)["delivered"] == 1)
            log = client.get("/sandbox/eventsender", params={"i_event": i_event}).json()["log"]
    first, second = reversed(log)
    assert first["outcome"] == "retry" and "no answer within 0.5 s" in first["error"]
    assert second["outcome"] == "delivered"


def test_signature_and_bearer_verify_with_appendix_a(
    dataset_file: Path, receiver: Receiver
) -> None:
    for scheme, auth in [
        ("signature", SenderAuth(scheme="signature", key_id="test", key="signature")),
        ("bearer", SenderAuth(scheme="bearer", key="superkey-superkey-superkey-32byt")),
    ]:
        receiver.received.clear()
        for sandbox in start_sandbox(dataset_file, url=receiver.url, auth=auth, i_env=3):
            with sandbox.client() as client:
                client.post(f"/sandbox/accounts/{FIRST}/topup", json={"amount": 1})
            wait_for(lambda: len(receiver.received) == 1)
        headers = receiver.received[0]["headers"]
        if scheme == "signature":
            expected = base64.b64encode(
                hmac.new(b"signature", headers["date"].encode(), hashlib.sha1).digest()
            ).decode()
            assert headers["authorization"] == (
                f'Signature keyId="test",algorithm="hmac-sha1",signature="{expected}"'
            )
        else:
            token = headers["authorization"].removeprefix("Bearer ")
            claims = jwt.decode(token, "superkey-superkey-superkey-32byt", algorithms=["HS256"])
            assert claims["i_env"] == 3 and claims["exp"] > time.time()


@pytest.mark.parametrize(
    ("path", "auth", "i_env"),
    [
        ("/espf/events", SenderAuth(username=BASIC_USER, password=BASIC_PASSWORD), 1),
        (
            "/espf/events/custom",
            SenderAuth(scheme="custom", auth_type=CUSTOM_TYPE, credentials=CUSTOM_CREDENTIALS),
            1,
        ),
        (
            "/espf/events/signed",
            SenderAuth(scheme="signature", key_id="next", key=SIGNATURE_KEYS["next"]),
            2,
        ),
        ("/espf/events/jwt", SenderAuth(scheme="bearer", key=BEARER_KEYS[1]), BEARER_I_ENV),
    ],
    ids=["basic", "custom", "signature", "bearer"],
)
def test_the_sandbox_delivers_into_the_opennsps_ingress(
    dataset_file: Path, tmp_path: Path, path: str, auth: SenderAuth, i_env: int
) -> None:
    gateway = create_app(settings_for(f"sqlite:///{tmp_path / 'gateway.db'}"))
    with running(gateway) as gateway_url:
        for sandbox in start_sandbox(
            dataset_file, url=gateway_url + path, auth=auth, i_env=i_env, rate=100
        ):
            with sandbox.client() as client:
                for i_account in range(FIRST, FIRST + 10):
                    assert (
                        client.post(
                            f"/sandbox/accounts/{i_account}/topup", json={"amount": 1}
                        ).status_code
                        == 200
                    )
                wait_for(lambda: sandbox_stats(client)["delivered"] == 10)
        store: EventStore = gateway.state.store
        stored = store.list_events(limit=20)
    assert len(stored) == 10
    assert {e.entity_key for e in stored} == {f"account:{i}" for i in range(FIRST, FIRST + 10)}
    assert all(e.event_type == "Subscriber/Updated" for e in stored)


def test_nothing_is_sent_without_a_target(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        client.post(f"/sandbox/accounts/{FIRST}/topup", json={"amount": 1})
        time.sleep(0.5)
        assert sandbox_stats(client)["pending"] == 1


def test_events_are_sent_at_the_configured_rate(dataset_file: Path, receiver: Receiver) -> None:
    arrivals: list[float] = []
    original = receiver.received

    class Clocked(list):  # type: ignore[type-arg]
        def append(self, item: object) -> None:
            arrivals.append(time.monotonic())
            super().append(item)

    receiver.received = Clocked(original)
    for sandbox in start_sandbox(dataset_file, url=receiver.url, rate=5, concurrency=4):
        with sandbox.client() as client:
            for i_account in range(FIRST, FIRST + 10):
                client.post(f"/sandbox/accounts/{i_account}/topup", json={"amount": 1})
            wait_for(lambda: len(arrivals) == 10)
    spread = arrivals[-1] - arrivals[0]
    # 10 events at 5/s: nine gaps of 0.2 s.
    assert 1.6 <= spread < 3.0, spread
