"""A stand-in for PyHSS's provisioning API (shared/reference/pyhss-api.md), quirks included.

- Unknown lookups answer 200 with the body `null`.
- A duplicate IMSI (or ICCID) answers 400 with PyHSS's integrity-error shape.
- A leading `+` in `msisdn` is stripped on create and update.
- With a provisioning key set, writes need the `Provisioning-Key` header (else 401).
- AUC keys (ki, opc) are hidden in answers.
- Optional asynchronous mode: subscriber writes answer 202 at once, are applied after a
  delay, and the result is POSTed to a notification URL.
Its whole state can be dumped (GET /hss/dump) to compare with PortaBilling.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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

APN_REQUIRED = ("apn", "apn_ambr_dl", "apn_ambr_ul")
AUC_REQUIRED = ("ki", "opc", "amf", "imsi")
SUBSCRIBER_REQUIRED = ("imsi", "auc_id", "default_apn", "apn_list")
SUBSCRIBER_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "msisdn": None,
    "ue_ambr_dl": 999999,
    "ue_ambr_ul": 999999,
    "nam": 0,
    "roaming_enabled": True,
}
HIDDEN_AUC_KEYS = ("ki", "opc")


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


def _integrity(detail: str) -> HssError:
    return HssError(
        400, {"result": "Failed", "reason": f"A database integrity error occurred: {detail}"}
    )


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def sim_secrets(imsi: str) -> tuple[str, str]:
    """Deterministic Ki/OPc for a sandbox SIM, as a SIM vendor's file would carry them."""
    digest = hashlib.sha256(f"sandbox-sim-{imsi}".encode()).hexdigest()
    return digest[:32], digest[32:64]


class HssState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.apn: dict[int, dict[str, Any]] = {}
        self.auc: dict[int, dict[str, Any]] = {}
        self.subscriber: dict[int, dict[str, Any]] = {}
        self._ids = {"apn": 0, "auc": 0, "subscriber": 0}
        # Unique keys, indexed as PyHSS's database indexes them (a SIM file has a million).
        self._auc_by_imsi: dict[str, int] = {}
        self._auc_by_iccid: dict[str, int] = {}
        self._subscriber_by_imsi: dict[str, int] = {}

    def next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def create_apn(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, APN_REQUIRED, "apn")
        with self.lock:
            apn_id = self.next_id("apn")
            record = {"qci": 9, "arp_priority": 4, "ip_version": 0, **body, "apn_id": apn_id}
            self.apn[apn_id] = record
        return record

    def create_auc(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, AUC_REQUIRED, "auc")
        imsi, iccid = str(body["imsi"]), str(body["iccid"]) if body.get("iccid") else None
        with self.lock:
            if imsi in self._auc_by_imsi:
                raise _integrity(f"UNIQUE constraint failed: auc.imsi ({imsi})")
            if iccid is not None and iccid in self._auc_by_iccid:
                raise _integrity(f"UNIQUE constraint failed: auc.iccid ({iccid})")
            auc_id = self.next_id("auc")
            record = {"sqn": 1, "iccid": None, **body, "auc_id": auc_id}
            self.auc[auc_id] = record
            self._auc_by_imsi[imsi] = auc_id
            if iccid is not None:
                self._auc_by_iccid[iccid] = auc_id
        return record

    def auc_by_imsi(self, imsi: str) -> dict[str, Any] | None:
        with self.lock:
            auc_id = self._auc_by_imsi.get(imsi)
            return self.auc[auc_id] if auc_id is not None else None

    def create_subscriber(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, SUBSCRIBER_REQUIRED, "subscriber")
        record = {**SUBSCRIBER_DEFAULTS, **body}
        _strip_plus(record)
        imsi = str(record["imsi"])
        with self.lock:
            if imsi in self._subscriber_by_imsi:
                raise _integrity(f"UNIQUE constraint failed: subscriber.imsi ({imsi})")
            if int(record["auc_id"]) not in self.auc:
                raise _integrity("FOREIGN KEY constraint failed: subscriber.auc_id")
            subscriber_id = self.next_id("subscriber")
            record["subscriber_id"] = subscriber_id
            self.subscriber[subscriber_id] = record
            self._subscriber_by_imsi[imsi] = subscriber_id
        return record

    def update_subscriber(self, subscriber_id: int, body: dict[str, Any]) -> dict[str, Any] | None:
        with self.lock:
            current = self.subscriber.get(subscriber_id)
            if current is None:
                return None
            updated = {**current, **body, "subscriber_id": subscriber_id}
            _strip_plus(updated)
            imsi = str(updated["imsi"])
            if self._subscriber_by_imsi.get(imsi, subscriber_id) != subscriber_id:
                raise _integrity(f"UNIQUE constraint failed: subscriber.imsi ({imsi})")
            del self._subscriber_by_imsi[str(current["imsi"])]
            self._subscriber_by_imsi[imsi] = subscriber_id
            self.subscriber[subscriber_id] = updated
            return updated

    def delete_subscriber(self, subscriber_id: int) -> bool:
        with self.lock:
            removed = self.subscriber.pop(subscriber_id, None)
            if removed is None:
                return False
            del self._subscriber_by_imsi[str(removed["imsi"])]
            return True

    def find_subscriber(self, field: str, value: str) -> dict[str, Any] | None:
        with self.lock:
            if field == "imsi":
                subscriber_id = self._subscriber_by_imsi.get(value)
                return self.subscriber[subscriber_id] if subscriber_id is not None else None
            return next((s for s in self.subscriber.values() if str(s.get(field)) == value), None)

    def dump(self) -> dict[str, Any]:
        with self.lock:
            return {
                "apn": sorted(self.apn.values(), key=lambda r: r["apn_id"]),
                "auc": [
                    _public_auc(a) for a in sorted(self.auc.values(), key=lambda r: r["auc_id"])
                ],
                "subscriber": sorted(self.subscriber.values(), key=lambda r: r["subscriber_id"]),
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


def _require(body: dict[str, Any], names: tuple[str, ...], table: str) -> None:
    for name in names:
        if body.get(name) in (None, ""):
            raise _integrity(f"NOT NULL constraint failed: {table}.{name}")


def _strip_plus(record: dict[str, Any]) -> None:
    msisdn = record.get("msisdn")
    if isinstance(msisdn, str) and msisdn.startswith("+"):
        record["msisdn"] = msisdn[1:]


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
            raise HssError(
                400, {"result": "Failed", "reason": "The body is not valid JSON"}
            ) from None
        if not isinstance(decoded, dict):
            raise HssError(400, {"result": "Failed", "reason": "The body must be a JSON object"})
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
        with state.lock:
            return state.apn.get(int(request.path_params["apn_id"]))

    async def put_auc(request: Request) -> object:
        return _public_auc(state.create_auc(await body(request)))

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
        with state.lock:
            return state.subscriber.get(int(request.path_params["subscriber_id"]))

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

    async def by_imsi(request: Request) -> object:
        return state.find_subscriber("imsi", request.path_params["imsi"])

    async def by_msisdn(request: Request) -> object:
        return state.find_subscriber("msisdn", request.path_params["msisdn"].lstrip("+"))

    async def subscriber_list(request: Request) -> object:
        page = int(request.query_params.get("page", "0"))
        size = int(request.query_params.get("page_size", "100"))
        rows = state.dump()["subscriber"]
        return rows[page * size : (page + 1) * size]

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
        Route("/hss/dump", guarded(dump), methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.hss = state
    return app
