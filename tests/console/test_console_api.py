"""The console's server side over real HTTP: users and sessions (CSRF, roles, expiry), and
the API the console reads — the execution log's search and exact payloads, time series,
dead letters with counted replay, test-sends — on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from opennsps.cli import app as cli
from opennsps.config import Settings, StoreConfig
from opennsps.console.sessions import SessionRefused, Sessions
from opennsps.console.throttle import LoginThrottle
from opennsps.console.users import UserError, UserStore
from opennsps.store.event_store import EventStore
from opennsps.store.handlers import HandlerStore
from tests.connectors.test_hss_connector import portabilling
from tests.pipeline.harness import (
    FAST_RETRY,
    VIEWER_TOKEN,
    Answer,
    Gateway,
    gateway,
    gateway_config,
    http_handler,
    wait_for,
    wired,
)
from tests.support import GatewayProcess

# Retried once or more (how often depends on the machine's pace), then dead after a second.
GIVE_UP_FAST = {**FAST_RETRY, "fast_attempts": 1, "give_up_after_seconds": 1.0}


def login(gw: Gateway, name: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=gw.url, timeout=10)
    answer = client.post("/console/login", json={"username": name, "password": password})
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf"]
    return client


def users_of(gw: Gateway) -> UserStore:
    store = EventStore(gw.settings.store)
    return UserStore(store.engine)


def test_sessions_need_csrf_follow_roles_and_end(tmp_path: Path) -> None:
    data = gateway_config(f"sqlite:///{tmp_path / 'store.db'}", "http://127.0.0.1:9", [])
    data["console"] = {"session_hours": 2 / 3600}  # two seconds
    with gateway(Settings.model_validate(data)) as gw:
        users = users_of(gw)
        users.add("ops", "operator-pass-1", "operator")
        users.add("eve", "viewer-pass-12", "viewer")
        with pytest.raises(UserError, match="exists already"):
            users.add("ops", "another-pass-1", "admin")
        with pytest.raises(UserError, match="at least 10 characters"):
            users.add("short", "short", "viewer")

        page = httpx.get(f"{gw.url}/console/", timeout=10)
        assert page.status_code == 200 and "OpenNSPS console" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert httpx.get(f"{gw.url}/console/static/console.js", timeout=10).status_code == 200

        wrong = httpx.post(
            f"{gw.url}/console/login", json={"username": "ops", "password": "nope"}, timeout=10
        )
        assert wrong.status_code == 401 and wrong.json()["message"] == (
            "wrong user name or password"
        )
        assert "set-cookie" not in wrong.headers

        ops = login(gw, "ops", "operator-pass-1")
        cookie = ops.cookies.get("opennsps_session")
        assert cookie is not None
        again = ops.post("/console/login", json={"username": "ops", "password": "operator-pass-1"})
        set_cookie = again.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        ops.headers["X-CSRF-Token"] = again.json()["csrf"]  # a new session, a new token
        cookie = ops.cookies.get("opennsps_session")
        assert ops.get("/console/session").json()["role"] == "operator"
        # A change without the session's CSRF header is refused; with it, it is done.
        forged = httpx.post(
            f"{gw.url}/api/v1/pause", cookies={"opennsps_session": cookie}, timeout=10
        )
        assert forged.status_code == 401 and "x-csrf-token" in forged.json()["message"]
        assert ops.post("/api/v1/pause").json() == {"paused": True}
        assert ops.post("/api/v1/resume").json() == {"paused": False}
        # Roles: the operator cannot create handlers; a viewer cannot pause.
        refused = ops.post("/api/v1/handlers", json=http_handler("http://127.0.0.1:9/e", "x"))
        assert refused.status_code == 403 and "needs the admin role" in refused.json()["message"]
        eve = login(gw, "eve", "viewer-pass-12")
        assert eve.get("/api/v1/stats").status_code == 200
        assert eve.post("/api/v1/pause").status_code == 403
        # A role change ends the user's sessions: they log in again, with the new role.
        users.set_role("eve", "operator")
        ended = eve.get("/api/v1/stats")
        assert ended.status_code == 401 and "has ended" in ended.json()["message"]
        eve = login(gw, "eve", "viewer-pass-12")
        assert eve.post("/api/v1/resume").status_code == 200
        users.remove("eve")
        assert eve.get("/api/v1/stats").status_code == 401
        # Sessions end.
        time.sleep(2.5)
        # (the browser drops the cookie at its max-age; the server refuses it anyway)
        expired = httpx.get(
            f"{gw.url}/api/v1/stats", cookies={"opennsps_session": cookie}, timeout=10
        )
        assert expired.status_code == 401 and "expired" in expired.json()["message"]
        assert ops.post("/console/logout").status_code == 200


def test_a_session_ends_for_every_copy_of_its_cookie_in_every_process(store_url: str) -> None:
    """Sessions live in the store: logout, a password change and an admin end them at
    once, for a copy of the cookie taken before and in another process on the database."""
    data = gateway_config(store_url, "http://127.0.0.1:9", [])
    data["console"] = {"idle_minutes": 60}
    settings = Settings.model_validate(data)
    with gateway(settings) as first, gateway(settings) as second:
        users = users_of(first)
        users.add("ops", "operator-pass-1", "operator")
        ops = login(first, "ops", "operator-pass-1")
        csrf = ops.headers["X-CSRF-Token"]
        copy = {"opennsps_session": ops.cookies["opennsps_session"]}

        def works(gw: Gateway) -> bool:
            with httpx.Client(base_url=gw.url, cookies=copy, timeout=10) as stolen:
                reads = stolen.get("/api/v1/stats").status_code == 200
                session = stolen.get("/console/session").status_code == 200
                paused = stolen.post("/api/v1/pause", headers={"X-CSRF-Token": csrf})
                return reads and session and paused.status_code == 200

        assert works(first) and works(second)  # the other process knows the session
        assert ops.post("/console/logout").status_code == 200
        assert not works(first) and not works(second)
        refused = httpx.get(f"{second.url}/api/v1/stats", cookies=copy, timeout=10)
        assert refused.status_code == 401 and "log in again" in refused.json()["message"]

        # A password change ends every session of the user; an admin lists and ends them.
        ops = login(first, "ops", "operator-pass-1")
        users.set_password("ops", "operator-pass-2")
        assert ops.get("/api/v1/stats").status_code == 401
        users.add("root", "admin-pass-123", "admin")
        admin = login(second, "root", "admin-pass-123")
        ops = login(first, "ops", "operator-pass-2")
        other = login(second, "ops", "operator-pass-2")
        listed = admin.get("/api/v1/users/ops/sessions").json()["items"]
        assert len(listed) == 2 and all("token" not in str(item).lower() for item in listed)
        assert {"id", "client", "created_at", "last_seen_at", "expires_at"} <= set(listed[0])
        one = admin.delete(f"/api/v1/users/ops/sessions/{listed[0]['id']}")
        assert one.json() == {"ended": 1}
        assert [ops.get("/api/v1/stats").status_code, other.get("/api/v1/stats").status_code] in (
            [401, 200],
            [200, 401],
        )
        assert admin.delete("/api/v1/users/ops/sessions").json() == {"ended": 1}
        assert ops.get("/api/v1/stats").status_code == other.get("/api/v1/stats").status_code == 401
        assert admin.get("/api/v1/users/nobody/sessions").status_code == 404
        assert admin.delete("/api/v1/users/ops/sessions/nope").status_code == 404
        viewer = httpx.get(
            f"{first.url}/api/v1/users/ops/sessions",
            headers={"Authorization": f"Bearer {VIEWER_TOKEN}"},
            timeout=10,
        )
        assert viewer.status_code == 403


def test_an_unused_session_ends_after_the_idle_timeout(tmp_path: Path) -> None:
    data = gateway_config(f"sqlite:///{tmp_path / 'store.db'}", "http://127.0.0.1:9", [])
    data["console"] = {"idle_minutes": 1.5 / 60}  # one and a half seconds
    with gateway(Settings.model_validate(data)) as gw:
        users_of(gw).add("ops", "operator-pass-1", "operator")
        ops = login(gw, "ops", "operator-pass-1")
        users = users_of(gw)
        sessions = Sessions(users.engine, users, lifetime_seconds=3600, idle_seconds=1.5)
        # watched without being used (a request would use it)
        wait_for(lambda: sessions.list_for("ops") == [], what="the session idle")
        unused = ops.get("/api/v1/stats")
        assert unused.status_code == 401
        assert "unused" in unused.json()["message"]


def test_sessions_live_while_used_and_end_idle_or_at_their_expiry(tmp_path: Path) -> None:
    """The same rules with the store's clock in hand (no waiting)."""
    store = EventStore(StoreConfig(url=f"sqlite:///{tmp_path / 's.db'}"))
    store.upgrade()
    users = UserStore(store.engine)
    ann = users.add("ann", "admin-pass-123", "admin")
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    sessions = Sessions(
        users.engine, users, lifetime_seconds=3600, idle_seconds=600, clock=lambda: now[0]
    )
    used, _ = sessions.issue(ann, "a")
    idle, _ = sessions.issue(ann, "b")
    for _ in range(12):  # used every 5 minutes for an hour, less a minute
        now[0] += timedelta(minutes=5) - timedelta(seconds=5)
        assert sessions.read(used).caller.name == "ann"
    with pytest.raises(SessionRefused, match="unused"):
        sessions.read(idle)
    assert [info.client for info in sessions.list_for("ann")] == ["a"]
    now[0] += timedelta(minutes=2)  # past the hour since login
    with pytest.raises(SessionRefused, match="expired"):
        sessions.read(used)
    assert sessions.list_for("ann") == []


