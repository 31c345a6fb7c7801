"""The ESPF API of the sandbox: provisioning statuses, service groups, scheduled events.

Authenticated with the PortaBilling administrator's API credentials (Basic). Violations
answer 4xx with a JSON reason; statuses are kept per (account, group), with a history.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from opennsps.sandbox.faults import Faults
from opennsps.sandbox.portabilling_api import ApiUser

STATUSES = ("OK", "IN_PROGRESS", "RETRY", "FAILED")
PREDEFINED_GROUPS = (
    "VoIP",
    "HSS",
    "PCRF",
    "IPTV",
    "WiMAX",
    "Netaccess",
    "NumberPortability",
    "LawfullInterception",
)
FIRST_CUSTOM_GROUP = 1001
MAX_GROUP_NAME = 64
MAX_ERROR = 4000
SCHEMA = """
CREATE TABLE IF NOT EXISTS espf_groups (
    i_group INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, is_custom INTEGER NOT NULL,
    obsolete INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS espf_status_history (
    id INTEGER PRIMARY KEY, i_account INTEGER NOT NULL, group_name TEXT NOT NULL,
    status TEXT NOT NULL, error TEXT, recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS espf_status_account ON espf_status_history (i_account, group_name, id);
CREATE TABLE IF NOT EXISTS scheduled_events (
    i_event INTEGER PRIMARY KEY, event_type TEXT NOT NULL, variables TEXT NOT NULL,
    start_time TEXT NOT NULL, emitted INTEGER NOT NULL DEFAULT 0
);
"""


class EspfError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class EspfApi:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        users: list[ApiUser],
        next_i_event: Callable[[], int],
        faults: Faults | None = None,
    ) -> None:
        self.faults = faults or Faults()
        self._db = connect()
        self._lock = threading.Lock()
        self._users = {user.login: user for user in users}
        self._next_i_event = next_i_event
        with self._lock:
            self._db.executescript(SCHEMA)
            for number, name in enumerate(PREDEFINED_GROUPS, 1):
                self._db.execute(
                    "INSERT OR IGNORE INTO espf_groups (i_group, name, is_custom) VALUES (?, ?, 0)",
                    (number, name),
                )

    # -- HTTP ---------------------------------------------------------------------

    def endpoint(
        self, action: Callable[[Request], Awaitable[dict[str, Any]]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """An HTTP endpoint for one ESPF action: faults, authentication, JSON answers."""

        async def handle(request: Request) -> Response:
            return await self._guarded(request, action)

        return handle

    async def _guarded(
        self, request: Request, action: Callable[[Request], Awaitable[dict[str, Any]]]
    ) -> Response:
        await self.faults.delay("espf")
        if self.faults.espf_down() or self.faults.should_fail("espf"):
            return _json({"error": "ESPF API unavailable (injected fault)"}, 503)
        try:
            self._authenticate(request)
            return _json(await action(request))
        except EspfError as error:
            headers = (
                {"WWW-Authenticate": 'Basic realm="ESPF API"'} if error.status == 401 else None
            )
            response = _json({"error": error.reason}, error.status)
            if headers:
                response.headers.update(headers)
            return response

    def _authenticate(self, request: Request) -> None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            raise EspfError(401, "Basic authentication with the API user's credentials is required")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise EspfError(401, "malformed Basic credentials") from None
        user = self._users.get(login)
        if user is None or not secrets.compare_digest(password, user.password):
            raise EspfError(401, "wrong login or password")

    # -- statuses -----------------------------------------------------------------

    async def set_status_by_i(self, request: Request) -> dict[str, Any]:
        try:
            i_account = int(request.path_params["i_account"])
        except ValueError:
            raise EspfError(400, "i_account must be an integer") from None
        return await self._set_status(request, i_account)

    async def set_status_by_id(self, request: Request) -> dict[str, Any]:
        account_id = request.path_params["account_id"]
        with self._lock:
            row = self._db.execute(
                "SELECT i_account FROM accounts WHERE id = ? AND deleted = 0", (account_id,)
            ).fetchone()
        if row is None:
            raise EspfError(404, f"no account with id {account_id!r}")
        return await self._set_status(request, int(row[0]))

    async def _set_status(self, request: Request, i_account: int) -> dict[str, Any]:
        if (
            request.headers.get("content-type", "").split(";")[0].strip()
            != "application/x-www-form-urlencoded"
        ):
            raise EspfError(415, "Content-Type must be application/x-www-form-urlencoded")
        form = await request.form()
        status, group, error = form.get("status"), form.get("group"), form.get("error")
        if not isinstance(status, str) or status not in STATUSES:
            raise EspfError(400, f"status must be one of {', '.join(STATUSES)}")
        if not isinstance(group, str) or not group:
            raise EspfError(400, "group is required")
        if error is not None and (not isinstance(error, str) or len(error) > MAX_ERROR):
            raise EspfError(400, f"error must be text of at most {MAX_ERROR} characters")
        with self._lock:
            if (
                self._db.execute(
                    "SELECT 1 FROM accounts WHERE i_account = ?", (i_account,)
                ).fetchone()
                is None
            ):
                raise EspfError(404, f"no account with i_account {i_account}")
            if (
                self._db.execute(
                    "SELECT 1 FROM espf_groups WHERE name = ? AND obsolete = 0", (group,)
                ).fetchone()
                is None
            ):
                raise EspfError(400, f"group {group!r} is not registered")
            self._db.execute(
                "INSERT INTO espf_status_history"
                " (i_account, group_name, status, error, recorded_at) VALUES (?, ?, ?, ?, ?)",
                (i_account, group, status, None if status == "OK" else error, _now()),
            )
        return {"success": 1}

    async def read_status(self, request: Request) -> dict[str, Any]:
        i_account = int(request.path_params["i_account"])
        return {"i_account": i_account, "statuses": self.statuses(i_account)}

    def statuses(self, i_account: int) -> list[dict[str, Any]]:
        """The latest status per group, in the order the groups were first reported."""
        latest: dict[str, dict[str, Any]] = {}
        for entry in self.history(i_account):
            latest[entry["group"]] = {
                "group": entry["group"],
                "status": entry["status"],
                "error": entry["error"],
                "updated_at": entry["recorded_at"],
            }
        return list(latest.values())

    def history(self, i_account: int) -> list[dict[str, Any]]:
        """Every status reported for the account, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT group_name, status, error, recorded_at FROM espf_status_history"
                " WHERE i_account = ? ORDER BY id",
                (i_account,),
            ).fetchall()
        return [{"group": g, "status": s, "error": e, "recorded_at": a} for g, s, e, a in rows]

    def summary(self) -> dict[str, Any]:
        """How many accounts have each latest status per group, and how many reports came."""
        with self._lock:
            latest = self._db.execute(
                "SELECT h.group_name, h.status, COUNT(*) FROM espf_status_history h"
                " WHERE h.id = (SELECT MAX(l.id) FROM espf_status_history l"
                " WHERE l.i_account = h.i_account AND l.group_name = h.group_name)"
                " GROUP BY h.group_name, h.status"
            ).fetchall()
            reports = self._db.execute("SELECT COUNT(*) FROM espf_status_history").fetchone()[0]
        groups: dict[str, dict[str, int]] = {}
        for group, status, count in latest:
            groups.setdefault(group, {})[status] = count
        return {"reports": reports, "latest_by_group": groups}

    # -- groups -------------------------------------------------------------------

    async def list_groups(self, _: Request) -> dict[str, Any]:
        with self._lock:
            rows = self._db.execute(
                "SELECT i_group, name, is_custom FROM espf_groups"
                " WHERE obsolete = 0 ORDER BY i_group"
            ).fetchall()
        return {
            "group_list": [
                {"i_group": str(i), "name": name, "is_custom": bool(custom)}
                for i, name, custom in rows
            ]
        }

    async def create_group(self, request: Request) -> dict[str, Any]:
        form = await request.form()
        name = form.get("name")
        if not isinstance(name, str) or not name.strip():
            raise EspfError(400, "name is required")
        if len(name) > MAX_GROUP_NAME:
            raise EspfError(400, f"name must be at most {MAX_GROUP_NAME} characters")
        with self._lock:
            existing = self._db.execute(
                "SELECT i_group, obsolete FROM espf_groups WHERE name = ?", (name,)
            ).fetchone()
            if existing is not None and not existing[1]:
                raise EspfError(409, f"group {name!r} already exists")
            if existing is not None:
                self._db.execute("UPDATE espf_groups SET obsolete = 0 WHERE name = ?", (name,))
                i_group = existing[0]
            else:
                top = self._db.execute("SELECT MAX(i_group) FROM espf_groups").fetchone()[0]
                i_group = max(FIRST_CUSTOM_GROUP, (top or 0) + 1)
                self._db.execute(
                    "INSERT INTO espf_groups (i_group, name, is_custom) VALUES (?, ?, 1)",
                    (i_group, name),
                )
        return {"group": {"i_group": str(i_group), "name": name}}

    async def delete_group(self, request: Request) -> dict[str, Any]:
        name = request.path_params["name"]
        with self._lock:
            row = self._db.execute(
                "SELECT is_custom FROM espf_groups WHERE name = ? AND obsolete = 0", (name,)
            ).fetchone()
            if row is None:
                raise EspfError(404, f"no group {name!r}")
            if not row[0]:
                raise EspfError(
                    400, f"group {name!r} is predefined; only custom groups can be deleted"
                )
            self._db.execute("UPDATE espf_groups SET obsolete = 1 WHERE name = ?", (name,))
        return {"success": 1}

    # -- scheduled events ---------------------------------------------------------

    async def create_event(self, request: Request) -> dict[str, Any]:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise EspfError(400, "the body must be JSON") from None
        if not isinstance(body, dict):
            raise EspfError(400, "the body must be a JSON object")
        event_type = body.get("event_type")
        variables = body.get("variables", {})
        start_time = body.get("start_time")
        if not isinstance(event_type, str) or not event_type.strip():
            raise EspfError(400, "event_type is required")
        if not isinstance(variables, dict):
            raise EspfError(400, "variables must be an object")
        try:
            start = datetime.strptime(str(start_time), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            raise EspfError(400, "start_time must be 'YYYY-MM-DD HH:MM:SS' (UTC)") from None
        i_event = self._next_i_event()
        with self._lock:
            self._db.execute(
                "INSERT INTO scheduled_events (i_event, event_type, variables, start_time)"
                " VALUES (?, ?, ?, ?)",
                (i_event, event_type.strip(), orjson.dumps(variables).decode(), start.isoformat()),
            )
        return {"i_event": i_event}

    def due_events(self, now: datetime) -> list[tuple[int, str, dict[str, Any]]]:
        """Scheduled events whose start time has come and that were not emitted yet."""
        with self._lock:
            rows = self._db.execute(
                "SELECT i_event, event_type, variables FROM scheduled_events"
                " WHERE emitted = 0 AND start_time <= ? ORDER BY start_time, i_event",
                (now.isoformat(),),
            ).fetchall()
        return [(i, t, orjson.loads(v)) for i, t, v in rows]

    def mark_emitted(self, i_event: int) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE scheduled_events SET emitted = 1 WHERE i_event = ?", (i_event,)
            )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
