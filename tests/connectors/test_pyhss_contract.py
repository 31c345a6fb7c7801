"""Contract tests: the HSS stand-in (opennsps.sandbox.hss) against the real PyHSS 2.0.0.

Every behaviour the stand-in imitates is one scenario here, run as the same requests
against both; the answers (status and body, with ids and times masked) must be equal. A
stand-in that drifts from PyHSS fails here, not in production.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from opennsps.sandbox.hss import HssSettings, HssState, create_hss_app
from tests.connectors.pyhss import RealPyHss, real_pyhss
from tests.support import running

pytestmark = pytest.mark.slow
KEY = "contract-provisioning-key-01"
MME, REALM = "mme01.epc.example", "epc.example"
IDS = ("subscriber_id", "auc_id", "apn_id")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
Seen = list[tuple[int, Any]]


@dataclass
class Backend:
    """One HSS as a scenario drives it: over its API, plus what only its own side can do."""

    name: str
    api: httpx.Client
    attach: Callable[[str], None]
    locked: Callable[[], Any]  # a context manager: its database locked while inside
    cancel_location_sent: Callable[[str], bool]

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        answer = self.api.request(method, path, **kwargs)
        return answer.status_code, masked(answer.json() if answer.content else None)


def masked(value: Any) -> Any:
    """Ids and times differ between two servers; a reason's SQL text is not the contract."""
    if isinstance(value, list):
        return [masked(item) for item in value]
    if not isinstance(value, dict):
        return value
    shown = {}
    for name, item in value.items():
        if name in IDS and isinstance(item, int):
            item = "<id>"
        elif isinstance(item, str) and TIME.match(item):
            item = "<time>"
        elif name == "reason" and isinstance(item, str):
            item = item.split("\n[SQL:", 1)[0]
        shown[name] = masked(item)
    return shown


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with real_pyhss(tmp_path_factory.mktemp("pyhss"), KEY) as hss, hss.client() as api:

        @contextmanager
        def locked() -> Iterator[None]:
            holder = sqlite3.connect(hss.workdir / "hss.db", isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                holder.execute("ROLLBACK")
                holder.close()

        yield Backend("PyHSS", api, hss.attach, locked, lambda imsi: _clr_logged(hss))


def _clr_logged(hss: RealPyHss) -> bool:
    return f"Sent CLR via Peer {MME}" in hss.log()


@pytest.fixture(scope="module")
def standin() -> Iterator[Backend]:
    app = create_hss_app(HssSettings(provisioning_key=KEY))
    state: HssState = app.state.hss
    with running(app) as url, httpx.Client(base_url=url, headers={"Provisioning-Key": KEY}) as api:
        for apn in (
            {"apn": "internet", "apn_ambr_dl": 100000, "apn_ambr_ul": 50000},
            {"apn": "ims", "apn_ambr_dl": 128, "apn_ambr_ul": 128},
        ):
            api.put("/apn/", json=apn).raise_for_status()

        def attach(imsi: str) -> None:
            api.post("/hss/attach", json={"imsi": imsi}).raise_for_status()

        @contextmanager
        def locked() -> Iterator[None]:
            api.put("/hss/lock", json={"locked": True}).raise_for_status()
            try:
                yield
            finally:
                api.put("/hss/lock", json={"locked": False}).raise_for_status()

        def cancel_location_sent(imsi: str) -> bool:
            return any(c["imsi"] == imsi for c in state.dump()["cancel_location"])

        yield Backend("stand-in", api, attach, locked, cancel_location_sent)


def auc(imsi: str) -> dict[str, Any]:
    return {"ki": "0" * 31 + "1", "opc": "0" * 31 + "2", "amf": "8000", "imsi": imsi}


def subscriber(imsi: str, auc_id: int, **fields: Any) -> dict[str, Any]:
    return {"imsi": imsi, "auc_id": auc_id, "default_apn": 1, "apn_list": "1,2", **fields}


def provisioned(hss: Backend, imsi: str, **fields: Any) -> int:
    """A subscriber with its AUC; returns its subscriber_id."""
    auc_id = hss.api.put("/auc/", json=auc(imsi)).json()["auc_id"]
    created = hss.api.put("/subscriber/", json=subscriber(imsi, auc_id, **fields))
    created.raise_for_status()
    subscriber_id: int = created.json()["subscriber_id"]
    return subscriber_id


def auc_created_shown_with_its_keys_and_read_without(hss: Backend) -> Seen:
    return [
        hss.call("PUT", "/auc/", json=auc("001010000001001")),
        hss.call("GET", "/auc/imsi/001010000001001"),
        hss.call("GET", "/auc/imsi/001010000001999"),
        hss.call("PUT", "/auc/", json=auc("001010000001001")),  # duplicate IMSI
    ]


def subscriber_created_and_looked_up(hss: Backend) -> Seen:
    auc_id = hss.api.put("/auc/", json=auc("001010000002001")).json()["auc_id"]
    created = hss.call(
        "PUT", "/subscriber/", json=subscriber("001010000002001", auc_id, msisdn="+4207+01")
    )
    subscriber_id = hss.api.get("/subscriber/imsi/001010000002001").json()["subscriber_id"]
    listed = hss.api.get("/subscriber/list", params={"page": 0, "page_size": 100000}).json()
    return [
        created,
        hss.call("GET", "/subscriber/imsi/001010000002001"),
        hss.call("GET", "/subscriber/msisdn/420701"),
        hss.call("GET", f"/subscriber/{subscriber_id}"),
        hss.call("GET", "/subscriber/imsi/001010000002999"),
        (200, masked([row for row in listed if row["imsi"] == "001010000002001"])),
    ]


def subscriber_creations_refused_or_accepted_as_pyhss_does(hss: Backend) -> Seen:
    auc_id = hss.api.put("/auc/", json=auc("001010000003001")).json()["auc_id"]
    first = subscriber("001010000003001", auc_id, msisdn="3001")
    hss.api.put("/subscriber/", json=first).raise_for_status()
    return [
        hss.call("PUT", "/subscriber/", json=first),  # duplicate IMSI
        hss.call("PUT", "/subscriber/", json=subscriber("001010000003002", auc_id, msisdn=None)),
        hss.call("PUT", "/subscriber/", json=subscriber("001010000003003", auc_id, bogus=1)),
        hss.call("PUT", "/subscriber/", json={"imsi": "001010000003004", "auc_id": auc_id}),
        hss.call("PUT", "/subscriber/", json=subscriber("001010000003005", 999999)),
        hss.call("PUT", "/subscriber/", content=b"not json"),
    ]


def patch_is_partial(hss: Backend) -> Seen:
    subscriber_id = provisioned(hss, "001010000004001", msisdn="4001")
    provisioned(hss, "001010000004002", msisdn="4002")
    path = f"/subscriber/{subscriber_id}"
    return [
        hss.call("PATCH", path, json={"ue_ambr_dl": 5, "msisdn": "+4003"}),
        hss.call("PATCH", path, json={"attributes": [], "nam": 2}),  # unknown keys ignored
        hss.call("PATCH", path, json={"msisdn": None}),
        hss.call("PATCH", path, json={"apn_list": None}),
        hss.call("PATCH", path, json={"imsi": "001010000004002"}),  # another's IMSI
        hss.call("PATCH", "/subscriber/987654", json={"enabled": False}),
        hss.call("GET", path),
    ]


def attached_subscriber_cannot_take_its_own_object_back(hss: Backend) -> Seen:
    subscriber_id = provisioned(hss, "001010000005001", msisdn="5001")
    hss.attach("001010000005001")
    path = f"/subscriber/{subscriber_id}"
    read_back = hss.api.get("/subscriber/imsi/001010000005001").json()
    return [
        hss.call("GET", path),
        hss.call("PATCH", path, json={**read_back, "ue_ambr_ul": 7}),  # text timestamps
        hss.call("GET", path),  # unchanged
        hss.call("PATCH", path, json={"serving_mme_timestamp": None, "ue_ambr_ul": 8}),
        hss.call("PATCH", path, json={"enabled": False}),  # barred: Cancel-Location
        (0, hss.cancel_location_sent("001010000005001")),
    ]


def delete_and_delete_again(hss: Backend) -> Seen:
    subscriber_id = provisioned(hss, "001010000006001", msisdn="6001")
    path = f"/subscriber/{subscriber_id}"
    return [
        hss.call("DELETE", path),
        hss.call("DELETE", path),
        hss.call("GET", path),
        hss.call("GET", "/subscriber/imsi/001010000006001"),
    ]


def writes_need_the_provisioning_key(hss: Backend) -> Seen:
    subscriber_id = provisioned(hss, "001010000007001", msisdn="7001")
    keyless = {"Provisioning-Key": ""}
    return [
        hss.call("PUT", "/auc/", json=auc("001010000007002"), headers=keyless),
        hss.call("PATCH", f"/subscriber/{subscriber_id}", json={"nam": 2}, headers=keyless),
        hss.call("DELETE", f"/subscriber/{subscriber_id}", headers=keyless),
        hss.call("GET", f"/subscriber/{subscriber_id}", headers=keyless),
    ]


def a_locked_database_is_an_operational_error(hss: Backend) -> Seen:
    subscriber_id = provisioned(hss, "001010000008001", msisdn="8001")
    with hss.locked():
        during = hss.call("PATCH", f"/subscriber/{subscriber_id}", json={"enabled": False})
    return [during, hss.call("GET", f"/subscriber/{subscriber_id}")]


SCENARIOS = [
    auc_created_shown_with_its_keys_and_read_without,
    subscriber_created_and_looked_up,
    subscriber_creations_refused_or_accepted_as_pyhss_does,
    patch_is_partial,
    attached_subscriber_cannot_take_its_own_object_back,
    delete_and_delete_again,
    writes_need_the_provisioning_key,
    a_locked_database_is_an_operational_error,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_the_stand_in_answers_as_the_real_pyhss_does(
    scenario: Callable[[Backend], Seen], real: Backend, standin: Backend
) -> None:
    expected = scenario(real)
    assert scenario(standin) == expected


def test_the_scenarios_see_what_they_claim_on_the_real_pyhss(real: Backend) -> None:
    """The facts the connector relies on, stated once against PyHSS itself (so a scenario
    that silently compares two equal failures cannot pass)."""
    subscriber_id = provisioned(real, "001010000009001", msisdn="9001")
    real.attach("001010000009001")
    path = f"/subscriber/{subscriber_id}"
    read_back = real.api.get("/subscriber/imsi/001010000009001").json()
    assert read_back["attributes"] == [] and read_back["serving_mme"] == MME
    assert real.call("PATCH", path, json=read_back) == (200, None)
    assert real.call("PATCH", path, json={"msisdn": None})[0] == 500
    status, barred = real.call("PATCH", path, json={"enabled": False})
    assert status == 200 and barred["enabled"] is False and barred["serving_mme"] == MME
    duplicate = real.call("PUT", "/subscriber/", json=subscriber("001010000009001", 1))
    assert duplicate[0] == 400 and "UNIQUE constraint failed" in duplicate[1]["reason"]
    with real.locked():
        status, locked = real.call("PATCH", path, json={"enabled": True})
    assert status == 400 and "database operational error" in locked["reason"]
