"""A stand-in for PyHSS 2.0.0's provisioning API, its quirks included. Each behaviour below
is checked against the real PyHSS by tests/connectors/test_pyhss_contract.py.

- Objects have PyHSS's columns and defaults: a subscriber carries its serving MME/MSC/VLR/
  SGSN fields, its last-seen location and its timestamps, as text ("%Y-%m-%dT%H:%M:%SZ").
- Lookups by IMSI or MSISDN add `"attributes": []`; unknown lookups answer 200 `null`.
- Creating with an unknown field answers 500; a missing required column or a duplicate IMSI
  (or ICCID) answers 400 with the SQLite integrity error PyHSS reports. An unknown `auc_id`
  is accepted (PyHSS's SQLite does not enforce the foreign key).
- `msisdn: null` on create or PATCH answers 500; every `+` in an MSISDN is removed.
- PATCH is partial: only the keys sent are set, unknown keys are ignored; a timestamp field
  sent with a value (PyHSS returns them as text but cannot store text) makes the whole update
  fail with 200 `null`, as does a PATCH of an unknown subscriber.
- `PUT /auc/` answers with the keys; reading an AUC hides ki, opc, des, kid, psk and adm1.
- Disabling a subscriber that an MME serves records a Cancel-Location toward that MME.
- With a provisioning key set, writes need the `Provisioning-Key` header (else 401).

Stand-in only: `POST /hss/attach` records an MME attach as PyHSS's Update_Serving_MME does
(its Diameter service, on an Update-Location-Request); `PUT /hss/lock` makes every call
answer PyHSS's 400 "database operational error" (its SQLite locked) until unlocked; an
optional asynchronous mode (subscriber writes answer 202 at once, are applied after a delay,
and the result is POSTed to a notification URL); `GET /hss/dump` shows the whole state.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opennsps.logging import get_logger
from opennsps.sandbox.faults import Faults

log = get_logger("opennsps.sandbox.hss")

HIDDEN_AUC_KEYS = ("ki", "opc", "des", "kid", "psk", "adm1")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
LIST_PAGE_SIZE = 200  # PyHSS's api.page_size default


@dataclass(frozen=True)
class Table:
    """One of PyHSS's tables: its columns with their defaults, as its schema declares them."""

    name: str
    model: str
    key: str
    columns: dict[str, Any]
    not_null: tuple[str, ...] = ()
    unique: tuple[str, ...] = ()

    def new_row(self, body: dict[str, Any]) -> dict[str, Any]:
        known = (*self.columns, self.key, "last_modified")
        unknown = next((k for k in body if k not in known), None)
        if unknown is not None:
            raise _internal(f"'{unknown}' is an invalid keyword argument for {self.model}")
        row = {**self.columns, **body, "last_modified": _now()}
        self.check_not_null(row)
        return row

    def check_not_null(self, row: dict[str, Any], *, on_update: bool = False) -> None:
        for name in self.not_null:
            if row.get(name) is None:
                detail = f"NOT NULL constraint failed: {self.name}.{name}"
                raise _integrity(detail, on_update=on_update)


APN = Table(
    "apn",
    "APN",
    "apn_id",
    {
        "apn": None,
        "ip_version": 0,
        "pgw_address": None,
        "sgw_address": None,
        "charging_characteristics": "0800",
        "apn_ambr_dl": None,
        "apn_ambr_ul": None,
        "qci": 9,
        "arp_priority": 4,
        "arp_preemption_capability": False,
        "arp_preemption_vulnerability": True,
        "charging_rule_list": None,
        "nbiot": False,
        "nidd_scef_id": None,
        "nidd_scef_realm": None,
        "nidd_mechanism": None,
        "nidd_rds": None,
        "nidd_preferred_data_mode": None,
    },
    not_null=("apn", "apn_ambr_dl", "apn_ambr_ul"),
)
AUC = Table(
    "auc",
    "AUC",
    "auc_id",
    {
        "ki": None,
        "opc": None,
        "amf": None,
        "sqn": None,
        "iccid": None,
        "imsi": None,
        "batch_name": None,
        "sim_vendor": None,
        "esim": False,
        "lpa": None,
        **dict.fromkeys(("pin1", "pin2", "puk1", "puk2", "kid", "psk", "des", "adm1")),
        "algo": "3",
        **dict.fromkeys(("misc1", "misc2", "misc3", "misc4")),
    },
    unique=("iccid", "imsi"),
)
SUBSCRIBER = Table(
    "subscriber",
    "SUBSCRIBER",
    "subscriber_id",
    {
        "imsi": None,
        "enabled": True,
        "auc_id": None,
        "default_apn": None,
        "apn_list": None,
        "msisdn": None,
        "ue_ambr_dl": 999999,
        "ue_ambr_ul": 999999,
        "nam": 0,
        "roaming_enabled": True,
        "roaming_rule_list": None,
        "subscribed_rau_tau_timer": 300,
        **dict.fromkeys(
            (
                "serving_mme",
                "serving_mme_timestamp",
                "serving_mme_realm",
                "serving_mme_peer",
                "serving_msc",
                "serving_msc_timestamp",
                "serving_vlr",
                "serving_vlr_timestamp",
                "serving_sgsn",
                "serving_sgsn_timestamp",
                "last_seen_eci",
                "last_seen_enodeb_id",
                "last_seen_cell_id",
                "last_seen_tac",
                "last_seen_mcc",
                "last_seen_mnc",
                "last_location_update_timestamp",
            )
        ),
    },
    not_null=("auc_id", "default_apn", "apn_list"),
    unique=("imsi",),
)


@dataclass
class HssSettings:
    provisioning_key: str | None = None
    async_mode: bool = False
    async_delay: float = 1.0
    notification_url: str | None = None


class HssError(Exception):
    def __init__(self, status: int, body: object) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body


AUTOFLUSH = (
    "(raised as a result of Query-invoked autoflush; consider using a session.no_autoflush "
    "block if this flush is occurring prematurely)\n"
)


def _integrity(detail: str, *, on_update: bool = False) -> HssError:
    """PyHSS's answer to a constraint violation (an update's comes through an autoflush)."""
    cause = AUTOFLUSH if on_update else ""
    reason = f"A database integrity error occurred: {cause}(sqlite3.IntegrityError) {detail}"
    return HssError(400, {"result": "Failed", "reason": reason})


def _internal(detail: str) -> HssError:
    return HssError(
        500, {"result": "Failed", "reason": f"An internal server error occurred: {detail}"}
    )


LOCKED = HssError(
    400,
    {
        "result": "Failed",
        "reason": "A database operational error occurred: (sqlite3.OperationalError) "
        "database is locked",
    },
)


def _now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def sim_secrets(imsi: str) -> tuple[str, str]:
    """Deterministic Ki/OPc for a sandbox SIM, as a SIM vendor's file would carry them."""
    digest = hashlib.sha256(f"sandbox-sim-{imsi}".encode()).hexdigest()
    return digest[:32], digest[32:64]


def _without_plus(body: dict[str, Any]) -> dict[str, Any]:
    """PyHSS's API removes every `+` from an MSISDN, and fails on `msisdn: null`."""
    if "msisdn" not in body:
        return body
    if not isinstance(body["msisdn"], str):
        raise _internal(f"'{type(body['msisdn']).__name__}' object has no attribute 'replace'")
    return {**body, "msisdn": body["msisdn"].replace("+", "")}


