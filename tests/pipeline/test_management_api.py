"""The management REST API: roles, handlers, maintenance mode, search, replay, stats."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select

from opennsps.store.engine import normalized_url
from opennsps.store.schema import deliveries
from tests.pipeline.harness import (
    ADMIN_TOKEN,
    CONNECTOR_TOKEN,
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    ConnectorServer,
    http_handler,
    wait_for,
    wired,
)
from tests.support import basic_header, event_body

FIRST = 100_001


def test_roles_and_authentication(store_url: str, dataset_file: Path) -> None:
    with wired(store_url, dataset_file, lambda c: [http_handler(c.url)]) as (_, gw, _c):
        anonymous = httpx.get(f"{gw.url}/api/v1/handlers")
        assert anonymous.status_code == 401
        assert anonymous.json()["type"] == "authentication_error"
        wrong = httpx.get(
            f"{gw.url}/api/v1/handlers", headers={"Authorization": "Bearer not-a-token"}
        )
        assert wrong.status_code == 401
        with gw.api(VIEWER_TOKEN) as viewer:
            assert viewer.get("/handlers").status_code == 200
            forbidden = viewer.post("/pause")
            assert forbidden.status_code == 403
            assert "operator" in forbidden.json()["message"]
        with gw.api(OPERATOR_TOKEN) as operator:
            assert operator.post("/handlers/hss/disable").status_code == 200
            assert operator.post("/handlers/hss/archive").status_code == 403
            assert operator.post("/handlers/hss/enable").status_code == 200
        with gw.api(ADMIN_TOKEN) as admin:
            shown = admin.get("/handlers/hss").json()
        # Secrets never leave through the API.
        assert shown["http"]["token"] == "[redacted]"
        assert CONNECTOR_TOKEN not in str(shown)
        assert shown["managed_by"] == "config"


def test_handlers_created_through_the_api_receive_new_events(
    store_url: str, dataset_file: Path
) -> None:
    with wired(store_url, dataset_file, lambda c: []) as (sandbox, gw, conn):
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        with gw.api() as api:
            [unrouted] = wait_for(
                lambda: api.get("/events", params={"state": "unrouted"}).json()["items"],
                what="an unrouted event",
            )
            definition = http_handler(conn.url, "crm", events=["Subscriber/*"], priority=2)
            created = api.post("/handlers", json=definition)
            assert created.status_code == 201, created.text
            assert api.post("/handlers", json=definition).status_code == 409
            bad = api.post("/handlers", json={**definition, "id": "x", "events": ["a b"]})
            assert bad.status_code == 422
            assert "events" in bad.json()["message"]

            sandbox.emit("Subscriber/Updated", i_account=FIRST + 1)
            wait_for(lambda: len(conn.received) == 1, what="delivery to the new handler")
            # The event that came before the handler existed is delivered on replay.
            replayed = api.post(f"/events/{unrouted['event_id']}/replay").json()
            assert replayed == {"replayed": 1}
            wait_for(lambda: len(conn.received) == 2, what="the replayed event")
            by_filter = api.post("/replay", json={"i_account": FIRST + 1, "state": "delivered"})
            assert by_filter.json() == {"replayed": 1}
            wait_for(lambda: len(conn.received) == 3, what="the event replayed by filter")
            assert api.post("/replay", json={"state": "lost"}).status_code == 422

            changed = api.put("/handlers/crm", json={**definition, "events": ["Customer/*"]})
            assert changed.status_code == 200
            assert changed.json()["events"] == ["Customer/*"]
            sandbox.emit("Subscriber/Updated", i_account=FIRST + 2)
            wait_for(
                lambda: (
                    [
                        e["variables"]["i_account"]
                        for e in api.get("/events", params={"state": "unrouted"}).json()["items"]
                    ]
                    == [FIRST + 2]
                ),
                what="the third event to stay unrouted",
            )
            assert api.delete("/handlers/crm").status_code == 204
            assert api.get("/handlers/crm").status_code == 404
            for path in (
                "/handlers/crm/pause",
                "/handlers/crm/enable",
                "/handlers/crm/replay-dead",
            ):
                gone = api.post(path)
                assert gone.status_code == 404
                assert gone.json()["error"] == "handler_not_found"


def test_maintenance_mode_keeps_accepting_and_delivers_on_resume(
    store_url: str, dataset_file: Path
) -> None:
    with (
        wired(store_url, dataset_file, lambda c: [http_handler(c.url)]) as (sandbox, gw, conn),
        gw.api(OPERATOR_TOKEN) as api,
    ):
        assert api.post("/pause").json() == {"paused": True}
        time.sleep(1.2)  # the worker sees the flag within a second
        for n in range(5):
            sandbox.emit("Subscriber/Updated", i_account=FIRST + n)
        wait_for(
            lambda: len(api.get("/events", params={"state": "pending"}).json()["items"]) == 5,
            what="five accepted, pending events",
        )
        time.sleep(0.5)
        assert conn.received == []
        stats = api.get("/stats").json()
        assert stats["paused"] is True
        assert stats["queue_depth"]["hss"]["pending"] == 5
        assert stats["oldest_pending_age_seconds"] >= 0
        api.post("/resume")
        wait_for(lambda: len(conn.received) == 5, what="delivery after resume")

        api.post("/handlers/hss/pause")
        time.sleep(1.2)
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        time.sleep(0.5)
        assert len(conn.received) == 5
        api.post("/handlers/hss/resume")
        wait_for(lambda: len(conn.received) == 6, what="delivery after handler resume")


def test_search_and_detail(store_url: str, dataset_file: Path) -> None:
    with wired(store_url, dataset_file, lambda c: [http_handler(c.url)]) as (sandbox, gw, conn):
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        sandbox.emit("Subscriber/Updated", i_account=FIRST + 1)
        i_event = sandbox.emit("SIM/Updated", i_account=FIRST + 1)
        wait_for(lambda: len(conn.received) == 3, what="three deliveries")
        with gw.api(VIEWER_TOKEN) as api:
            by_account = api.get("/events", params={"i_account": FIRST + 1}).json()["items"]
            assert len(by_account) == 2
            by_type = api.get("/events", params={"event_type": "SIM/*"}).json()["items"]
            assert [e["i_event"] for e in by_type] == [i_event]
            one = api.get("/events", params={"i_event": i_event}).json()["items"]
            assert one[0]["state"] == "delivered"
            page = api.get("/events", params={"limit": 2}).json()
            rest = api.get("/events", params={"limit": 2, "before": page["next_before"]}).json()
            assert len(page["items"]) == 2 and len(rest["items"]) == 1
            bad = api.get("/events", params={"state": "lost"})
            assert bad.status_code == 422
            attempts = api.get("/attempts", params={"handler_id": "hss"}).json()["items"]
            assert len(attempts) == 3 and all(a["outcome"] == "delivered" for a in attempts)


def test_rejected_requests_are_listed(store_url: str, dataset_file: Path) -> None:
    with wired(store_url, dataset_file, lambda c: [http_handler(c.url)]) as (_, gw, _c):
        httpx.post(
            f"{gw.url}/espf/events",
            json={"event_type": "Subscriber/Updated"},
            headers=basic_header(),
        )
        httpx.post(f"{gw.url}/espf/events", json=event_body(1), headers=basic_header("x", "y"))
        with gw.api(VIEWER_TOKEN) as api:
            rejected: list[dict[str, Any]] = api.get("/rejected").json()
        assert [r["http_status"] for r in rejected] == [401, 400]
        assert "[redacted]" in rejected[0]["headers"]["authorization"]


def test_schedule_creates_an_espf_event_that_comes_back(store_url: str, dataset_file: Path) -> None:
    with wired(store_url, dataset_file, lambda c: [http_handler(c.url)]) as (_, gw, conn):
        with gw.api(OPERATOR_TOKEN) as api:
            answer = api.post(
                "/schedule",
                json={
                    "event_type": "Custom/NextMonth",
                    "variables": {"i_account": FIRST},
                    "start_time": "2020-01-01T00:00:00Z",  # due at once
                },
            )
        assert answer.status_code == 201, answer.text
        i_event = answer.json()["i_event"]
        received = wait_for(lambda: conn.received, what="the scheduled event delivered")
        data = received[0]["body"]["data"]
        assert data["event_type"] == "Custom/NextMonth"
        assert int(data["variables"]["i_event"]) == i_event


def test_graceful_stop_hands_back_an_attempt_that_runs_too_long(
    store_url: str, dataset_file: Path
) -> None:
    connector = ConnectorServer(delay=5.0)
    with wired(
        store_url, dataset_file, lambda c: [http_handler(c.url)], connector, shutdown_grace=0.5
    ) as (sandbox, _gw, conn):
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        wait_for(lambda: conn.received, what="the attempt to start")
    # The gateway has stopped: the unfinished attempt was handed back, not left leased.
    engine = create_engine(normalized_url(store_url))
    try:
        with engine.connect() as connection:
            [(state, owner)] = connection.execute(
                select(deliveries.c.state, deliveries.c.lease_owner)
            ).all()
    finally:
        engine.dispose()
    assert (state, owner) == ("pending", None)


def test_a_status_for_an_unknown_source_is_refused(store_url: str, dataset_file: Path) -> None:
    with (
        wired(store_url, dataset_file, lambda c: [http_handler(c.url)]) as (_, gw, _c),
        gw.api(OPERATOR_TOKEN) as api,
    ):
        answer = api.post(
            "/status", json={"source": "nope", "i_account": FIRST, "group": "HSS", "status": "OK"}
        )
        assert answer.status_code == 404  # the named source does not exist
        assert "no source named 'nope'" in answer.json()["message"]
        missing = api.post("/status", json={"i_account": FIRST, "status": "OK"})
        assert missing.status_code == 422
        assert "group" in missing.json()["message"]
