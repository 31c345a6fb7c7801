"""POST /rest/{Service}/{method}: the PortaBilling JSON API as the ESPF guide shows it.

Requests are application/x-www-form-urlencoded or multipart/form-data with two JSON-text
fields, `auth_info` and `params`. Errors answer HTTP 500 with a JSON fault
(`faultcode`, `faultstring`), as PortaBilling does.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import Response

from opennsps.sandbox import records
from opennsps.sandbox.faults import Faults

Params = dict[str, Any]
Method = Callable[[sqlite3.Connection, Params], dict[str, Any]]


class Fault(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def fault_response(fault: Fault) -> Response:
    body = {"faultcode": fault.code, "faultstring": fault.message}
    return Response(orjson.dumps(body), status_code=500, media_type="application/json")


@dataclass
class ApiUser:
    login: str
    password: str
    token: str | None = None


@dataclass
class Sessions:
    """Sessions opened by Session/login; each expires after `idle_timeout` unused seconds."""

    idle_timeout: float
    clock: Callable[[], float] = time.monotonic
    _last_used: dict[str, tuple[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    opened: int = 0

    def open(self, login: str) -> str:
        session_id = secrets.token_hex(16)
        with self._lock:
            self._last_used[session_id] = (login, self.clock())
            self.opened += 1
        return session_id

    def touch(self, session_id: str) -> str | None:
        """The session's login if it is still alive (and mark it used), else None."""
        now = self.clock()
        with self._lock:
            entry = self._last_used.get(session_id)
            if entry is None:
                return None
            login, last = entry
            if now - last > self.idle_timeout:
                del self._last_used[session_id]
                return None
            self._last_used[session_id] = (login, now)
            return login

    def close(self, session_id: str) -> None:
        with self._lock:
            self._last_used.pop(session_id, None)

    def expire_all(self) -> int:
        """A session-expiry storm: every open session ends at once."""
        with self._lock:
            count = len(self._last_used)
            self._last_used.clear()
        return count


MAX_LIST_LIMIT = 1000


def _int(params: Params, name: str, service: str, method: str) -> int:
    value = params.get(name)
    if isinstance(value, bool) or value is None:
        raise Fault(
            f"Client.{service}.{method}.param_missing", f"Required parameter '{name}' is missing"
        )
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Fault(
            f"Client.{service}.{method}.invalid_param", f"Parameter '{name}' must be an integer"
        ) from None


def _get_account_info(db: sqlite3.Connection, p: Params) -> dict[str, Any]:
    if "i_account" in p:
        info = records.account_info(
            db, i_account=_int(p, "i_account", "Account", "get_account_info")
        )
    elif "id" in p:
        info = records.account_info(db, id=str(p["id"]))
    else:
        raise Fault(
            "Client.Account.get_account_info.param_missing",
            "Either 'i_account' or 'id' is required",
        )
    return {"account_info": info} if info else {}


def _get_account_list(db: sqlite3.Connection, p: Params) -> dict[str, Any]:
    offset = _int({"offset": p.get("offset", 0)}, "offset", "Account", "get_account_list")
    limit = _int({"limit": p.get("limit", 100)}, "limit", "Account", "get_account_list")
    if offset < 0 or not 0 < limit <= MAX_LIST_LIMIT:
        raise Fault(
            "Client.Account.get_account_list.invalid_param",
            f"offset must be >= 0 and limit between 1 and {MAX_LIST_LIMIT}",
        )
    return {"account_list": records.account_list(db, offset, limit)}


def _get_custom_fields(db: sqlite3.Connection, p: Params) -> dict[str, Any]:
    i_account = _int(p, "i_account", "Account", "get_custom_fields_values")
    return {"custom_fields_values": records.custom_fields(db, i_account)}


def _get_service_features(db: sqlite3.Connection, p: Params) -> dict[str, Any]:
    i_account = _int(p, "i_account", "Account", "get_service_features_list")
    info = records.account_info(db, i_account=i_account)
    return {"service_features": info["service_features"] if info else []}


def _get_full_vd_counter_info(db: sqlite3.Connection, p: Params) -> dict[str, Any]:
    i_account = _int(p, "i_account", "Account", "get_full_vd_counter_info")
    return {"full_vd_counter_info": records.full_vd_counter_info(db, i_account)}


def _get_card_list(db: sqlite3.Connection, p: Params) -> dict[str, Any]:
    return {"card_list": records.card_list(db, _int(p, "i_account", "SIMCard", "get_card_list"))}


def _get_card_info(db: sqlite3.Connection, p: Params) -> dict[str, Any]:
    if "i_sim_card" in p:
        info = records.card_info(db, _int(p, "i_sim_card", "SIMCard", "get_card_info"), None)
    elif "imsi" in p:
        info = records.card_info(db, None, str(p["imsi"]))
    else:
        raise Fault(
            "Client.SIMCard.get_card_info.param_missing",
            "Either 'i_sim_card' or 'imsi' is required",
        )
    return {"sim_info": info} if info else {}


def _by_id(
    key: str,
    service: str,
    method: str,
    reader: Callable[[sqlite3.Connection, int], dict[str, Any] | None],
    answer: str,
) -> Method:
    def read(db: sqlite3.Connection, p: Params) -> dict[str, Any]:
        info = reader(db, _int(p, key, service, method))
        return {answer: info} if info else {}

    return read


