"""Handlers in the database: declared in the config file or created through the API.

Routing reads them inside the ingest transaction, so every process on a shared database
routes by the same, current set of handlers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from opennsps.config import HandlerConfig
from opennsps.store.engine import write_transaction
from opennsps.store.schema import deliveries, handler_routes, handlers, runtime_flags

HandlerStatus = Literal["enabled", "disabled", "archived"]
PAUSED_FLAG = "paused"


class HandlerNotFound(LookupError):
    pass


class HandlerConflict(ValueError):
    """The change is not allowed in the handler's current situation (the message says why)."""


@dataclass(frozen=True)
class StoredHandler:
    definition: HandlerConfig
    status: HandlerStatus
    paused: bool
    managed_by: Literal["config", "api"]
    created_at: datetime
    updated_at: datetime

    @property
    def id(self) -> str:
        return self.definition.id


def database_pattern(dialect: str, pattern: str) -> str:
    """A routing pattern in the database's own syntax (patterns hold no GLOB/LIKE specials
    except `*` and, for LIKE, `_`)."""
    if dialect == "sqlite":
        return pattern
    return pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")


class HandlerStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    # -- reads ------------------------------------------------------------------------

    def list(self, *, include_archived: bool = True) -> list[StoredHandler]:
        query = select(handlers).order_by(handlers.c.priority, handlers.c.id)
        if not include_archived:
            query = query.where(handlers.c.status != "archived")
        with self.engine.connect() as connection:
            return [_stored(row._mapping) for row in connection.execute(query)]

    def get(self, handler_id: str) -> StoredHandler:
        with self.engine.connect() as connection:
            row = connection.execute(select(handlers).where(handlers.c.id == handler_id)).first()
        if row is None:
            raise HandlerNotFound(f"no handler with id {handler_id!r}")
        return _stored(row._mapping)

    def paused(self) -> bool:
        with self.engine.connect() as connection:
            value = connection.execute(
                select(runtime_flags.c.value).where(runtime_flags.c.name == PAUSED_FLAG)
            ).scalar()
        return value == "true"

    # -- writes -----------------------------------------------------------------------

    def sync_from_config(self, declared: Sequence[HandlerConfig]) -> None:
        """Bring the config file's handlers into the database.

        Their definitions follow the file at every start; their status follows it only
        when a handler is first created, or comes back to the file (afterwards
        enable/disable/archive through the API or CLI stay in force across restarts). A
        handler taken out of the file is archived.
        """
        now = datetime.now(UTC)
        with write_transaction(self.engine) as connection:
            for definition in declared:
                existing = connection.execute(
                    select(handlers.c.managed_by, handlers.c.status).where(
                        handlers.c.id == definition.id
                    )
                ).first()
                if existing is None:
                    self._insert(connection, definition, "config", now)
                    continue
                self._write_definition(connection, definition, now, managed_by="config")
                if existing.managed_by == "config" and existing.status == "archived":
                    # Back in the file after it was taken out: the file's status again.
                    connection.execute(
                        update(handlers)
                        .where(handlers.c.id == definition.id)
                        .values(status=definition.status)
                    )
            # Taken out of the file: archived (kept for its history), never left routing.
            connection.execute(
                update(handlers)
                .where(
                    handlers.c.managed_by == "config",
                    handlers.c.id.not_in([d.id for d in declared]),
                    handlers.c.status != "archived",
                )
                .values(status="archived", updated_at=now)
            )

    def create(self, definition: HandlerConfig) -> StoredHandler:
        now = datetime.now(UTC)
        with write_transaction(self.engine) as connection:
            exists = connection.execute(
                select(handlers.c.id).where(handlers.c.id == definition.id)
            ).first()
            if exists is not None:
                raise HandlerConflict(f"a handler with id {definition.id!r} already exists")
            self._insert(connection, definition, "api", now)
        return self.get(definition.id)

    def replace(self, definition: HandlerConfig) -> StoredHandler:
        current = self.get(definition.id)
        if current.managed_by == "config":
            raise HandlerConflict(
                f"handler {definition.id!r} is declared in the config file; change it there"
                " (its status can still be changed here)"
            )
        with write_transaction(self.engine) as connection:
            self._write_definition(connection, definition, datetime.now(UTC))
            connection.execute(
                update(handlers)
                .where(handlers.c.id == definition.id)
                .values(status=definition.status)
            )
        return self.get(definition.id)

    def set_status(self, handler_id: str, status: HandlerStatus) -> StoredHandler:
        self._update(handler_id, status=status)
        return self.get(handler_id)

    def set_paused(self, handler_id: str, paused: bool) -> StoredHandler:
        self._update(handler_id, paused=paused)
        return self.get(handler_id)

    def set_global_pause(self, paused: bool) -> None:
        now = datetime.now(UTC)
        value = "true" if paused else "false"
        with write_transaction(self.engine) as connection:
            changed = connection.execute(
                update(runtime_flags)
                .where(runtime_flags.c.name == PAUSED_FLAG)
                .values(value=value, updated_at=now)
            ).rowcount
            if not changed:
                connection.execute(
                    insert(runtime_flags).values(name=PAUSED_FLAG, value=value, updated_at=now)
                )

    def delete(self, handler_id: str) -> None:
        current = self.get(handler_id)
        if current.managed_by == "config":
            raise HandlerConflict(
                f"handler {handler_id!r} is declared in the config file; remove it there"
            )
        with write_transaction(self.engine) as connection:
            open_count = connection.execute(
                select(func.count())
                .select_from(deliveries)
                .where(
                    deliveries.c.handler_id == handler_id,
                    deliveries.c.state.in_(("pending", "in_flight", "waiting")),
                )
            ).scalar_one()
            if open_count:
                raise HandlerConflict(
                    f"handler {handler_id!r} still has {open_count} unfinished deliveries;"
                    " archive it instead, or wait until they finish"
                )
            connection.execute(
                delete(handler_routes).where(handler_routes.c.handler_id == handler_id)
            )
            connection.execute(delete(handlers).where(handlers.c.id == handler_id))

    def _update(self, handler_id: str, **values: Any) -> None:
        with write_transaction(self.engine) as connection:
            changed = connection.execute(
                update(handlers)
                .where(handlers.c.id == handler_id)
                .values(**values, updated_at=datetime.now(UTC))
            ).rowcount
        if not changed:
            raise HandlerNotFound(f"no handler with id {handler_id!r}")

    def _insert(
        self,
        connection: Connection,
        definition: HandlerConfig,
        managed_by: Literal["config", "api"],
        now: datetime,
    ) -> None:
        connection.execute(
            insert(handlers).values(
                id=definition.id,
                definition=_definition_json(definition),
                status=definition.status,
                priority=definition.priority,
                holds_back=definition.holds_back,
                paused=False,
                managed_by=managed_by,
                created_at=now,
                updated_at=now,
            )
        )
        self._write_routes(connection, definition)

    def _write_definition(
        self,
        connection: Connection,
        definition: HandlerConfig,
        now: datetime,
        managed_by: Literal["config", "api"] | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "definition": _definition_json(definition),
            "priority": definition.priority,
            "holds_back": definition.holds_back,
            "updated_at": now,
        }
        if managed_by is not None:
            values["managed_by"] = managed_by
        connection.execute(update(handlers).where(handlers.c.id == definition.id).values(**values))
        connection.execute(
            delete(handler_routes).where(handler_routes.c.handler_id == definition.id)
        )
        self._write_routes(connection, definition)

    def _write_routes(self, connection: Connection, definition: HandlerConfig) -> None:
        connection.execute(
            insert(handler_routes),
            [
                {
                    "handler_id": definition.id,
                    "pattern": pattern,
                    "match": database_pattern(self.dialect, pattern),
                }
                for pattern in dict.fromkeys(definition.events)
            ],
        )


def _definition_json(definition: HandlerConfig) -> dict[str, Any]:
    """The definition with its secrets in clear: the database is where they are kept."""
    dumped: dict[str, Any] = definition.model_dump(mode="json", exclude={"status"})
    for kind in ("http",):
        section = getattr(definition, kind)
        if section is not None and section.token is not None:
            dumped[kind]["token"] = section.token.get_secret_value()
    if definition.template is not None:
        dumped["template"]["secrets"] = {
            name: value.get_secret_value() for name, value in definition.template.secrets.items()
        }
    return dumped


def _stored(m: Any) -> StoredHandler:
    definition = HandlerConfig.model_validate({**m["definition"], "status": m["status"]})
    return StoredHandler(
        definition=definition,
        status=m["status"],
        paused=bool(m["paused"]),
        managed_by=m["managed_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )
