"""The sandbox's ESPF API: statuses, service groups, scheduled events."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.sandbox.conftest import API_LOGIN, API_PASSWORD, Receiver, SandboxServer, start_sandbox

ADMIN = (API_LOGIN, API_PASSWORD)
FIRST = 100_001


def test_statuses_are_recorded_and_read_back(sandbox: SandboxServer) -> None:
    with httpx.Client(base_url=sandbox.url, auth=ADMIN) as client:
        ok = client.post(
            f"/espf/v1/account/i/{FIRST}/status", data={"status": "IN_PROGRESS", "group": "HSS"}
        )
        failed = client.post(
            f"/espf/v1/account/i/{FIRST}/status",
            data={"status": "FAILED", "group": "HSS", "error": "AUC not found"},
        )
        account_id = client.get("/sandbox/summary").json()  # exercise the id-based form too
        by_id = client.post(
            f"/espf/v1/account/{79120000000}@msisdn/status", data={"status": "OK", "group": "PCRF"}
        )
        read = client.get(f"/espf/v1/account/i/{FIRST}/status").json()
    assert ok.status_code == failed.status_code == by_id.status_code == 200, by_id.text
    assert account_id["accounts"] == 200
    latest = {s["group"]: s for s in read["statuses"]}
    assert latest["HSS"]["status"] == "FAILED" and latest["HSS"]["error"] == "AUC not found"
    assert latest["PCRF"]["status"] == "OK"
    history = sandbox.app.state.sandbox.espf.history(FIRST)
    assert [h["status"] for h in history] == ["IN_PROGRESS", "FAILED", "OK"]


def test_status_rules(sandbox: SandboxServer) -> None:
    url = f"/espf/v1/account/i/{FIRST}/status"
    with httpx.Client(base_url=sandbox.url, auth=ADMIN) as client:
        answers = {
            "bad status": client.post(url, data={"status": "DONE", "group": "HSS"}),
            "no group": client.post(url, data={"status": "OK"}),
            "unregistered group": client.post(url, data={"status": "OK", "group": "Nope"}),
            "long error": client.post(
                url, data={"status": "FAILED", "group": "HSS", "error": "x" * 4001}
            ),
            "unknown account": client.post(
                "/espf/v1/account/i/1/status", data={"status": "OK", "group": "HSS"}
            ),
            "json body": client.post(url, json={"status": "OK", "group": "HSS"}),
        }
        accepted = client.post(url, data={"status": "FAILED", "group": "HSS", "error": "x" * 4000})
    unauthenticated = httpx.post(f"{sandbox.url}{url}", data={"status": "OK", "group": "HSS"})
    codes = {name: r.status_code for name, r in answers.items()}
    assert codes == {
        "bad status": 400,
        "no group": 400,
        "unregistered group": 400,
        "long error": 400,
        "unknown account": 404,
        "json body": 415,
    }
    assert all("error" in r.json() for r in answers.values())
    assert accepted.status_code == 200
    assert unauthenticated.status_code == 401


def test_service_groups(sandbox: SandboxServer) -> None:
    with httpx.Client(base_url=sandbox.url, auth=ADMIN) as client:
        listed = client.get("/espf/v1/groups").json()["group_list"]
        created = client.post("/espf/v1/group/create", data={"name": "DPI"})
        again = client.post("/espf/v1/group/create", data={"name": "DPI"})
        too_long = client.post("/espf/v1/group/create", data={"name": "x" * 65})
        status = client.post(
            f"/espf/v1/account/i/{FIRST}/status", data={"status": "OK", "group": "DPI"}
        )
        predefined = client.delete("/espf/v1/group/HSS")
        deleted = client.delete("/espf/v1/group/DPI")
        after = client.get("/espf/v1/groups").json()["group_list"]
    names = [g["name"] for g in listed]
    assert names == [
        "VoIP",
        "HSS",
        "PCRF",
        "IPTV",
        "WiMAX",
        "Netaccess",
        "NumberPortability",
        "LawfullInterception",
    ]
    assert all(g["is_custom"] is False for g in listed)
    assert (
        created.json()["group"]["name"] == "DPI" and int(created.json()["group"]["i_group"]) >= 1001
    )
    assert again.status_code == 409 and too_long.status_code == 400
    assert status.status_code == 200
    assert predefined.status_code == 400 and deleted.status_code == 200
    assert "DPI" not in [g["name"] for g in after]


def test_a_scheduled_event_is_emitted_at_its_time(dataset_file, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    for server in start_sandbox(dataset_file, url=receiver.url, rate=100):
        start = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S")
        with httpx.Client(base_url=server.url, auth=ADMIN) as client:
            created = client.post(
                "/espf/v1/event/create",
                json={
                    "event_type": "Custom/NextMonth",
                    "variables": {"i_account": FIRST},
                    "start_time": start,
                },
            )
            bad = client.post(
                "/espf/v1/event/create", json={"event_type": "Custom/X", "start_time": "soon"}
            )
        assert bad.status_code == 400
        i_event = created.json()["i_event"]
        time.sleep(1.0)
        assert receiver.received == []
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
        import json

        body = json.loads(receiver.received[0]["body"])
        assert body["event_type"] == "Custom/NextMonth"
        assert body["variables"]["i_event"] == i_event and body["variables"]["i_account"] == FIRST