def test_users_command(tmp_path: Path) -> None:
    config = tmp_path / "opennsps.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": f"sqlite:///{tmp_path / 's.db'}"}}))
    runner = CliRunner()

    def run(*args: str, password: str | None = None) -> tuple[int, str]:
        result = runner.invoke(cli, ["users", *args, "-c", str(config)], input=password)
        return result.exit_code, result.output

    assert run("add", "ann", "--role", "admin", "--password-stdin", password="admin-pass-1\n") == (
        0,
        "user ann added (admin)\n",
    )
    code, output = run("add", "ann", "--password-stdin", password="admin-pass-2\n")
    assert code == 1 and "exists already" in output
    code, output = run("add", "bob", "--role", "root", "--password-stdin", password="bob-pass-12\n")
    assert code == 1 and "role must be one of viewer, operator, admin" in output
    code, output = run("add", "bob", password="bob-pass-12\nbob-pass-12\n")  # prompted twice
    assert code == 0, output
    assert run("set-role", "bob", "--role", "operator")[0] == 0
    code, output = run("list")
    assert "ann" in output and "admin" in output and "operator" in output
    assert "pass" not in output
    assert run("set-password", "bob", "--password-stdin", password="bob-new-pass-1\n")[0] == 0
    settings = Settings.model_validate(yaml.safe_load(config.read_text()))
    users = UserStore(EventStore(settings.store).engine)
    sessions = Sessions(users.engine, users, lifetime_seconds=3600, idle_seconds=600)
    bob = users.get("bob")
    assert bob is not None
    first, _ = sessions.issue(bob, "127.0.0.1 curl/8")
    sessions.issue(bob, "127.0.0.1 firefox [bold]\x00x")  # a user agent is caller text
    code, output = run("sessions", "bob")
    assert code == 0 and "curl/8" in output and "firefox [bold]x" in output
    assert first not in output
    code, output = run("end-sessions", "bob", "--session", "nope")
    assert code == 1 and "no open session nope" in output
    assert run("end-sessions", "bob") == (0, "2 session(s) of bob ended\n")
    with pytest.raises(SessionRefused):
        sessions.read(first)
    assert run("remove", "bob")[0] == 0
    code, output = run("remove", "bob")
    assert code == 1 and "no user 'bob'" in output


