"""What each connector answer does to a delivery, over real HTTP."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tests.pipeline import plugin_connector
from tests.pipeline.harness import (
    FAST_RETRY,
    Answer,
    ConnectorServer,
    http_handler,
    wait_for,
    wired,
)

FIRST = 100_001


def deliveries(gw: Any, **params: Any) -> list[dict[str, Any]]:
    with gw.api() as api:
        return list(api.get("/deliveries", params=params).json()["items"])


def attempts(gw: Any, **params: Any) -> list[dict[str, Any]]:
    with gw.api() as api:
        return list(api.get("/attempts", params=params).json()["items"])


def test_503_with_retry_after_is_retried_no_sooner(store_url: str, dataset_file: Path) -> None:
    answers = [(503, {"Retry-After": "2"}, b"{}")]

    def decide(_: dict[str, Any]) -> Answer:
        return answers.pop(0) if answers else (200, {}, b"{}")

    with wired(
        store_url, dataset_file, lambda c: [http_handler(c.url)], ConnectorServer(decide=decide)
    ) as (sandbox, gw, conn):
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        wait_for(lambda: deliveries(gw, state="delivered"), timeout=20, what="delivery")
        first, second = conn.received
        assert first["body"]["event_id"] == second["body"]["event_id"]
        assert second["at"] - first["at"] >= 1.9  # Retry-After: 2 beats the 0.2 s schedule
        assert second["body"]["status"] == "retrying"
        log = attempts(gw)
        assert [a["outcome"] for a in reversed(log)] == ["retry", "delivered"]
        assert log[1]["status_code"] == 503


def test_422_is_rejected_and_not_retried(store_url: str, dataset_file: Path) -> None:
    def decide(_: dict[str, Any]) -> Answer:
        return 422, {}, b'{"message": "unknown tariff", "error": "bad", "type": "validation"}'

    handlers = lambda c: [http_handler(c.url, status_group="HSS")]  # noqa: E731
    with wired(store_url, dataset_file, handlers, ConnectorServer(decide=decide)) as (
        sandbox,
        gw,
        conn,
    ):
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        [rejected] = wait_for(lambda: deliveries(gw, state="rejected"), what="rejection")
        assert "HTTP 422" in rejected["last_error"]
        statuses = wait_for(
            lambda: sandbox.get(f"/sandbox/statuses/{FIRST}")["latest"], what="FAILED status"
        )
        assert statuses[0]["group"] == "HSS"
        assert statuses[0]["status"] == "FAILED"
        assert "HTTP 422" in statuses[0]["error"]
        time.sleep(1.0)  # several retry intervals of the fast schedule
        assert len(conn.received) == 1
        [attempt] = attempts(gw)
        assert "unknown tariff" in attempt["response_excerpt"]


def test_401_is_retried_and_flagged_as_a_configuration_problem(
    store_url: str, dataset_file: Path
) -> None:
    answers = [(401, {}, b"{}"), (401, {}, b"{}")]

    def decide(_: dict[str, Any]) -> Answer:
        return answers.pop(0) if answers else (200, {}, b"{}")

    with wired(
        store_url, dataset_file, lambda c: [http_handler(c.url)], ConnectorServer(decide=decide)
    ) as (sandbox, gw, conn):
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        wait_for(lambda: deliveries(gw, state="delivered"), what="delivery after 401s")
        log = list(reversed(attempts(gw)))
        assert [a["outcome"] for a in log] == ["retry", "retry", "delivered"]
        assert log[0]["configuration_problem"] is True
        assert "token" in log[0]["error"]
        assert len(conn.received) == 3


def test_dead_delivery_is_replayed_and_delivered(store_url: str, dataset_file: Path) -> None:
    healthy = {"yes": False}

    def decide(_: dict[str, Any]) -> Answer:
        return (200, {}, b"{}") if healthy["yes"] else (500, {}, b"down")

    short = {**FAST_RETRY, "fast_attempts": 2, "slow_steps_seconds": [0.2]}
    short["give_up_after_seconds"] = 0.6
    handlers = lambda c: [http_handler(c.url, retry=short)]  # noqa: E731
    with wired(store_url, dataset_file, handlers, ConnectorServer(decide=decide)) as (
        sandbox,
        gw,
        conn,
    ):
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        [dead] = wait_for(lambda: deliveries(gw, state="dead"), what="dead delivery")
        assert "gave up" in dead["last_error"]
        healthy["yes"] = True
        with gw.api() as api:
            answer = api.post("/handlers/hss/replay-dead")
        assert answer.json() == {"replayed": 1}
        wait_for(lambda: deliveries(gw, state="delivered"), what="delivery after replay")
        assert conn.received[-1]["body"]["event_id"] == dead["event_id"]


def test_one_session_for_many_events_and_a_session_expiry_storm(
    store_url: str, dataset_file: Path
) -> None:
    with wired(store_url, dataset_file, lambda c: [http_handler(c.url)]) as (sandbox, _gw, conn):
        before = sandbox.get("/sandbox/summary")["sessions_opened"]
        for n in range(20):
            sandbox.emit("Subscriber/Updated", i_account=FIRST + n)
        wait_for(lambda: len(conn.received) == 20, what="first 20 deliveries")
        assert sandbox.get("/sandbox/summary")["sessions_opened"] - before == 1
        assert sandbox.post("/sandbox/sessions/expire")["expired"] >= 1
        for n in range(20):
            sandbox.emit("Subscriber/Updated", i_account=FIRST + 20 + n)
        wait_for(lambda: len(conn.received) == 40, what="deliveries after the storm")
        assert sandbox.get("/sandbox/summary")["sessions_opened"] - before == 2
        assert all(r["body"]["pb_data"].get("account_info") for r in conn.received)


def test_statuses_reach_the_espf_api_including_an_asynchronous_one(
    store_url: str, dataset_file: Path
) -> None:
    def decide(body: dict[str, Any]) -> Answer:
        if body["data"]["variables"]["i_account"] == FIRST + 1:
            return 202, {}, b'{"status": "IN_PROGRESS"}'
        return 200, {}, b"{}"

    handlers = lambda c: [http_handler(c.url, status_group="OMS")]  # noqa: E731
    with wired(store_url, dataset_file, handlers, ConnectorServer(decide=decide)) as (
        sandbox,
        gw,
        _conn,
    ):
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        sandbox.emit("Subscriber/Updated", i_account=FIRST + 1)
        ok = wait_for(lambda: sandbox.get(f"/sandbox/statuses/{FIRST}")["latest"], what="OK")
        assert ok == [{"group": "OMS", "status": "OK", "error": None, **_at(ok)}]
        waiting = wait_for(
            lambda: sandbox.get(f"/sandbox/statuses/{FIRST + 1}")["latest"], what="IN_PROGRESS"
        )
        assert waiting[0]["status"] == "IN_PROGRESS"
        [pending] = deliveries(gw, state="waiting")
        # The external system finishes an hour later and reports through OpenNSPS.
        with gw.api() as api:
            answer = api.post(
                "/status",
                json={
                    "i_account": FIRST + 1,
                    "group": "OMS",
                    "status": "OK",
                    "event_id": pending["event_id"],
                    "handler_id": "hss",
                },
            )
        assert answer.status_code == 202, answer.text
        assert answer.json()["delivery_finished"] is True
        wait_for(
            lambda: sandbox.get(f"/sandbox/statuses/{FIRST + 1}")["latest"][0]["status"] == "OK",
            what="asynchronous OK",
        )
        assert [h["status"] for h in sandbox.get(f"/sandbox/statuses/{FIRST + 1}")["history"]] == [
            "IN_PROGRESS",
            "OK",
        ]
        assert deliveries(gw, state="waiting") == []


def _at(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    return {"updated_at": statuses[0]["updated_at"]}


def test_script_handler(store_url: str, dataset_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "script-out.jsonl"
    script = tmp_path / "provision.py"
    script.write_text(
        "import json, sys\n"
        "event = json.load(sys.stdin)\n"
        "if event['data']['variables']['i_account'] == 100002:\n"
        "    print('no such tariff', file=sys.stderr); sys.exit(65)\n"
        f"open({str(out)!r}, 'a').write(json.dumps(event) + '\\n')\n"
    )
    handler = {
        "id": "script",
        "events": ["Subscriber/*"],
        "type": "script",
        "script": {"command": [sys.executable, str(script)], "timeout": 10},
    }
    with wired(store_url, dataset_file, lambda c: [handler]) as (sandbox, gw, _):
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        sandbox.emit("Subscriber/Updated", i_account=FIRST + 1)
        wait_for(lambda: deliveries(gw, state="delivered"), what="script delivery")
        [rejected] = wait_for(lambda: deliveries(gw, state="rejected"), what="script rejection")
        assert "no such tariff" in rejected["last_error"]
        [line] = out.read_text().splitlines()
        assert '"account_info"' in line


def test_in_process_python_handler(store_url: str, dataset_file: Path) -> None:
    plugin_connector.RECEIVED.clear()
    handler = {
        "id": "inproc",
        "events": ["Subscriber/*"],
        "type": "python",
        "python": {
            "entry_point": "tests.pipeline.plugin_connector:create",
            "options": {"reject_accounts": [FIRST + 1]},
        },
    }
    with wired(store_url, dataset_file, lambda c: [handler]) as (sandbox, gw, _):
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        sandbox.emit("Subscriber/Updated", i_account=FIRST + 1)
        wait_for(lambda: deliveries(gw, state="delivered"), what="plug-in delivery")
        [rejected] = wait_for(lambda: deliveries(gw, state="rejected"), what="plug-in rejection")
        assert "not provisioned here" in rejected["last_error"]
    [event] = plugin_connector.RECEIVED
    assert event["pb_data"]["account_info"]["i_account"] == FIRST
    assert event["request_id"]


def test_a_crash_inside_opennsps_is_an_attempt_retried_until_death(
    store_url: str, dataset_file: Path
) -> None:
    """PortaBilling answers 200 with nonsense: enrichment crashes inside OpenNSPS. Each
    crash is an attempt on record with its error, counted toward the schedule; the delivery
    dies when the schedule ends and stops holding back the account's next event."""
    retry = {**FAST_RETRY, "fast_attempts": 2, "give_up_after_seconds": 2}
    with wired(store_url, dataset_file, lambda c: [http_handler(c.url, retry=retry)]) as (
        sandbox,
        gw,
        conn,
    ):
        sandbox.put_faults({"malformed_rate": {"Account/get_account_info": 1.0}})
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        [dead] = wait_for(lambda: deliveries(gw, state="dead"), timeout=60, what="its death")
        log = attempts(gw)
        assert len(log) >= 2 and {a["outcome"] for a in log} <= {"retry", "dead"}
        assert all("OpenNSPS failed during this attempt" in a["error"] for a in log)
        assert "OpenNSPS failed during this attempt" in dead["last_error"]
        assert conn.received == []
        sandbox.put_faults({"clear": True})
        sandbox.emit("Subscriber/Updated", i_account=FIRST)
        wait_for(lambda: deliveries(gw, state="delivered"), timeout=30, what="the next event")
        assert len(conn.received) == 1
