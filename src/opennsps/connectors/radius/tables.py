"""FreeRADIUS's SQL tables (rlm_sql's default schema): read and replace one user's rows.

Only the rows of the user names this connector provisions are touched; the operator's
group definitions (radgroupcheck, radgroupreply) are never written.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    inspect,
    select,
    union,
)

from opennsps.connector.errors import Rejected
from opennsps.connectors.radius.desired import PASSWORD_ATTRIBUTE, RadiusUser, Row, canonical

metadata = MetaData()


def _attribute_table(name: str, default_op: str) -> Table:
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("username", String(64), nullable=False, index=True, server_default=""),
        Column("attribute", String(64), nullable=False, server_default=""),
        Column("op", String(2), nullable=False, server_default=default_op),
        Column("value", String(253), nullable=False, server_default=""),
    )


# As FreeRADIUS's schema.sql declares them (tests/connectors/test_radius_schema_contract.py).
radcheck = _attribute_table("radcheck", "==")
radreply = _attribute_table("radreply", "=")
radusergroup = Table(
    "radusergroup",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, index=True, server_default=""),
    Column("groupname", String(64), nullable=False, server_default=""),
    Column("priority", Integer, nullable=False, server_default="1"),
)
TABLES = (radcheck, radreply, radusergroup)


def check_fits(user: RadiusUser) -> None:
    """Raises Rejected when a value is longer than FreeRADIUS's schema allows (MySQL refuses
    such a row; SQLite would keep a value FreeRADIUS's other tools expect to be shorter)."""
    values: list[tuple[Column[str], str, str]] = [(radcheck.c.username, user.username, "")]
    for table, rows in ((radcheck, user.check), (radreply, user.reply)):
        for attribute, op, value in rows:
            values += [
                (table.c.attribute, attribute, ""),
                (table.c.op, op, f" of {attribute}"),
                (table.c.value, value, f" of {attribute}"),
            ]
    values += [(radusergroup.c.groupname, group, "") for group, _ in user.groups]
    for column, value, of in values:
        limit = column.type.length if isinstance(column.type, String) else None
        if limit is not None and len(value) > limit:
            shown = "" if of == f" of {PASSWORD_ATTRIBUTE}" else f": {value[:80]!r}"
            raise Rejected(
                f"{column.table.name}.{column.name}{of} takes at most {limit} characters in "
                f"FreeRADIUS's schema; this one has {len(value)}{shown}"
            )


class MissingTables(RuntimeError):
    """FreeRADIUS's tables are not in the database; the message says what to do."""


class RadiusTables:
    def __init__(self, engine: Engine, *, create: bool) -> None:
        self.engine = engine
        if create:
            metadata.create_all(engine, checkfirst=True)
            return
        present = set(inspect(engine).get_table_names())
        missing = [t.name for t in TABLES if t.name not in present]
        if missing:
            raise MissingTables(
                f"the RADIUS database has no {', '.join(missing)}: load FreeRADIUS's "
                "schema.sql for your database (mods-config/sql/main/<dialect>/schema.sql), or "
                "set create_tables: true"
            )

    def read(self, username: str) -> RadiusUser | None:
        """The user's rows, or None when no table has any."""
        with self.engine.connect() as connection:
            return self._read(connection, username)

    def converge(self, wanted: RadiusUser) -> str:
        """Make the user's rows exactly `wanted`: created, updated or unchanged."""
        with self.engine.begin() as connection:
            current = self._read(connection, wanted.username)
            if current == wanted:
                return "unchanged"
            self._delete(connection, wanted.username)
            connection.execute(insert(radcheck), _attribute_rows(wanted.username, wanted.check))
            if wanted.reply:
                connection.execute(insert(radreply), _attribute_rows(wanted.username, wanted.reply))
            connection.execute(
                insert(radusergroup),
                [
                    {"username": wanted.username, "groupname": group, "priority": priority}
                    for group, priority in wanted.groups
                ],
            )
            return "created" if current is None else "updated"

    def remove(self, username: str) -> bool:
        """Delete every row of the user; whether there was any."""
        with self.engine.begin() as connection:
            return self._delete(connection, username) > 0

    def usernames(self) -> set[str]:
        """Every user name with a row in any of the three tables."""
        query = union(*(select(table.c.username) for table in TABLES))
        with self.engine.connect() as connection:
            return {str(name) for name in connection.execute(query).scalars()}

    @staticmethod
    def _read(connection: Connection, username: str) -> RadiusUser | None:
        rows: list[list[Row]] = []
        for table in (radcheck, radreply):
            found = connection.execute(
                select(table.c.attribute, table.c.op, table.c.value).where(
                    table.c.username == username
                )
            )
            rows.append([(str(a), str(o).strip(), str(v)) for a, o, v in found])
        groups = [
            (str(group), int(priority))
            for group, priority in connection.execute(
                select(radusergroup.c.groupname, radusergroup.c.priority).where(
                    radusergroup.c.username == username
                )
            )
        ]
        if not rows[0] and not rows[1] and not groups:
            return None
        return canonical(username, rows[0], rows[1], groups)

    @staticmethod
    def _delete(connection: Connection, username: str) -> int:
        return sum(
            connection.execute(delete(table).where(table.c.username == username)).rowcount
            for table in TABLES
        )


def _attribute_rows(username: str, rows: tuple[Row, ...]) -> list[dict[str, str]]:
    return [
        {"username": username, "attribute": attribute, "op": op, "value": value}
        for attribute, op, value in rows
    ]