def test_the_execution_log_finds_attempts_by_subject_and_shows_exact_payloads(
    store_url: str, dataset_file: Path
) -> None:
    def decide(body: dict[str, Any]) -> Answer:
        if body["handler_id"] == "crm" and body["data"]["variables"].get("i_account") == 100002:
            return 503, {}, b'{"message": "down"}'
        return 200, {}, b"{}"

    handlers = lambda server: [  # noqa: E731
        http_handler(server.url, "crm", events=["Subscriber/*"], retry=GIVE_UP_FAST),
        {**http_handler(server.url, "audit", events=["*"]), "type": "http"},
    ]
    with wired(store_url, dataset_file, handlers) as (sandbox, gw, server):
        server.decide = decide
        for account in (100001, 100002):
            sandbox.post(f"/sandbox/accounts/{account}/topup", {"amount": 1})
        sandbox.emit("Custom/NextMonth")
        with gw.api() as api:
            wait_for(
                lambda: api.get("/stats").json()["deliveries_by_state"].get("dead") == 1,
                what="account 100002's crm delivery dead",
            )
            card = portabilling(sandbox, "SIMCard/get_card_list", 100001)["card_list"][0]
            by_imsi = api.get("/attempts", params={"imsi": card["imsi"]}).json()["items"]
            assert {(a["handler_id"], a["outcome"]) for a in by_imsi} == {
                ("crm", "delivered"),
                ("audit", "delivered"),
            }
            assert all(a["i_account"] == 100001 for a in by_imsi)
            by_msisdn = api.get("/attempts", params={"msisdn": "+" + card["msisdn"]}).json()
            assert {a["id"] for a in by_msisdn["items"]} == {a["id"] for a in by_imsi}
            failed = api.get("/attempts", params={"i_account": 100002, "handler_id": "crm"}).json()[
                "items"
            ]
            outcomes = [a["outcome"] for a in failed]  # newest first
            # (a machine slow enough to take the whole second at once gives no retry)
            assert outcomes[0] == "dead" and set(outcomes[1:]) <= {"retry"}
            custom = api.get("/attempts", params={"event_type": "Custom/*"}).json()["items"]
            assert [a["handler_id"] for a in custom] == ["audit"]
            assert api.get("/attempts", params={"handler_type": "script"}).json()["items"] == []
            http_attempts = api.get("/attempts", params={"handler_type": "http"}).json()["items"]
            assert len(http_attempts) == 4 + len(failed)

            # The payload shown is byte for byte what the connector received.
            for attempt in by_imsi + failed:
                detail = api.get(f"/attempts/{attempt['id']}").json()
                received = [
                    b
                    for b in server.bodies()
                    if b["event_id"] == detail["event_id"]
                    and b["handler_id"] == detail["handler_id"]
                    and b["updated_at"] == detail["payload"]["updated_at"]
                ]
                assert received == [detail["payload"]]
            assert api.get("/attempts/999999").status_code == 404

            # Time series: this minute holds what just happened.
            points = api.get("/stats/series", params={"window": "hour"}).json()["points"]
            assert len(points) == 61
            assert sum(p["received"] for p in points) == 3
            assert sum(p["delivered"] for p in points) == 4
            assert sum(p["errors"] for p in points) == len(failed)
            day = api.get("/stats/series", params={"window": "day"}).json()
            assert day["bucket_seconds"] == 3600 and sum(p["received"] for p in day["points"]) == 3

            # Dead letters: listed with the reason, counted, replayed (only the dead one).
            dead = api.get("/dead", params={"handler_id": "crm"}).json()
            assert dead["total"] == 1 and "gave up" in dead["items"][0]["last_error"]
            assert api.get("/dead", params={"event_type": "Custom/*"}).json()["total"] == 0
            counted_dead = api.post("/dead/replay", json={"dry_run": True}).json()
            assert counted_dead["matching"] == 1
            assert [x["handler_id"] for x in counted_dead["sample"]] == ["crm"]
            for path in ("/dead/replay", "/replay"):  # a limit is a JSON integer, not `true`
                assert api.post(path, json={"limit": True, "dry_run": True}).status_code == 422
            assert api.get("/stats").json()["deliveries_by_state"]["dead"] == 1  # unchanged
            server.decide = None
            assert api.post("/dead/replay", json={"handler_id": "crm"}).json() == {"replayed": 1}
            wait_for(
                lambda: api.get("/stats").json()["deliveries_by_state"] == {"delivered": 5},
                what="the replayed dead letter delivered",
            )
            # Replay by event filter can be counted first too.
            counted = api.post("/replay", json={"i_account": 100001, "dry_run": True}).json()
            assert counted["matching"] == 1 and counted["sample"][0]["i_account"] == 100001
            assert api.get("/stats").json()["retrying_by_handler"] == {}
            health = api.get("/stats").json()["portabilling"]["default"]
            assert health["healthy"] is True and health["calls"] > 0


def test_a_test_send_is_checked_and_stored_nowhere(store_url: str, dataset_file: Path) -> None:
    with wired(store_url, dataset_file, lambda server: [http_handler(server.url, "crm")]) as (
        _,
        gw,
        server,
    ):
        with gw.api() as api:
            answer = api.post(
                "/handlers/crm/test",
                json={"event_type": "Subscriber/Updated", "variables": {"i_account": 100001}},
            ).json()
            assert answer["outcome"] == "delivered" and answer["status_code"] == 200
            assert server.bodies() == [answer["payload"]]
            assert answer["payload"]["pb_data"]["account_info"]["i_account"] == 100001
            assert api.get("/attempts").json()["items"] == []
            assert api.get("/events").json()["items"] == []
            unknown = api.post("/handlers/nope/test", json={})
            assert unknown.status_code == 404
            bad_source = api.post("/handlers/crm/test", json={"source": "elsewhere"})
            assert bad_source.status_code == 404
        viewer = httpx.post(
            f"{gw.url}/api/v1/handlers/crm/test",
            json={},
            headers={"Authorization": f"Bearer {VIEWER_TOKEN}"},
            timeout=10,
        )
        assert viewer.status_code == 403


def test_a_handler_saved_as_shown_keeps_its_secrets(tmp_path: Path) -> None:
    data = gateway_config(f"sqlite:///{tmp_path / 'store.db'}", "http://127.0.0.1:9", [])
    with gateway(Settings.model_validate(data)) as gw, gw.api() as api:
        http = http_handler("http://127.0.0.1:9/events", "crm")
        assert api.post("/handlers", json=http).status_code == 201
        python = {
            "id": "radius",
            "events": ["Subscriber/*"],
            "type": "python",
            "python": {
                # a plug-in of the operator's own: its options are free-form
                "entry_point": "tests.pipeline.plugin_connector:create",
                "options": {
                    "database": "postgresql+psycopg://radius:pa55@db/radius",
                    "provisioning_key": "k-123456",
                    "groups": {"Pay as you go": "payg"},
                },
            },
        }
        assert api.post("/handlers", json=python).status_code == 201
        # A built-in plug-in's options are checked when saved, and so is the entry point.
        radius = {
            **python,
            "id": "radius-builtin",
            "python": {
                "entry_point": "opennsps.connectors.radius:RadiusConnector",
                "options": python["python"]["options"],  # type: ignore[index]
            },
        }
        refused = api.post("/handlers", json=radius)
        assert refused.status_code == 422
        assert "provisioning_key: unknown key" in refused.json()["message"]
        missing = {**python, "id": "nowhere", "python": {"entry_point": "no.such.module:Thing"}}
        refused = api.post("/handlers", json=missing)
        assert refused.status_code == 422 and "cannot load no.such.module:Thing" in refused.text
        for handler_id in ("crm", "radius"):
            shown = api.get(f"/handlers/{handler_id}").json()
            assert "[redacted]" in str(shown)
            edited = {
                k: v
                for k, v in shown.items()
                if k not in {"paused", "managed_by", "created_at", "updated_at", "circuit_state"}
            }
            edited["name"] = "renamed"
            assert api.put(f"/handlers/{handler_id}", json=edited).status_code == 200
        store = EventStore(gw.settings.store)
        handlers = HandlerStore(store.engine)
        crm = handlers.get("crm").definition
        assert crm.name == "renamed" and crm.http is not None and crm.http.token is not None
        assert crm.http.token.get_secret_value() == http["http"]["token"]
        radius = handlers.get("radius").definition
        assert radius.python is not None
        assert radius.python.options == python["python"]["options"]  # type: ignore[index]
        # A new secret typed in replaces the old one.
        edited["python"]["options"]["provisioning_key"] = "k-new-7890"
        assert api.put("/handlers/radius", json=edited).status_code == 200
        options = handlers.get("radius").definition.python.options  # type: ignore[union-attr]
        assert options["provisioning_key"] == "k-new-7890"
        assert options["database"] == "postgresql+psycopg://radius:pa55@db/radius"


def attempt(url: str, name: str, password: str, client: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": client} if client else {}
    return httpx.post(
        f"{url}/console/login",
        json={"username": name, "password": password},
        headers=headers,
        timeout=10,
    )


def test_failed_logins_are_counted_per_user_by_every_process(store_url: str) -> None:
    settings = Settings.model_validate(gateway_config(store_url, "http://127.0.0.1:9", []))
    with gateway(settings) as first, gateway(settings) as second:
        users = users_of(first)
        users.add("ops", "operator-pass-1", "operator")
        users.add("ann", "another-pass-1", "viewer")
        # five failures spread over two processes: one allowance, not two
        tries = [attempt(gw.url, "ops", f"guess-{n}") for n, gw in enumerate([first, second] * 3)]
        assert [t.status_code for t in tries] == [401] * 5 + [429]
        for gw in (first, second):
            refused = attempt(gw.url, "ops", "operator-pass-1")  # even the right password
            assert refused.status_code == 429
            assert "too many failed logins" in refused.json()["message"]
            assert 290 <= int(refused.headers["retry-after"]) <= 301
        assert attempt(second.url, "OPS", "operator-pass-1").status_code == 429  # one key
        assert attempt(first.url, "ann", "another-pass-1").status_code == 200  # others are not
        # a name no store can hold (NUL) is refused as invalid, on both engines alike
        assert attempt(second.url, "a\x00b", "guess-guess").status_code == 422


@pytest.mark.slow
def test_behind_a_trusted_proxy_each_client_address_has_its_own_allowance(
    tmp_path: Path,
) -> None:
    """`opennsps serve` with server.trusted_proxies reads the client from X-Forwarded-For
    (the proxy here is the test on 127.0.0.1); without it, X-Forwarded-For is ignored."""
    for trusted in (["127.0.0.1/32"], []):
        data = gateway_config(f"sqlite:///{tmp_path / f's{len(trusted)}.db'}", "http://x:9", [])
        data["server"] = {"trusted_proxies": trusted}
        config = tmp_path / f"opennsps{len(trusted)}.yaml"
        config.write_text(yaml.safe_dump(data))
        process = GatewayProcess(config, tmp_path / f"gateway{len(trusted)}.log")
        try:
            # a password spray from one client: 25 user names, then that address waits
            sprayed = [
                attempt(process.url, f"user{n}", "guess-guess", "203.0.113.5") for n in range(26)
            ]
            assert [s.status_code for s in sprayed] == [401] * 25 + [429]
            other = attempt(process.url, "someone", "guess-guess", "198.51.100.7")
            # behind a trusted proxy another client is not held; otherwise all are one
            assert other.status_code == (401 if trusted else 429)
        finally:
            process.stop()


def test_the_login_throttle_forgets_after_its_window(tmp_path: Path) -> None:
    store = EventStore(StoreConfig(url=f"sqlite:///{tmp_path / 's.db'}"))
    store.upgrade()
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    throttle = LoginThrottle(store.engine, "user", max_failures=3, window=60, clock=lambda: now[0])
    others = LoginThrottle(store.engine, "address", max_failures=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.wait_seconds("u") == 0
        throttle.failed("u")
    assert throttle.wait_seconds("u") == 60
    assert others.wait_seconds("u") == 0  # a user name and an address are kept apart
    now[0] += timedelta(seconds=59)
    assert throttle.wait_seconds("u") == 1
    now[0] += timedelta(seconds=1.5)
    assert throttle.wait_seconds("u") == 0
    throttle.failed("u")
    throttle.succeeded("u")
    assert throttle.wait_seconds("u") == 0
