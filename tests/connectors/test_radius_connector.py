"""The RADIUS connector end to end: sandbox PortaBilling → OpenNSPS → RADIUS connector →
FreeRADIUS's SQL tables → a real FreeRADIUS answering radclient on 127.0.0.1, through an
account's whole life, every delivery repeated; then reconciliation finds injected drift
and --fix repairs it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from opennsps.cli import app as cli
from opennsps.config import Settings
from tests.connectors.freeradius import freeradius_server, radius_database
from tests.connectors.test_hss_connector import (
    non_delivered_attempts,
    portabilling,
    replay_account,
    settled,
    step,
)
from tests.pipeline.harness import (
    FAST_RETRY,
    Gateway,
    gateway,
    gateway_config,
    sandbox_server,
    wait_for,
    wired,
)

GROUP_REPLIES = {
    "payg": [("Session-Timeout", ":=", "3600")],
    "unlimited": [("Session-Timeout", ":=", "86400")],
    "basic": [("Session-Timeout", ":=", "600")],
}
REFUSED = "Access refused: the account is blocked or not active"
ACCOUNTS = 200  # tests/conftest.py's dataset


def radius_handler(database: Path) -> dict[str, Any]:
    return {
        "id": "radius",
        "name": "FreeRADIUS",
        "events": ["Subscriber/*"],
        "type": "python",
        "python": {
            "entry_point": "opennsps.connectors.radius:RadiusConnector",
            "options": {
                "database": f"sqlite:///{database}",
                "groups": {"Pay as you go": "payg", "Unlimited Talk 5GB": "unlimited"},
                "default_group": "basic",
                "reply": {"Filter-Id": "access_policy.eps_profile"},
            },
            "timeout": 10,
        },
        "service_password": True,
        "retry": FAST_RETRY,
        # No status_group: the connector's own (Netaccess) is used.
    }


def account_rows(database: Path, username: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as db:
        return sorted(
            [
                *db.execute(
                    "SELECT 'check', attribute, op, value FROM radcheck WHERE username = ?",
                    (username,),
                ),
                *db.execute(
                    "SELECT 'reply', attribute, op, value FROM radreply WHERE username = ?",
                    (username,),
                ),
                *db.execute(
                    "SELECT 'group', groupname, priority, '' FROM radusergroup WHERE username = ?",
                    (username,),
                ),
            ]
        )


def test_an_account_lifecycle_is_accepted_refused_and_forgotten_by_freeradius(
    store_url: str, dataset_file: Path, tmp_path: Path
) -> None:
    database = radius_database(tmp_path / "radius.db", GROUP_REPLIES)
    with (
        freeradius_server(database, tmp_path / "raddb") as radius,
        wired(store_url, dataset_file, lambda _: [radius_handler(database)]) as (sandbox, gw, _),
    ):
        created = sandbox.post("/sandbox/accounts")
        i_account = created["events"][0]["variables"]["i_account"]
        account = f"/sandbox/accounts/{i_account}"
        wait_for(lambda: settled(gw), what="the creation delivered")
        info = portabilling(sandbox, "Account/get_account_info", i_account)["account_info"]
        username, password = str(info["id"]), str(info["h323_password"])

        def repeated(check: Any) -> None:
            """Ask FreeRADIUS, replay every event of the account so far, ask again."""
            before = account_rows(database, username)
            check()
            assert replay_account(gw, i_account) >= 1
            assert account_rows(database, username) == before
            check()
            assert non_delivered_attempts(gw) == []

        def accepted(secret: str, session_timeout: str, profile: str = "eps-premium") -> None:
            answer = radius.authenticate(username, secret)
            assert answer.code == "Accept", answer
            assert answer.attributes["Session-Timeout"] == session_timeout
            assert answer.attributes["Filter-Id"] == profile
            assert radius.authenticate(username, secret + "-wrong").code == "Reject"

        def refused() -> None:
            answer = radius.authenticate(username, password)
            assert answer.code == "Reject"
            assert answer.attributes.get("Reply-Message") == REFUSED

        repeated(lambda: accepted(password, "3600", "eps-std"))

        # Unlimited Talk 5GB brings its access policy (LTE premium): a new Filter-Id
        step(sandbox, gw, "POST", f"{account}/product", {"i_product": 3776})
        repeated(lambda: accepted(password, "86400"))

        step(sandbox, gw, "POST", f"{account}/block")
        repeated(refused)
        step(sandbox, gw, "POST", f"{account}/unblock")
        repeated(lambda: accepted(password, "86400"))

        step(sandbox, gw, "POST", f"{account}/bill-status", {"bill_status": "S"})
        repeated(refused)
        step(sandbox, gw, "POST", f"{account}/bill-status", {"bill_status": "O"})

        new_password = "n3w-Secret"
        step(sandbox, gw, "POST", f"{account}/password", {"password": new_password})
        repeated(lambda: accepted(new_password, "86400"))
        assert radius.authenticate(username, password).code == "Reject"

        step(sandbox, gw, "DELETE", account)

        def unknown() -> None:
            answer = radius.authenticate(username, new_password)
            assert answer.code == "Reject"
            assert "Reply-Message" not in answer.attributes
            assert account_rows(database, username) == []

        repeated(unknown)
        assert (
            f"No Auth-Type found: rejecting the user via Post-Auth-Type = Reject): [{username}]"
            in (radius.log_text())
        )

        # Every outcome went back to PortaBilling under the connector's group, Netaccess.
        [latest] = sandbox.get(f"/sandbox/statuses/{i_account}")["latest"]
        assert (latest["group"], latest["status"], latest["error"]) == ("Netaccess", "OK", None)
        # The service password reached the connector but never the execution log.
        assert_password_not_logged(gw, [password, new_password])


def assert_password_not_logged(gw: Gateway, passwords: list[str]) -> None:
    with gw.api() as api:
        attempts = api.get("/attempts", params={"limit": 500}).json()["items"]
        events = api.get("/events", params={"limit": 500}).json()["items"]
        details = [api.get(f"/events/{e['event_id']}").json() for e in events]
    logged = str(attempts) + str(details)
    assert "h323_password" in logged  # the field is there, masked
    assert all(secret not in logged for secret in passwords)


def test_without_service_password_the_handler_is_told_what_to_set(
    dataset_file: Path, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    database = radius_database(tmp_path / "radius.db", GROUP_REPLIES)
    handler = {**radius_handler(database), "service_password": False}
    with wired(store_url, dataset_file, lambda _: [handler]) as (sandbox, gw, _):
        sandbox.post("/sandbox/accounts")
        wait_for(lambda: settled(gw), what="the creation finished")
        with gw.api() as api:
            [attempt] = api.get("/attempts").json()["items"]
        assert attempt["outcome"] == "rejected"
        assert "set service_password: true on this handler" in attempt["error"]
        assert "h323_password" not in str(attempt["pb_data"])


def reconcile(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["reconcile", "radius", "-c", str(config), *args])
    return result.exit_code, result.output


def test_reconcile_loads_freeradius_finds_drift_and_repairs_it(
    dataset_file: Path, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    database = radius_database(tmp_path / "radius.db", GROUP_REPLIES)
    with (
        freeradius_server(database, tmp_path / "raddb") as radius,
        sandbox_server(dataset_file) as sandbox,
    ):
        data = gateway_config(store_url, sandbox.url, [radius_handler(database)])
        config = tmp_path / "opennsps.yaml"
        config.write_text(yaml.safe_dump(data))
        with gateway(Settings.model_validate(data)) as gw:
            code, output = reconcile(config, "--fix")
            assert code == 3 and f"enqueued {ACCOUNTS} repair event(s)" in output
            assert "is missing from FreeRADIUS" in output
            wait_for(lambda: settled(gw), timeout=60, what="the initial load delivered")
            code, output = reconcile(config)
            assert code == 0, output
            assert f"{ACCOUNTS} agree, 0 drift" in output
            users = _users(sandbox, [100001, 100002, 100003])
            for username, password in users:
                assert radius.authenticate(username, password).code in {"Accept", "Reject"}
            accepted = [u for u in users if radius.authenticate(*u).code == "Accept"]
            assert accepted, "the dataset's first accounts include active ones"

            # Drift behind OpenNSPS's back: a lost user, a changed password, a user nobody
            # provisioned.
            (lost, _), (changed, _) = users[0], users[1]
            with sqlite3.connect(database) as db:
                db.execute("DELETE FROM radcheck WHERE username = ?", (lost,))
                db.execute(
                    "UPDATE radcheck SET value = 'guess' WHERE username = ? "
                    "AND attribute = 'Cleartext-Password'",
                    (changed,),
                )
                db.execute(
                    "INSERT INTO radcheck (username, attribute, op, value) "
                    "VALUES ('intruder', 'Cleartext-Password', ':=', 'x')"
                )
            code, output = reconcile(config)
            assert code == 3
            assert "2 drift" in output
            assert f"radcheck of {lost!r}: FreeRADIUS has nothing" in output
            assert (
                f"radcheck of {changed!r}: FreeRADIUS has [Cleartext-Password := ******]" in output
            )
            assert "guess" not in output and users[1][1] not in output
            assert "belongs to no account: RADIUS user 'intruder'" in output

            code, output = reconcile(config, "--fix")
            assert "enqueued 2 repair event(s)" in output
            wait_for(lambda: settled(gw), timeout=60, what="repairs delivered")
            with sqlite3.connect(database) as db:
                db.execute("DELETE FROM radcheck WHERE username = 'intruder'")
            code, output = reconcile(config)
            assert code == 0, output
            for user in accepted:
                assert radius.authenticate(*user).code == "Accept"


def _users(sandbox: Any, accounts: list[int]) -> list[tuple[str, str]]:
    found = []
    for i_account in accounts:
        info = portabilling(sandbox, "Account/get_account_info", i_account)["account_info"]
        found.append((str(info["id"]), str(info["h323_password"])))
    return found
