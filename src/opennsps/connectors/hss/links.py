"""Which IMSI this connector provisioned for which PortaBilling account.

PyHSS has no field for PortaBilling's i_account, and a deleted account's data is gone from
PortaBilling, so the link is kept here: it tells which subscriber to remove when an account
is deleted or its SIM changes, and which HSS subscribers reconciliation must account for.
Any SQLAlchemy URL works; several OpenNSPS processes need a shared database (PostgreSQL).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url

metadata = MetaData()
hss_links = Table(
    "hss_links",
    metadata,
    Column("i_account", BigInteger, primary_key=True, autoincrement=False),
    Column("imsi", String(32), nullable=False, index=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class LinkStore:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.drivername.startswith("sqlite") and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    async def imsi_of(self, i_account: int) -> str | None:
        return await asyncio.to_thread(self._imsi_of, i_account)

    async def accounts_of(self, imsi: str) -> set[int]:
        return await asyncio.to_thread(self._accounts_of, imsi)

    async def link(self, i_account: int, imsi: str | None) -> None:
        await asyncio.to_thread(self._link, i_account, imsi)

    async def all_links(self) -> dict[int, str]:
        return await asyncio.to_thread(self._all)

    def _imsi_of(self, i_account: int) -> str | None:
        with self.engine.connect() as connection:
            found = connection.execute(
                select(hss_links.c.imsi).where(hss_links.c.i_account == i_account)
            ).scalar_one_or_none()
        return str(found) if found is not None else None

    def _accounts_of(self, imsi: str) -> set[int]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(hss_links.c.i_account).where(hss_links.c.imsi == imsi)
            ).scalars()
            return {int(row) for row in rows}

    def _link(self, i_account: int, imsi: str | None) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            if imsi is None:
                connection.execute(delete(hss_links).where(hss_links.c.i_account == i_account))
                return
            changed = connection.execute(
                update(hss_links)
                .where(hss_links.c.i_account == i_account)
                .values(imsi=imsi, updated_at=now)
            ).rowcount
            if not changed:
                connection.execute(
                    insert(hss_links).values(i_account=i_account, imsi=imsi, updated_at=now)
                )

    def _all(self) -> dict[int, str]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(hss_links.c.i_account, hss_links.c.imsi))
            return {int(i_account): str(imsi) for i_account, imsi in rows}