def _get_number_info(db: sqlite3.Connection, p: Params) -> dict[str, Any]:
    number = p.get("number")
    if not number:
        raise Fault(
            "Client.DID.get_number_info.param_missing", "Required parameter 'number' is missing"
        )
    info = records.number_info(db, str(number))
    return {"number_info": info} if info else {}


METHODS: dict[tuple[str, str], Method] = {
    ("Account", "get_account_info"): _get_account_info,
    ("Account", "get_account_list"): _get_account_list,
    ("Account", "get_custom_fields_values"): _get_custom_fields,
    ("Account", "get_service_features_list"): _get_service_features,
    ("Account", "get_full_vd_counter_info"): _get_full_vd_counter_info,
    ("SIMCard", "get_card_list"): _get_card_list,
    ("SIMCard", "get_card_info"): _get_card_info,
    ("AccessPolicy", "get_access_policy_info"): _by_id(
        "i_access_policy",
        "AccessPolicy",
        "get_access_policy_info",
        records.access_policy_info,
        "access_policy_info",
    ),
    ("Product", "get_product_info"): _by_id(
        "i_product", "Product", "get_product_info", records.product_info, "product_info"
    ),
    ("Customer", "get_customer_info"): _by_id(
        "i_customer", "Customer", "get_customer_info", records.customer_info, "customer_info"
    ),
    ("Invoice", "get_invoice_info"): _by_id(
        "i_invoice", "Invoice", "get_invoice_info", records.invoice_info, "invoice_info"
    ),
    ("DID", "get_number_info"): _get_number_info,
}


class PortaBillingApi:
    """The /rest/{Service}/{method} endpoint over one dataset connection."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        users: list[ApiUser],
        sessions: Sessions,
        faults: Faults | None = None,
    ) -> None:
        self.faults = faults or Faults()
        self._connect = connect
        self._local = threading.local()
        self.users = {user.login: user for user in users}
        self.sessions = sessions
        self.calls: dict[str, int] = {}

    def _db(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "db", None)
        if connection is None:
            connection = self._connect()
            self._local.db = connection
        return connection

    async def endpoint(self, request: Request) -> Response:
        service, method = request.path_params["service"], request.path_params["method"]
        api = f"{service}/{method}"
        await self.faults.delay("rest", api)
        if self.faults.should_fail("rest", api):
            return fault_response(Fault("Server.Internal.injected", "Injected internal error"))
        try:
            auth_info, params = await _read_fields(request)
            key = f"{service}/{method}"
            self.calls[key] = self.calls.get(key, 0) + 1
            if (service, method) == ("Session", "login"):
                return _json({"session_id": self._login(params or auth_info)})
            login = self._authenticate(auth_info)
            if (service, method) == ("Session", "logout"):
                self.sessions.close(str(auth_info.get("session_id", "")))
                return _json({"success": 1})
            handler = METHODS.get((service, method))
            if handler is None:
                raise Fault(
                    "Server.Dispatcher.unknown_method",
                    f"Method {service}/{method} is not supported",
                )
            del login
            # Point reads on a local SQLite file take microseconds: no thread hop needed.
            answer = handler(self._db(), params)
            if self.faults.should_malform("rest", api):
                answer = {name: "malformed" for name in answer}
            return _json(answer)
        except Fault as fault:
            return fault_response(fault)

    def _login(self, params: Params) -> str:
        login = str(params.get("login", ""))
        user = self.users.get(login)
        password, token = params.get("password"), params.get("token")
        ok = user is not None and (
            (password is not None and secrets.compare_digest(str(password), user.password))
            or (
                token is not None
                and user.token is not None
                and secrets.compare_digest(str(token), user.token)
            )
        )
        if not ok:
            raise Fault(
                "Server.Session.login.auth_failed", "Login failed: wrong login, password or token"
            )
        return self.sessions.open(login)

    def _authenticate(self, auth_info: Params) -> str:
        session_id = auth_info.get("session_id")
        if session_id:
            login = self.sessions.touch(str(session_id))
            if login is None:
                raise Fault(
                    "Server.Session.check_auth.auth_failed",
                    "Session expired or unknown; log in again",
                )
            return login
        if "login" in auth_info:
            # As the guide warns, login + password (or token) on a call opens a new session.
            session_id = self._login(auth_info)
            return str(auth_info["login"])
        raise Fault(
            "Server.Session.check_auth.auth_failed",
            "auth_info needs a session_id or login credentials",
        )


async def _read_fields(request: Request) -> tuple[Params, Params]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        raise Fault(
            "Client.Request.invalid_content_type",
            "Content-Type must be application/x-www-form-urlencoded or multipart/form-data",
        )
    if content_type == "application/x-www-form-urlencoded":
        fields = parse_qs((await request.body()).decode("utf-8", errors="replace"))
        return _json_field(_first(fields.get("auth_info"))), _json_field(
            _first(fields.get("params"))
        )
    form = await request.form()
    return _json_field(form.get("auth_info")), _json_field(form.get("params"))


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _json_field(value: object) -> Params:
    if value is None or value == "":
        return {}
    if not isinstance(value, str):
        raise Fault("Client.Request.invalid_field", "auth_info and params must be text fields")
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise Fault(
            "Client.Request.invalid_json", "auth_info and params must be JSON objects"
        ) from None
    if not isinstance(decoded, dict):
        raise Fault("Client.Request.invalid_json", "auth_info and params must be JSON objects")
    return decoded


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")
