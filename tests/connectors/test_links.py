"""The connectors' link tables: on a local SQLite file in WAL mode, reads happen on the
event loop and never wait for a writer; elsewhere they go through a thread."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import MetaData, event

from opennsps.connectors.links import LinkStore, link_table, sql_engine


def store(url: str) -> LinkStore:
    return LinkStore(sql_engine(url, wal=True), link_table(MetaData(), "links", "imsi", 32), "imsi")


def test_a_wal_sqlite_file_is_read_on_the_loop_even_while_another_program_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "links.db"
    links = store(f"sqlite:///{path}")
    try:
        assert links.inline_reads
        asyncio.run(links.link(100_001, "001010000000001"))
        # Another program (e.g. a repair run) holds the write lock, uncommitted.
        other = sqlite3.connect(path, timeout=0)
        other.execute("BEGIN EXCLUSIVE")  # in a rollback journal, this shuts readers out
        other.execute("UPDATE links SET imsi = '001010000000009' WHERE i_account = 100001")
        try:

            async def read() -> tuple[str | None, set[int]]:
                async with asyncio.timeout(1):  # a wait for the lock would take 5 s
                    return await links.key_of(100_001), await links.accounts_of("001010000000001")

            assert asyncio.run(read()) == ("001010000000001", {100_001})
        finally:
            other.rollback()
            other.close()
        asyncio.run(links.link(100_001, None))
        assert asyncio.run(links.key_of(100_001)) is None
    finally:
        links.close()


def test_other_databases_are_read_in_a_thread(tmp_path: Path) -> None:
    plain = LinkStore(
        sql_engine(f"sqlite:///{tmp_path / 'radius.db'}"),  # someone else's file: left as is
        link_table(MetaData(), "links", "username", 64),
        "username",
    )
    try:
        assert not plain.inline_reads
        asyncio.run(plain.link(7, "alice"))
        assert asyncio.run(plain.key_of(7)) == "alice"
    finally:
        plain.close()


def test_concurrent_links_share_commits_and_each_returns_once_committed(tmp_path: Path) -> None:
    path = tmp_path / "links.db"
    links = store(f"sqlite:///{path}")
    commits = []
    event.listen(links.engine, "commit", lambda _: commits.append(1))

    async def provision() -> None:
        async def one(i_account: int) -> None:
            await links.link(i_account, f"00101{i_account:010d}")
            # committed: another program sees it now
            with sqlite3.connect(path) as other:
                found = other.execute(
                    "SELECT imsi FROM links WHERE i_account = ?", (i_account,)
                ).fetchone()
            assert found == (f"00101{i_account:010d}",)

        await asyncio.gather(*(one(n) for n in range(100)))
        # A later change of the same account wins, removal included.
        await asyncio.gather(links.link(5, "999"), links.link(5, None), links.link(6, "1"))

    try:
        asyncio.run(provision())
        assert asyncio.run(links.all_links()) == {
            **{n: f"00101{n:010d}" for n in range(100) if n not in (5, 6)},
            6: "1",
        }
        assert len(commits) < 20, len(commits)  # not one per link
    finally:
        links.close()
