"""Head-of-line ordering: a row waits while an earlier row of the same key is open."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Exists, Table, select
from sqlalchemy.sql import FromClause


def open_predecessor(
    table: Table, row: FromClause, same: Sequence[str], open_states: Sequence[Any]
) -> Exists:
    """EXISTS an earlier row (lower id) of `table` with the same values in `same` whose
    state is one of `open_states`."""
    earlier = table.alias("earlier")
    return (
        select(earlier.c.id)
        .where(
            *(earlier.c[name] == row.c[name] for name in same),
            earlier.c.id < row.c.id,
            earlier.c.state.in_(open_states),
        )
        .exists()
    )
