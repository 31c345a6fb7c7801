"""The RADIUS connector: keeps FreeRADIUS's SQL tables in line with PortaBilling (group
`Netaccess`).

Every event converges the account's RADIUS user to PortaBilling's current state, whatever
the event type, so repeating a delivery any number of times leaves the same rows and no
error. A user name the account no longer has (its id changed, the account was deleted or
terminated) loses its rows, unless another account is now linked to it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine, MetaData, event

from opennsps.connector import Connector, Context, Event, Rejected
from opennsps.connectors.account_events import NO_ACCOUNT, enriched_account
from opennsps.connectors.links import LinkStore, link_table, sql_engine
from opennsps.connectors.radius.desired import RadiusOptions, RadiusUser, desired_user
from opennsps.connectors.radius.tables import RadiusTables, check_fits


def _immediate_sqlite_writes(engine: Engine) -> None:
    """On SQLite, a transaction takes the write lock when it starts: a read followed by a
    write then never fails to upgrade its lock while another writer is busy."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _stale_name(linked: str | None, wanted: RadiusUser | None) -> str | None:
    """The user name this account was provisioned under and no longer has, if any."""
    if linked is None or (wanted is not None and wanted.username == linked):
        return None
    return linked


class RadiusConnector(Connector):
    status_group = "Netaccess"
    options_model = RadiusOptions  # `config check` validates options with it

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.settings = RadiusOptions.model_validate(self.options)
        self.engine = sql_engine(self.settings.database)
        _immediate_sqlite_writes(self.engine)
        try:
            self.tables = RadiusTables(self.engine, create=self.settings.create_tables)
            table = link_table(MetaData(), self.settings.links_table, "username", 64)
            self.links = LinkStore(self.engine, table, "username")
        except BaseException:
            self.engine.dispose()
            raise

    async def close(self) -> None:
        self.engine.dispose()
        await super().close()

    async def handle(self, event: Event, context: Context) -> dict[str, Any]:
        found = enriched_account(event, "RADIUS")
        if found is None:
            return {"radius": NO_ACCOUNT}
        i_account, pb_data = found
        wanted = desired_user(pb_data, self.settings)
        if wanted is not None:
            check_fits(wanted)
        linked = await self.links.key_of(i_account)
        removed = None
        stale = _stale_name(linked, wanted)
        if stale is not None and await self._owned_only_by(stale, i_account):
            removed = stale if await asyncio.to_thread(self.tables.remove, stale) else None
        action = "absent"
        if wanted is not None:
            action = await asyncio.to_thread(self.tables.converge, wanted)
        wanted_name = wanted.username if wanted else None
        if wanted_name != linked:
            await self.links.link(i_account, wanted_name)
        context.log.info("radius converged", i_account=i_account, action=action, removed=removed)
        return {"radius": action, "removed": removed}

    async def _owned_only_by(self, username: str, i_account: int) -> bool:
        return not (await self.links.accounts_of(username) - {i_account})

    # Reconciliation (opennsps reconcile)

    async def compare(self, i_account: int, pb_data: dict[str, Any]) -> list[str]:
        """How FreeRADIUS differs from PortaBilling for one account; empty when they agree."""
        try:
            wanted: RadiusUser | None = desired_user(pb_data, self.settings)
        except Rejected as exc:
            return [f"cannot be provisioned: {exc}"]
        found = []
        if wanted is not None:
            actual = await asyncio.to_thread(self.tables.read, wanted.username)
            found.extend(wanted.differences(actual))
        stale = _stale_name(await self.links.key_of(i_account), wanted)
        if stale is not None and await asyncio.to_thread(self.tables.read, stale) is not None:
            found.append(f"user {stale!r} is still in FreeRADIUS but no longer this account's")
        return found

    async def orphans(self) -> list[str]:
        """RADIUS users in the tables that this connector never linked to an account."""
        linked = set((await self.links.all_links()).values())
        names = await asyncio.to_thread(self.tables.usernames)
        return [f"RADIUS user {name!r}" for name in sorted(names - linked)]

    async def linked_accounts(self) -> set[int]:
        """Accounts FreeRADIUS holds a user for, as far as this connector provisioned."""
        return set(await self.links.all_links())
