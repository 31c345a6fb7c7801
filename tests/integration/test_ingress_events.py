"""ESPF event validation, answers, deduplication and what gets stored, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from opennsps import metrics
from opennsps.store.event_store import EventStore
from tests.support import basic_header, event_body

AUTH = basic_header()
JSON_AUTH = {**AUTH, "Content-Type": "application/json"}


def post_raw(url: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, content=content, headers=headers or JSON_AUTH, timeout=10)


def post(url: str, body: object) -> httpx.Response:
    return post_raw(url, json.dumps(body).encode())


def assert_error(response: httpx.Response, status: int, error: str, part: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message", "error", "type"}
    assert body["error"] == error
    assert part in body["message"]


def test_the_guides_example_with_string_ids_is_stored(gateway: str, store: EventStore) -> None:
    # The guide's sample workflow sends i_account and i_event as strings.
    response = post(
        f"{gateway}/espf/events",
        {"event_type": "Subscriber/Created", "variables": {"i_account": "1000889", "i_event": "5"}},
    )
    assert response.status_code == 200
    assert response.json()["duplicate"] is False
    event = store.get_event(response.json()["event_id"])
    assert event is not None
    assert (event.i_event, event.event_type, event.entity_key) == (
        5,
        "Subscriber/Created",
        "account:1000889",
    )
    assert event.variables == {"i_account": "1000889", "i_event": "5"}
    assert event.source == "default" and event.i_env == 1
    assert json.loads(event.raw_body)["variables"]["i_event"] == "5"


@pytest.mark.parametrize(
    ("event_type", "variables", "entity"),
    [
        ("Subscriber/Updated", {"i_account": 7}, "account:7"),
        ("SIM/Replaced", {"i_account": 7}, "account:7"),
        ("Account/Service/QuotaExceeded", {"i_account": 541}, "account:541"),
        ("Customer/Updated", {"i_customer": 12}, "customer:12"),
        # A customer's invoices in order: i_customer comes before i_invoice.
        ("Invoice/Created", {"i_customer": 12, "i_invoice": 900}, "customer:12"),
        ("DID/Updated", {"number": "12065551122"}, "did:12065551122"),
        ("Custom/NextMonth", {"i_account": 541}, "account:541"),
        ("Custom/Anything", {}, None),
    ],
)
def test_every_event_group_is_accepted_with_its_entity(
    gateway: str, store: EventStore, event_type: str, variables: dict[str, object], entity: str
) -> None:
    response = post(f"{gateway}/espf/events", event_body(1, event_type, **variables))
    assert response.status_code == 200, response.text
    stored = store.get_event(response.json()["event_id"])
    assert stored is not None and stored.entity_key == entity


def test_event_time_is_kept_when_given(gateway: str, store: EventStore) -> None:
    body = event_body(3)
    body["event_time"] = "2026-11-01 08:00:00"
    response = post(f"{gateway}/espf/events", body)
    stored = store.get_event(response.json()["event_id"])
    assert stored is not None and stored.event_time is not None
    assert stored.event_time.isoformat() == "2026-11-01T08:00:00+00:00"
    assert stored.received_at.tzinfo is not None


@pytest.mark.parametrize(
    ("body", "part"),
    [
        ({"event_type": "Subscriber/Created", "variables": {"i_account": 1}}, "i_event"),
        (event_body("abc"), "i_event"),
        (event_body(-1), "i_event"),
        (event_body(2**63), "i_event"),
        ({"variables": {"i_event": 1}}, "event_type"),
        ({"event_type": 5, "variables": {"i_event": 1}}, "event_type"),
        ({"event_type": "Custom/X", "variables": [1]}, "variables"),
        ([1, 2], "JSON object"),
    ],
)
def test_invalid_events_are_400(gateway: str, store: EventStore, body: object, part: str) -> None:
    assert_error(post(f"{gateway}/espf/events", body), 400, "invalid_event", part)
    assert store.count_events() == 0
    assert store.list_rejected()[0].request.http_status == 400


@pytest.mark.parametrize(
    ("variables", "entity"),
    [
        ({"event_type": "Subscriber/Created", "variables": {}}, None),
        ({"event_type": "Subscriber/Created", "variables": {"i_account": "x1"}}, None),
        ({"event_type": "SIM/Created", "variables": {"i_sim_card": 77}}, "sim:77"),
        (
            {"event_type": "SIM/Updated", "variables": {"i_sim_card": 7, "i_account": 9}},
            "account:9",
        ),
        ({"event_type": "Customer/Created", "variables": {}}, None),
        ({"event_type": "Invoice/Created", "variables": {"i_customer": 1}}, "customer:1"),
        ({"event_type": "DID/Created", "variables": {"number": ""}}, None),
        ({"event_type": "DID/Created", "variables": {"number": "420800"}}, "did:420800"),
        ({"event_type": "Custom/Anything", "variables": {"i_invoice": 3}}, "invoice:3"),
    ],
)
def test_any_event_with_a_type_and_an_i_event_is_stored(
    gateway: str, store: EventStore, variables: dict[str, Any], entity: str | None
) -> None:
    """ESPF drops an event answered 4xx for good, so only what cannot be an ESPF event at
    all is refused: a missing or unusable entity id is not a reason. Events are ordered by
    the first of i_account, i_sim_card, i_customer, i_invoice, number they carry."""
    body = {**variables, "variables": {**variables["variables"], "i_event": 41}}
    response = post(f"{gateway}/espf/events", body)
    assert response.status_code == 200, response.text
    stored = store.get_event(response.json()["event_id"])
    assert stored is not None and stored.entity_key == entity


def test_malformed_json_is_400(gateway: str, store: EventStore) -> None:
    assert_error(post_raw(f"{gateway}/espf/events", b'{"event_type": '), 400, "malformed_json")
    rejected = store.list_rejected()[0].request
    assert rejected.body == '{"event_type": '
    assert rejected.reason.startswith("the body is not valid JSON")


def test_wrong_content_type_is_415(gateway: str, store: EventStore) -> None:
    body = json.dumps(event_body(1)).encode()
    response = post_raw(f"{gateway}/espf/events", body, {**AUTH, "Content-Type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type", "text/plain")
    ok = post_raw(
        f"{gateway}/espf/events", body, {**AUTH, "Content-Type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200


def test_oversized_body_is_413_without_reading_it(gateway: str, store: EventStore) -> None:
    big = (
        b'{"event_type":"Custom/X","variables":{"i_event":1,"pad":"' + b"x" * (1024 * 1024) + b'"}}'
    )
    assert_error(post_raw(f"{gateway}/espf/events", big), 413, "payload_too_large")
    rejected = store.list_rejected()[0].request
    assert rejected.http_status == 413 and rejected.body is None
    assert store.count_events() == 0


def test_oversized_chunked_body_is_413(gateway: str, store: EventStore) -> None:
    def chunks() -> object:
        for _ in range(20):
            yield b"x" * 65536

    response = httpx.post(f"{gateway}/espf/events", content=chunks(), headers=JSON_AUTH, timeout=10)
    assert_error(response, 413, "payload_too_large")
    rejected = store.list_rejected()[0].request
    assert rejected.body_truncated and rejected.body is not None
    assert len(rejected.body) == 64 * 1024


def test_unknown_source_is_404_and_recorded(gateway: str, store: EventStore) -> None:
    assert_error(post(f"{gateway}/espf/events/nowhere", event_body(1)), 404, "unknown_source")
    assert store.list_rejected()[0].request.source == "nowhere"


def test_a_repeat_of_the_same_i_event_is_200_and_stored_once(
    gateway: str, store: EventStore
) -> None:
    first = post(f"{gateway}/espf/events", event_body(42))
    again = post(f"{gateway}/espf/events", event_body(42))
    assert first.status_code == again.status_code == 200
    assert again.json() == {
        "status": "duplicate",
        "event_id": first.json()["event_id"],
        "duplicate": True,
    }
    assert store.count_events() == 1


def test_the_same_i_event_from_two_sources_is_two_events(gateway: str, store: EventStore) -> None:
    from tests.support import CUSTOM_CREDENTIALS, CUSTOM_TYPE

    assert post(f"{gateway}/espf/events", event_body(42)).status_code == 200
    other = httpx.post(
        f"{gateway}/espf/events/custom",
        json=event_body(42),
        headers={"Authorization": f"{CUSTOM_TYPE} {CUSTOM_CREDENTIALS}"},
    )
    assert other.status_code == 200
    assert store.count_events() == 2


async def _burst(url: str, bodies: list[dict[str, object]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(headers=JSON_AUTH, timeout=30, limits=limits) as client:
        return await asyncio.gather(*(client.post(url, json=b) for b in bodies))


def _batches_written() -> float:
    return metrics.STORE_COMMIT_BATCH._sum.get()  # type: ignore[attr-defined,no-any-return]


def _commits() -> float:
    samples = metrics.STORE_COMMIT_BATCH.collect()[0].samples
    return next(s.value for s in samples if s.name.endswith("_count"))


def test_concurrent_requests_are_group_committed(gateway: str, store: EventStore) -> None:
    commits_before, items_before = _commits(), _batches_written()
    bodies = [event_body(i) for i in range(1, 201)]
    responses = asyncio.run(_burst(f"{gateway}/espf/events", bodies))
    assert all(r.status_code == 200 for r in responses)
    assert store.count_events() == 200
    commits = _commits() - commits_before
    assert _batches_written() - items_before == 200
    # 200 concurrent requests share transactions: fewer commits than events.
    assert commits < 200


def test_concurrent_duplicates_store_one_event(gateway: str, store: EventStore) -> None:
    responses = asyncio.run(_burst(f"{gateway}/espf/events", [event_body(7)] * 30))
    assert all(r.status_code == 200 for r in responses)
    assert len({r.json()["event_id"] for r in responses}) == 1
    assert sum(not r.json()["duplicate"] for r in responses) == 1
    assert store.count_events() == 1


def test_trace_ids_are_returned_stored_and_generated(gateway: str, store: EventStore) -> None:
    traced = httpx.post(
        f"{gateway}/espf/events",
        json=event_body(1),
        headers={**AUTH, "x-b3-traceid": "463ac35c9f6413ad48485a3953bb6124", "x-request-id": "r-1"},
    )
    assert traced.headers["x-b3-traceid"] == "463ac35c9f6413ad48485a3953bb6124"
    assert traced.headers["x-request-id"] == "r-1"
    stored = store.get_event(traced.json()["event_id"])
    assert stored is not None
    assert (stored.request_id, stored.unique_id) == ("463ac35c9f6413ad48485a3953bb6124", "r-1")

    plain = httpx.post(f"{gateway}/espf/events", json=event_body(2), headers=AUTH)
    generated = plain.headers["x-b3-traceid"], plain.headers["x-request-id"]
    assert len(generated[0]) == 32 and len(generated[1]) == 36
    stored = store.get_event(plain.json()["event_id"])
    assert stored is not None and (stored.request_id, stored.unique_id) == generated


def test_rejected_requests_keep_trace_ids_and_a_redacted_copy(
    gateway: str, store: EventStore
) -> None:
    response = httpx.post(
        f"{gateway}/espf/events",
        json=event_body(5),
        headers={"Authorization": "Basic d3Jvbmc6cGFzcw==", "x-request-id": "lost-1"},
    )
    assert response.status_code == 401
    rejected = store.list_rejected()[0].request
    assert rejected.unique_id == "lost-1"
    assert rejected.headers["authorization"] == "Basic [redacted]"
    assert rejected.body is not None and json.loads(rejected.body) == event_body(5)
    assert rejected.method == "POST" and rejected.path == "/espf/events"


def test_a_nul_character_is_stored_the_same_on_both_engines(
    gateway: str, store: EventStore
) -> None:
    # PostgreSQL's jsonb cannot hold \u0000: stored as the six characters \u0000 (on
    # SQLite too), with the raw body as sent; its batch neighbours are unaffected.
    poisoned = event_body(13, "Custom/X", note="a\u0000b")
    bodies = [event_body(i) for i in range(1, 13)] + [poisoned]
    responses = asyncio.run(_burst(f"{gateway}/espf/events", bodies))
    assert [r.status_code for r in responses] == [200] * 13
    stored = store.get_event(responses[-1].json()["event_id"])
    assert stored is not None and stored.variables["note"] == "a\\u0000b"
    assert json.loads(stored.raw_body)["variables"]["note"] == "a\u0000b"
    assert store.count_events() == 13


def test_the_ingress_paths_and_nothing_else_reach_the_ingress(gateway: str) -> None:
    """The ingress is answered ahead of the application's router: its own 404/405 for
    near misses, while neighbouring paths still reach the application."""
    wrong_method = httpx.get(f"{gateway}/espf/events/default")
    assert_error(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.headers["x-b3-traceid"]  # trace ids on every ingress answer
    assert_error(post(f"{gateway}/espf/events/", event_body(1)), 404, "not_found")
    assert_error(post(f"{gateway}/espf/events/a/b", event_body(1)), 404, "not_found")
    elsewhere = httpx.post(f"{gateway}/espf/eventsx", json=event_body(1), headers=AUTH)
    assert elsewhere.status_code == 404 and elsewhere.json()["error"] != "unknown_source"
    assert post(f"{gateway}/espf/events/default", event_body(7)).status_code == 200


def test_generated_ids_are_version_4_uuids() -> None:
    import uuid

    from opennsps.domain.ids import random_trace_id, random_uuid

    made = {random_uuid() for _ in range(2000)}
    assert len(made) == 2000
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
    trace = random_trace_id()
    assert len(trace) == 32 and int(trace, 16) >= 0


def test_stored_event_ids_are_version_7_uuids_in_time_order(gateway: str) -> None:
    import uuid

    from opennsps.domain.ids import time_ordered_uuid

    made = [time_ordered_uuid() for _ in range(2000)]
    assert len(set(made)) == 2000
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, text)
    # Their first 48 bits are the Unix time in milliseconds: ids of later events sort later.
    millis = [int(text.replace("-", "")[:12], 16) for text in made]
    assert millis == sorted(millis)
    first = post(f"{gateway}/espf/events", event_body(1)).json()["event_id"]
    time.sleep(0.002)
    second = post(f"{gateway}/espf/events", event_body(2)).json()["event_id"]
    assert uuid.UUID(first).version == 7 and first < second


def test_a_client_gone_mid_body_stores_nothing_and_the_ingress_carries_on(
    gateway: str, store: EventStore
) -> None:
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(gateway)
    body = json.dumps(event_body(1)).encode()
    head = (
        f"POST /espf/events HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Authorization: {AUTH['Authorization']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(head + body[:10])
        time.sleep(0.2)
    time.sleep(0.2)
    assert store.count_events() == 0
    assert store.list_rejected() == []
    assert post(f"{gateway}/espf/events", event_body(1)).status_code == 200
    assert store.count_events() == 1
