"""The RADIUS connector's convergence rules, driven with crafted enriched events against a
FreeRADIUS database made by FreeRADIUS's own schema.sql (SQLite) and against PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from opennsps.connector import Event, Rejected
from opennsps.connectors.radius import RadiusConnector
from opennsps.connectors.radius.tables import MissingTables
from tests.connectors.freeradius import radius_database

LOOP = asyncio.Runner()
GROUPS = {"Pay as you go": "payg", "Unlimited Talk 5GB": "unlimited"}


def enriched(
    i_account: int,
    *,
    username: str = "420700000001@msisdn",
    password: str | None = "s3cret",
    product: str = "Pay as you go",
    blocked: bool = False,
    bill_status: str = "open",
    gone: bool = False,
) -> dict[str, Any]:
    pb_data: dict[str, Any] = {}
    if not gone:
        account: dict[str, Any] = {
            "i_account": i_account,
            "id": username,
            "blocked": blocked,
            "bill_status": bill_status,
        }
        if password is not None:
            account["h323_password"] = password
        pb_data = {
            "account_info": account,
            "product_info": {"name": product},
            "access_policy_info": {
                "attributes": [{"group_name": "lte", "name": "eps_profile", "value": "eps-std"}]
            },
            "sim_info": {"imsi": "001010000000001"},
        }
    return {
        "event_id": f"ev-{i_account}",
        "data": {"event_type": "Subscriber/Updated", "variables": {"i_account": i_account}},
        "pb_data": pb_data,
    }


def run(connector: RadiusConnector, body: dict[str, Any], times: int = 2) -> list[Any]:
    """Handle the event `times` times (a repeated delivery) and return each answer."""

    async def go() -> list[Any]:
        return [
            await connector.handle(Event.model_validate(body), connector.context(None, None))
            for _ in range(times)
        ]

    return LOOP.run(go())


def rows(database: str) -> set[tuple[Any, ...]]:
    """Every row the connector may own, without ids."""
    engine = create_engine(database)
    with engine.connect() as connection:
        found = {
            ("check", *row)
            for row in connection.execute(
                text("SELECT username, attribute, op, value FROM radcheck")
            )
        }
        found |= {
            ("reply", *row)
            for row in connection.execute(
                text("SELECT username, attribute, op, value FROM radreply")
            )
        }
        found |= {
            ("group", *row)
            for row in connection.execute(
                text("SELECT username, groupname, priority FROM radusergroup")
            )
        }
    engine.dispose()
    return found


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{radius_database(tmp_path / 'radius.db', {})}"
    url: str = request.getfixturevalue("postgres_url")
    return url.replace("postgresql://", "postgresql+psycopg://")


def connector_for(database: str, **options: Any) -> RadiusConnector:
    create = not database.startswith("sqlite")  # PostgreSQL starts empty here
    return RadiusConnector(
        {
            "database": database,
            "create_tables": create,
            "groups": GROUPS,
            "reply": {"Filter-Id": "access_policy.eps_profile", "Class": "sim_info.imsi"},
            **options,
        }
    )


def test_an_account_converges_and_repeats_change_nothing(database: str) -> None:
    connector = connector_for(database)
    name = "420700000001@msisdn"
    active = {
        ("check", name, "Cleartext-Password", ":=", "s3cret"),
        ("reply", name, "Filter-Id", ":=", "eps-std"),
        ("reply", name, "Class", ":=", "001010000000001"),
        ("group", name, "payg", 1),
    }
    assert [a["radius"] for a in run(connector, enriched(1))] == ["created", "unchanged"]
    assert rows(database) == active

    # A new product moves the user to its group; a new password replaces the old one.
    run(connector, enriched(1, product="Unlimited Talk 5GB", password="n3w"))
    assert ("group", name, "unlimited", 1) in rows(database)
    assert ("check", name, "Cleartext-Password", ":=", "n3w") in rows(database)
    assert ("group", name, "payg", 1) not in rows(database)

    # Blocked, suspended or inactive: kept, but refused with a reason; no service attributes.
    for refused in (enriched(1, blocked=True), enriched(1, bill_status="suspended")):
        assert run(connector, refused)[1]["radius"] == "unchanged"
        assert rows(database) == {
            ("check", name, "Cleartext-Password", ":=", "s3cret"),
            ("check", name, "Auth-Type", ":=", "Reject"),
            (
                "reply",
                name,
                "Reply-Message",
                ":=",
                "Access refused: the account is blocked or not active",
            ),
            ("group", name, "payg", 1),
        }
    run(connector, enriched(1))
    assert rows(database) == active

    # Terminated or deleted: no rows at all.
    assert run(connector, enriched(1, bill_status="terminated"))[0]["removed"] == name
    assert rows(database) == set()
    run(connector, enriched(1))
    assert run(connector, enriched(1, gone=True))[0] == {"radius": "absent", "removed": name}
    assert rows(database) == set()
    LOOP.run(connector.close())


def test_a_new_user_name_removes_the_old_one_unless_another_account_has_it(database: str) -> None:
    connector = connector_for(database)
    run(connector, enriched(1, username="old@msisdn"))
    run(connector, enriched(1, username="new@msisdn"))
    assert {row[1] for row in rows(database)} == {"new@msisdn"}
    # Two accounts with one user name (PortaBilling renamed one, the other took its name):
    # the first one's deletion leaves the name to the second.
    run(connector, enriched(1, username="shared@msisdn"))
    run(connector, enriched(2, username="shared@msisdn"))
    run(connector, enriched(1, gone=True))
    assert {row[1] for row in rows(database)} == {"shared@msisdn"}
    LOOP.run(connector.close())


def test_what_cannot_be_provisioned_is_rejected_with_what_to_fix(database: str) -> None:
    connector = connector_for(database)
    with pytest.raises(Rejected, match="set service_password: true on this handler"):
        run(connector, enriched(1, password=None), times=1)
    with pytest.raises(Rejected, match="has no service password in PortaBilling"):
        run(connector, enriched(1, password=""), times=1)
    with pytest.raises(Rejected, match=r"product_info.name \('IoT Basic'\) has no RADIUS group"):
        run(connector, enriched(1, product="IoT Basic"), times=1)
    assert rows(database) == set()
    LOOP.run(connector.close())
    fallback = connector_for(database, default_group="basic")
    run(fallback, enriched(1, product="IoT Basic"), times=1)
    assert ("group", "420700000001@msisdn", "basic", 1) in rows(database)
    LOOP.run(fallback.close())


def test_missing_freeradius_tables_are_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(MissingTables, match=r"no radcheck, radreply, radusergroup.*schema\.sql"):
        RadiusConnector({"database": f"sqlite:///{empty}"})
    with pytest.raises(ValueError, match="not a pb_data path"):
        RadiusConnector({"database": f"sqlite:///{empty}", "username": "id"})


def test_database_credentials_are_masked_when_the_handler_is_shown() -> None:
    from opennsps.console.masking import masked_options

    shown = masked_options({"database": "postgresql+psycopg://radius:pa55@db/radius"})
    assert shown == {"database": "postgresql+psycopg://[redacted]@db/radius"}
