"""The HSS stand-in's PyHSS quirks, and the sandbox's fault injection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opennsps.sandbox.hss import HssSettings, create_hss_app, sim_secrets
from tests.sandbox.conftest import API_LOGIN, API_PASSWORD, Receiver, SandboxServer
from tests.support import running

IMSI = "001010000000001"


@pytest.fixture
def hss() -> Iterator[str]:
    with running(create_hss_app()) as url:
        yield url


def provision(
    client: httpx.Client, imsi: str = IMSI, msisdn: str = "+79120000001"
) -> dict[str, object]:
    apn = client.put(
        "/apn/", json={"apn": "internet", "apn_ambr_dl": 100000, "apn_ambr_ul": 50000}
    ).json()
    ki, opc = sim_secrets(imsi)
    auc = client.put("/auc/", json={"ki": ki, "opc": opc, "amf": "8000", "imsi": imsi}).json()
    subscriber = client.put(
        "/subscriber/",
        json={
            "imsi": imsi,
            "msisdn": msisdn,
            "enabled": True,
            "auc_id": auc["auc_id"],
            "default_apn": apn["apn_id"],
            "apn_list": str(apn["apn_id"]),
        },
    )
    assert subscriber.status_code == 200, subscriber.text
    created: dict[str, object] = subscriber.json()
    return created


def test_the_pyhss_provisioning_surface_and_its_quirks(hss: str) -> None:
    with httpx.Client(base_url=hss) as client:
        created = provision(client)
        assert created["msisdn"] == "79120000001"  # leading + stripped
        assert created["ue_ambr_dl"] == 999999  # PyHSS default
        sid = created["subscriber_id"]
        assert client.get(f"/subscriber/imsi/{IMSI}").json()["subscriber_id"] == sid
        assert client.get("/subscriber/msisdn/79120000001").json()["imsi"] == IMSI
        unknown = client.get("/subscriber/imsi/001019999999999")
        assert unknown.status_code == 200 and unknown.json() is None
        auc = client.get(f"/auc/imsi/{IMSI}").json()
        assert "ki" not in auc and "opc" not in auc and auc["imsi"] == IMSI
        duplicate = client.put("/subscriber/", json={**created, "subscriber_id": None})
        assert duplicate.status_code == 400
        assert duplicate.json()["result"] == "Failed"
        assert "UNIQUE constraint failed: subscriber.imsi" in duplicate.json()["reason"]
        patched = client.patch(
            f"/subscriber/{sid}", json={**created, "enabled": False, "msisdn": "+79120000002"}
        )
        assert patched.json()["enabled"] is False and patched.json()["msisdn"] == "79120000002"
        assert client.delete(f"/subscriber/{sid}").json() == {"Result": "OK"}
        gone = client.get(f"/subscriber/{sid}")
        assert gone.status_code == 200 and gone.json() is None
        missing_field = client.put("/subscriber/", json={"imsi": "001010000000009"})
        assert missing_field.status_code == 400
        assert client.get("/hss/dump").json()["subscriber"] == []


def test_the_provisioning_key_guards_writes() -> None:
    with running(create_hss_app(HssSettings(provisioning_key="k3y"))) as url:
        refused = httpx.put(f"{url}/apn/", json={"apn": "a", "apn_ambr_dl": 1, "apn_ambr_ul": 1})
        allowed = httpx.put(
            f"{url}/apn/",
            json={"apn": "a", "apn_ambr_dl": 1, "apn_ambr_ul": 1},
            headers={"Provisioning-Key": "k3y"},
        )
        read = httpx.get(f"{url}/subscriber/imsi/{IMSI}")
    assert refused.status_code == 401
    assert refused.json() == {"Result": "Unauthorized - Provisioning-Key Invalid"}
    assert allowed.status_code == 200 and read.status_code == 200


def test_asynchronous_mode_notifies_the_result_later(receiver: Receiver) -> None:
    settings = HssSettings(async_mode=True, async_delay=0.3, notification_url=receiver.url)
    app = create_hss_app(settings)
    with running(app) as url, httpx.Client(base_url=url) as client:
        apn = client.put(
            "/apn/", json={"apn": "internet", "apn_ambr_dl": 1, "apn_ambr_ul": 1}
        ).json()
        ki, opc = sim_secrets(IMSI)
        auc = client.put("/auc/", json={"ki": ki, "opc": opc, "amf": "8000", "imsi": IMSI}).json()
        answer = client.put(
            "/subscriber/",
            json={
                "imsi": IMSI,
                "auc_id": auc["auc_id"],
                "default_apn": apn["apn_id"],
                "apn_list": "1",
            },
        )
        assert answer.status_code == 202 and answer.json()["status"] == "IN_PROGRESS"
        assert client.get(f"/subscriber/imsi/{IMSI}").json() is None
        deadline = time.monotonic() + 5
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get(f"/subscriber/imsi/{IMSI}").json()["imsi"] == IMSI
    import json

    note = json.loads(receiver.received[0]["body"])
    assert note == {
        "request_id": answer.json()["request_id"],
        "operation": "create",
        "imsi": IMSI,
        "status": "OK",
    }


def test_the_hss_loads_the_sim_vendor_file_from_a_dataset(dataset_file: Path) -> None:
    app = create_hss_app()
    loaded = app.state.hss.load_sims_from_dataset(str(dataset_file))
    assert loaded == 2210  # 200 SIMs in use + 5 % + 2,000 spare
    assert app.state.hss.auc_by_imsi("001010000000000") is not None


def test_injected_errors_latency_and_espf_outage(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        login = {"params": f'{{"login":"{API_LOGIN}","password":"{API_PASSWORD}"}}'}
        assert client.put("/sandbox/faults", json={"error_rate": {"rest": 1.0}}).status_code == 200
        failing = client.post("/rest/Session/login", data=login)
        assert (
            failing.status_code == 500 and failing.json()["faultcode"] == "Server.Internal.injected"
        )
        client.put(
            "/sandbox/faults",
            json={"clear": True, "latency": {"rest": {"mean_ms": 300, "distribution": "fixed"}}},
        )
        started = time.monotonic()
        assert client.post("/rest/Session/login", data=login).status_code == 200
        assert time.monotonic() - started >= 0.3
        client.put("/sandbox/faults", json={"clear": True, "espf_outage_seconds": 1})
        down = client.get("/espf/v1/groups", auth=(API_LOGIN, API_PASSWORD))
        time.sleep(1.1)
        up = client.get("/espf/v1/groups", auth=(API_LOGIN, API_PASSWORD))
        bad = client.put("/sandbox/faults", json={"error_rate": {"rest": 2}})
        described = client.get("/sandbox/faults").json()
    assert down.status_code == 503 and up.status_code == 200
    assert bad.status_code == 400 and "between 0 and 1" in bad.json()["error"]
    assert described["injected_errors"] == 1


def test_an_imsi_freed_by_an_update_or_delete_can_be_used_again(hss: str) -> None:
    with httpx.Client(base_url=hss) as client:
        first = provision(client)
        sid = first["subscriber_id"]
        moved = client.patch(f"/subscriber/{sid}", json={**first, "imsi": "001010000000002"})
        assert moved.status_code == 200
        assert client.get(f"/subscriber/imsi/{IMSI}").json() is None
        assert client.get("/subscriber/imsi/001010000000002").json()["subscriber_id"] == sid
        ki, opc = sim_secrets("001010000000003")
        auc = client.put(
            "/auc/", json={"ki": ki, "opc": opc, "amf": "8000", "imsi": "001010000000003"}
        ).json()
        other = client.put(
            "/subscriber/",
            json={
                "imsi": "001010000000003",
                "auc_id": auc["auc_id"],
                "default_apn": 1,
                "apn_list": "1",
            },
        ).json()
        # PyHSS's PATCH is partial (and `msisdn: null`, as `other` holds, answers 500).
        clash = client.patch(
            f"/subscriber/{other['subscriber_id']}", json={"imsi": "001010000000002"}
        )
        assert clash.status_code == 400
        assert client.delete(f"/subscriber/{sid}").json() == {"Result": "OK"}
        reused = client.patch(
            f"/subscriber/{other['subscriber_id']}", json={"imsi": "001010000000002"}
        )
        assert reused.status_code == 200
