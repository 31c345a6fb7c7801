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


def test_changes_emit_their_espf_events_in_order(dataset_file: Path, receiver: Receiver) -> None:
    for sandbox in start_sandbox(dataset_file, url=receiver.url, rate=200, concurrency=1):
        with sandbox.client() as client:
            created = client.post("/sandbox/accounts", json={}).json()["events"][0]
            i_account = created["variables"]["i_account"]
            for path, body in [
                (f"/sandbox/accounts/{i_account}/sim", {}),
                (f"/sandbox/accounts/{i_account}/product", {"i_product": 3776}),
                (f"/sandbox/accounts/{i_account}/block", {}),
                (f"/sandbox/accounts/{i_account}/unblock", {}),
                (f"/sandbox/accounts/{i_account}/sim", {}),
                (f"/sandbox/accounts/{i_account}/addons", {"i_product": 3775}),
                (f"/sandbox/accounts/{i_account}/topup", {"amount": 10}),
                (f"/sandbox/accounts/{i_account}/quota-exceeded", {}),
                ("/sandbox/customers/6001", {"name": "Alice Roe"}),
                ("/sandbox/customers/6001/invoices", {"amount": 12.5}),
                ("/sandbox/dids", {"number": "12065559999"}),
                ("/sandbox/dids/12065559999/assign", {"i_account": i_account}),
            ]:
                answer = client.post(path, json=body)
                assert answer.status_code == 200, (path, answer.text)
            assert client.delete(f"/sandbox/accounts/{i_account}/addons/3775").status_code == 200
            assert client.delete("/sandbox/dids/12065559999").status_code == 200
            assert client.delete(f"/sandbox/accounts/{i_account}").status_code == 200
            refused = client.post("/sandbox/accounts/1/block")
        assert refused.status_code == 400 and "no account 1" in refused.json()["error"]
        wait_for(lambda: len(receiver.received) == 16)
    sent = bodies(receiver)
    types = [b["event_type"] for b in sent]
    assert types == [
        "Subscriber/Created",
        "SIM/Replaced",
        "Subscriber/Updated",
        "Subscriber/Updated",
        "Subscriber/Updated",
        "SIM/Replaced",
        "Subscriber/Updated",
        "Subscriber/Updated",
        "Account/Service/QuotaExceeded",
        "Customer/Updated",
        "Invoice/Created",
        "DID/Created",
        "DID/Updated",
        "Subscriber/Updated",
        "DID/Deleted",
        "Subscriber/Deleted",
    ]
    i_events = [b["variables"]["i_event"] for b in sent]  # type: ignore[index]
    assert i_events == sorted(i_events) and len(set(i_events)) == len(i_events)
    assert all(b["variables"]["i_env"] == 1 and b["variables"]["event_time"] for b in sent)  # type: ignore[index]
    replaced = [b["variables"] for b in sent if b["event_type"] == "SIM/Replaced"]
    assert "prev_i_sim_card" not in replaced[0] and "prev_i_sim_card" in replaced[1]  # type: ignore[operator]


def test_resends_on_500_and_drops_on_4xx(dataset_file: Path, receiver: Receiver) -> None:
    receiver.answers = [500, 503, 200, 404]
    for sandbox in start_sandbox(
        dataset_file, url=receiver.url, rate=100, concurrency=1, retry_delay=0.2
    ):
        with sandbox.client() as client:
            first = client.post(f"/sandbox/accounts/{FIRST}/block").json()["events"][0]["i_event"]
            wait_for(lambda: sandbox_stats(client)["delivered"] == 1)
            second = client.post(f"/sandbox/accounts/{FIRST}/unblock").json()["events"][0][
                "i_event"
            ]
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
            i_event = client.post(f"/sandbox/accounts/{FIRST}/block").json()["events"][0]["i_event"]
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
                client.post(f"/sandbox/accounts/{FIRST}/block")
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
        client.post(f"/sandbox/accounts/{FIRST}/block")
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