@dataclass
class HssState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    apn: dict[int, dict[str, Any]] = field(default_factory=dict)
    auc: dict[int, dict[str, Any]] = field(default_factory=dict)
    subscriber: dict[int, dict[str, Any]] = field(default_factory=dict)
    cancel_location: list[dict[str, Any]] = field(default_factory=list)
    locked: bool = False
    _ids: dict[str, int] = field(default_factory=lambda: {"apn": 0, "auc": 0, "subscriber": 0})
    # Unique keys, indexed as PyHSS's database indexes them (a SIM file has a million).
    _index: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    def _rows(self, table: Table) -> dict[int, dict[str, Any]]:
        rows: dict[int, dict[str, Any]] = getattr(self, table.name)
        return rows

    def _insert(self, table: Table, body: dict[str, Any]) -> dict[str, Any]:
        row = table.new_row(body)
        with self.lock:
            self._check_open()
            self._check_unique(table, row, None)
            self._ids[table.name] += 1
            row[table.key] = self._ids[table.name]
            self._rows(table)[row[table.key]] = row
            self._reindex(table, None, row)
        return row

    def _check_open(self) -> None:
        if self.locked:
            raise LOCKED

    def _check_unique(self, table: Table, row: dict[str, Any], row_id: int | None) -> None:
        """Raises PyHSS's integrity error; `row_id` is the row being updated, if any."""
        for name in table.unique:
            value = row.get(name)
            holder = self._index.get((table.name, name), {}).get(str(value))
            if value is not None and holder is not None and holder != row_id:
                detail = f"UNIQUE constraint failed: {table.name}.{name}"
                raise _integrity(detail, on_update=row_id is not None)

    def _reindex(
        self, table: Table, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        for name in table.unique:
            index = self._index.setdefault((table.name, name), {})
            if old is not None and old.get(name) is not None:
                index.pop(str(old[name]), None)
            if new is not None and new.get(name) is not None:
                index[str(new[name])] = new[table.key]

    def _find(self, table: Table, name: str, value: str) -> dict[str, Any] | None:
        with self.lock:
            self._check_open()
            row_id = self._index.get((table.name, name), {}).get(value)
            if row_id is not None:
                return self._rows(table)[row_id]
            rows = self._rows(table).values()
            return next(
                (r for r in rows if r.get(name) is not None and str(r[name]) == value), None
            )

    def create_apn(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._insert(APN, body)

    def create_auc(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._insert(AUC, body)

    def auc_by_imsi(self, imsi: str) -> dict[str, Any] | None:
        return self._find(AUC, "imsi", imsi)

    def create_subscriber(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._insert(SUBSCRIBER, _without_plus(body))

    def get(self, table: Table, row_id: int) -> dict[str, Any] | None:
        with self.lock:
            self._check_open()
            return self._rows(table).get(row_id)

    def update_subscriber(self, subscriber_id: int, body: dict[str, Any]) -> dict[str, Any] | None:
        """PyHSS's partial update; None where PyHSS answers 200 `null`."""
        body = _without_plus(body)
        with self.lock:
            self._check_open()
            current = self.subscriber.get(subscriber_id)
            if current is None:
                return None
            changes = {k: v for k, v in body.items() if k in SUBSCRIBER.columns}
            if any(v is not None for k, v in changes.items() if "timestamp" in k):
                return None  # text into a DateTime column fails the whole update
            if not changes:
                return current
            updated = {**current, **changes, "last_modified": _now()}
            SUBSCRIBER.check_not_null(updated, on_update=True)
            self._check_unique(SUBSCRIBER, updated, subscriber_id)
            self._reindex(SUBSCRIBER, current, updated)
            self.subscriber[subscriber_id] = updated
            if current["enabled"] and not updated["enabled"] and updated["serving_mme"]:
                self.cancel_location.append(
                    {"imsi": updated["imsi"], "serving_mme": updated["serving_mme"]}
                )
            return updated

    def delete_subscriber(self, subscriber_id: int) -> bool:
        with self.lock:
            self._check_open()
            removed = self.subscriber.pop(subscriber_id, None)
            if removed is None:
                return False
            self._reindex(SUBSCRIBER, removed, None)
            return True

    def find_subscriber(self, name: str, value: str) -> dict[str, Any] | None:
        return self._find(SUBSCRIBER, name, value)

    def update_serving_mme(self, imsi: str, mme: str, realm: str, peer: str) -> bool:
        """What PyHSS's Update_Serving_MME records on an attach (last_modified unchanged)."""
        with self.lock:
            row_id = self._index.get(("subscriber", "imsi"), {}).get(imsi)
            if row_id is None:
                return False
            self.subscriber[row_id] = {
                **self.subscriber[row_id],
                "serving_mme": mme,
                "serving_mme_timestamp": _now(),
                "serving_mme_realm": realm,
                "serving_mme_peer": peer,
            }
            return True

    def dump(self) -> dict[str, Any]:
        with self.lock:
            return {
                "apn": sorted(self.apn.values(), key=lambda r: r["apn_id"]),
                "auc": [
                    _public_auc(a) for a in sorted(self.auc.values(), key=lambda r: r["auc_id"])
                ],
                "subscriber": sorted(self.subscriber.values(), key=lambda r: r["subscriber_id"]),
                "cancel_location": list(self.cancel_location),
            }

    def load_sims_from_dataset(self, path: str) -> int:
        """Load the AUC of every SIM card in a sandbox dataset (the vendor's SIM file)."""
        connection = sqlite3.connect(path)
        try:
            rows = connection.execute(
                "SELECT imsi, iccid FROM sim_cards ORDER BY i_sim_card"
            ).fetchall()
        finally:
            connection.close()
        for imsi, iccid in rows:
            if self.auc_by_imsi(imsi) is None:
                ki, opc = sim_secrets(imsi)
                self.create_auc({"ki": ki, "opc": opc, "amf": "8000", "imsi": imsi, "iccid": iccid})
        return len(rows)


def _public_auc(auc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in auc.items() if key not in HIDDEN_AUC_KEYS}


def create_hss_app(settings: HssSettings | None = None, faults: Faults | None = None) -> Starlette:
    config = settings or HssSettings()
    state = HssState()
    injected = faults or Faults()
    background: set[asyncio.Task[None]] = set()

    def guarded(
        handler: Callable[[Request], Awaitable[object]], write: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            await injected.delay("hss")
            if injected.should_fail("hss"):
                return _json({"result": "Failed", "reason": "injected fault"}, 500)
            if write and config.provisioning_key is not None:
                given = request.headers.get("provisioning-key", "")
                if not secrets.compare_digest(given, config.provisioning_key):
                    return _json({"Result": "Unauthorized - Provisioning-Key Invalid"}, 401)
            try:
                result = await handler(request)
            except HssError as error:
                return _json(error.body, error.status)
            except (ValueError, TypeError) as exc:
                return _json({"result": "Failed", "reason": str(exc)}, 500)
            if isinstance(result, Response):
                return result
            return _json(result)

        return endpoint

    async def body(request: Request) -> dict[str, Any]:
        try:
            decoded = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise _internal(
                "400 Bad Request: The browser (or proxy) sent a request that this server could "
                "not understand."
            ) from None
        if not isinstance(decoded, dict):
            raise _internal(f"the body is a JSON {type(decoded).__name__}, not an object")
        return decoded

    def asynchronously(operation: str, imsi: str, apply: Callable[[], object]) -> Response:
        request_id = str(uuid.uuid4())

        async def later() -> None:
            await asyncio.sleep(config.async_delay)
            try:
                apply()
                outcome = {"status": "OK"}
            except HssError as error:
                outcome = {"status": "FAILED", "error": str(error.body)}
            if config.notification_url:
                note = {"request_id": request_id, "operation": operation, "imsi": imsi, **outcome}
                try:
                    async with httpx.AsyncClient(timeout=10) as client:
                        await client.post(config.notification_url, json=note)
                except httpx.HTTPError as exc:
                    log.warning("hss notification failed", error=str(exc))

        task = asyncio.create_task(later())
        background.add(task)
        task.add_done_callback(background.discard)
        return _json({"status": "IN_PROGRESS", "request_id": request_id}, 202)

    async def put_apn(request: Request) -> object:
        return state.create_apn(await body(request))

    async def get_apn(request: Request) -> object:
        return state.get(APN, int(request.path_params["apn_id"]))

    async def put_auc(request: Request) -> object:
        return state.create_auc(await body(request))

    async def get_auc_by_imsi(request: Request) -> object:
        found = state.auc_by_imsi(request.path_params["imsi"])
        return _public_auc(found) if found else None

    async def put_subscriber(request: Request) -> object:
        data = await body(request)
        if config.async_mode:
            return asynchronously(
                "create", str(data.get("imsi")), lambda: state.create_subscriber(data)
            )
        return state.create_subscriber(data)

    async def get_subscriber(request: Request) -> object:
        return state.get(SUBSCRIBER, int(request.path_params["subscriber_id"]))

    async def patch_subscriber(request: Request) -> object:
        subscriber_id = int(request.path_params["subscriber_id"])
        data = await body(request)
        if config.async_mode:
            return asynchronously(
                "update",
                str(data.get("imsi")),
                lambda: state.update_subscriber(subscriber_id, data),
            )
        return state.update_subscriber(subscriber_id, data)

    async def delete_subscriber(request: Request) -> object:
        subscriber_id = int(request.path_params["subscriber_id"])
        if config.async_mode:
            return asynchronously("delete", "", lambda: state.delete_subscriber(subscriber_id))
        if not state.delete_subscriber(subscriber_id):
            return None
        return {"Result": "OK"}

    def with_attributes(found: dict[str, Any] | None) -> object:
        return {**found, "attributes": []} if found is not None else None

    async def by_imsi(request: Request) -> object:
        return with_attributes(state.find_subscriber("imsi", request.path_params["imsi"]))

    async def by_msisdn(request: Request) -> object:
        return with_attributes(state.find_subscriber("msisdn", request.path_params["msisdn"]))

    async def subscriber_list(request: Request) -> object:
        page = int(request.query_params.get("page", "0"))
        size = int(request.query_params.get("page_size", str(LIST_PAGE_SIZE)))
        rows = state.dump()["subscriber"]
        return rows[page * size : (page + 1) * size] if size else rows

    async def attach(request: Request) -> object:
        data = await body(request)
        mme = str(data.get("serving_mme") or "mme01.epc.example")
        realm = str(data.get("serving_mme_realm") or "epc.example")
        peer = str(data.get("serving_mme_peer") or f"{mme};hss01")
        if not state.update_serving_mme(str(data.get("imsi")), mme, realm, peer):
            raise HssError(404, {"result": "Failed", "reason": "no subscriber with that IMSI"})
        return {"Result": "OK"}

    async def set_lock(request: Request) -> object:
        state.locked = bool((await body(request)).get("locked"))
        return {"locked": state.locked}

    async def dump(_: Request) -> object:
        return state.dump()

    routes = [
        Route("/apn/", guarded(put_apn, write=True), methods=["PUT"]),
        Route("/apn/{apn_id:int}", guarded(get_apn), methods=["GET"]),
        Route("/auc/", guarded(put_auc, write=True), methods=["PUT"]),
        Route("/auc/imsi/{imsi}", guarded(get_auc_by_imsi), methods=["GET"]),
        Route("/subscriber/", guarded(put_subscriber, write=True), methods=["PUT"]),
        Route("/subscriber/list", guarded(subscriber_list), methods=["GET"]),
        Route("/subscriber/imsi/{imsi}", guarded(by_imsi), methods=["GET"]),
        Route("/subscriber/msisdn/{msisdn}", guarded(by_msisdn), methods=["GET"]),
        Route("/subscriber/{subscriber_id:int}", guarded(get_subscriber), methods=["GET"]),
        Route(
            "/subscriber/{subscriber_id:int}",
            guarded(patch_subscriber, write=True),
            methods=["PATCH"],
        ),
        Route(
            "/subscriber/{subscriber_id:int}",
            guarded(delete_subscriber, write=True),
            methods=["DELETE"],
        ),
        Route("/hss/attach", guarded(attach), methods=["POST"]),
        Route("/hss/lock", guarded(set_lock), methods=["PUT"]),
        Route("/hss/dump", guarded(dump), methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.hss = state
    return app
