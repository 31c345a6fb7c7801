"""Contract tests: the RADIUS connector's tables against FreeRADIUS's real SQL schema.

The connector writes radcheck, radreply and radusergroup, and with `create_tables: true`
creates them itself. Both must match the schema.sql that the installed FreeRADIUS ships
(Debian's freeradius, mods-config/sql/main/<dialect>/schema.sql), loaded into a real SQLite
file and a real PostgreSQL database: the same columns, nullability, defaults and (where the
schema has one) length; and FreeRADIUS must authorize from tables the connector created.

MySQL's schema is not loaded: OpenNSPS has no MySQL driver among its dependencies, so a
MySQL database is not a supported `database` URL for this connector.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, Integer, String, create_engine, inspect

from opennsps.connector import Event, Rejected
from opennsps.connectors.radius import RadiusConnector
from opennsps.connectors.radius.tables import TABLES
from tests.connectors.freeradius import RADDB, freeradius_server, require_freeradius

pytestmark = [
    pytest.mark.slow,
    # SQLite's schema.sql declares `int(11)`, which SQLAlchemy reflects as a plain INTEGER.
    pytest.mark.filterwarnings("ignore:Could not instantiate type:sqlalchemy.exc.SAWarning"),
]
MAIN = RADDB / "mods-config" / "sql" / "main"


def freeradius_version() -> str:
    done = subprocess.run(["freeradius", "-v"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.stdout else "unknown"


def loaded_sqlite(path: Path) -> Engine:
    require_freeradius()
    engine = create_engine(f"sqlite:///{path}")
    raw = engine.raw_connection()
    try:
        raw.driver_connection.executescript((MAIN / "sqlite" / "schema.sql").read_text())  # type: ignore[union-attr]
    finally:
        raw.close()
    return engine


def loaded_postgres(url: str) -> Engine:
    require_freeradius()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute((MAIN / "postgresql" / "schema.sql").read_text().encode())
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def default_text(value: Any) -> str | None:
    """A server default as text: quotes, casts and parentheses of each dialect left out."""
    if value is None:
        return None
    text = str(getattr(value, "arg", value)).split("::")[0]
    return text.strip("()").strip("'")


def columns(engine: Engine, table: str) -> dict[str, dict[str, Any]]:
    return {column["name"].lower(): column for column in inspect(engine).get_columns(table)}


def compare(engine: Engine) -> list[str]:
    """Every way the connector's tables differ from FreeRADIUS's schema in this database."""
    found = []
    for table in TABLES:
        real = columns(engine, table.name)
        if set(real) != {c.name for c in table.columns}:
            found.append(f"{table.name}: columns {sorted(real)} vs {sorted(table.columns.keys())}")
            continue
        for ours in table.columns:
            theirs = real[ours.name]
            if ours.primary_key:
                continue
            if theirs["nullable"] != ours.nullable:
                found.append(f"{table.name}.{ours.name}: nullable {theirs['nullable']}")
            if isinstance(ours.type, Integer) != isinstance(theirs["type"], Integer):
                found.append(f"{table.name}.{ours.name}: type {theirs['type']}")
            length = getattr(theirs["type"], "length", None)
            if isinstance(ours.type, String) and length not in (None, ours.type.length):
                found.append(f"{table.name}.{ours.name}: length {length}, ours {ours.type.length}")
            ours_default = default_text(ours.server_default)
            theirs_default = default_text(theirs["default"])
            if table.name == "radusergroup" and ours.name == "priority":
                continue  # 1 in SQLite's and MySQL's schema, 0 in PostgreSQL's: ours is 1
            if ours_default != theirs_default:
                found.append(
                    f"{table.name}.{ours.name}: default {theirs_default!r}, ours {ours_default!r}"
                )
    return found


def test_the_tables_match_freeradius_sqlite_schema(tmp_path: Path) -> None:
    engine = loaded_sqlite(tmp_path / "radius.db")
    assert compare(engine) == [], freeradius_version()


@pytest.mark.postgres
def test_the_tables_match_freeradius_postgresql_schema(postgres_url: str) -> None:
    engine = loaded_postgres(postgres_url)
    try:
        assert compare(engine) == [], freeradius_version()
    finally:
        engine.dispose()


def event(username: str, password: str = "s3cret", **pb: Any) -> Event:
    return Event.model_validate(
        {
            "event_id": "ev-1",
            "data": {"event_type": "Subscriber/Updated", "variables": {"i_account": 1}},
            "pb_data": {
                "account_info": {
                    "i_account": 1,
                    "id": username,
                    "bill_status": "open",
                    "blocked": False,
                    "h323_password": password,
                },
                "product_info": {"name": "payg"},
                **pb,
            },
        }
    )


def handled(connector: RadiusConnector, body: Event) -> dict[str, Any]:
    async def once() -> dict[str, Any]:
        return await connector.handle(body, connector.context(None, None))

    return asyncio.run(once())


def test_freeradius_authorizes_from_tables_the_connector_created(tmp_path: Path) -> None:
    database = tmp_path / "radius.db"
    connector = RadiusConnector(
        {
            "database": f"sqlite:///{database}",
            "create_tables": True,
            "reply": {"Framed-IP-Address": "account_info.ip"},
        }
    )
    try:
        user = event("420700000042@msisdn")
        user.pb_data["account_info"]["ip"] = "10.1.2.3"
        assert handled(connector, user)["radius"] == "created"
    finally:
        asyncio.run(connector.close())
    # FreeRADIUS's schema.sql adds the tables the connector does not own (IF NOT EXISTS
    # keeps the connector's own).
    loaded_sqlite(database).dispose()
    with freeradius_server(database, tmp_path / "freeradius") as radius:
        accepted = radius.authenticate("420700000042@msisdn", "s3cret")
        refused = radius.authenticate("420700000042@msisdn", "wrong")
    assert accepted.code == "Accept"
    assert accepted.attributes.get("Framed-IP-Address") == "10.1.2.3"
    assert refused.code == "Reject"


def test_a_value_longer_than_freeradius_schema_allows_is_rejected_by_name(tmp_path: Path) -> None:
    connector = RadiusConnector(
        {"database": f"sqlite:///{tmp_path / 'r.db'}", "create_tables": True}
    )
    try:
        with pytest.raises(Rejected, match=r"radcheck\.username takes at most 64 characters"):
            handled(connector, event("x" * 65 + "@msisdn"))
        with pytest.raises(Rejected, match=r"value of Cleartext-Password .* has 254$"):
            handled(connector, event("short@msisdn", password="p" * 254))
    finally:
        asyncio.run(connector.close())
