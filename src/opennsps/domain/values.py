"""The integers and times OpenNSPS takes from outside (ESPF bodies, the management API, the
CLI): one definition of what is acceptable, shared by every entry point.

PortaBilling's ids are 64-bit integers; both stores keep times in UTC within years 1-9999.
A value outside these cannot be stored or sent on, so it is refused where it enters.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# At most 19 digits fit in 64 bits; a longer text is refused before int() reads it.
_INTEGER_TEXT = re.compile(r"[ \t]*[+-]?[0-9]{1,19}[ \t]*", re.ASCII)


def as_integer(value: Any) -> int | None:
    """A 64-bit integer, or a string holding one in ASCII digits (ESPF's own examples send
    `"5"`); None for anything else, booleans and out-of-range numbers included."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if INT64_MIN <= number <= INT64_MAX else None


def as_utc(value: datetime) -> datetime:
    """The time in UTC (a naive time is taken as UTC). Raises ValueError when it falls
    outside years 1-9999 in UTC, which no store can hold."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside the years 1-9999 in UTC") from None


Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Id64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
UtcTime = Annotated[datetime, AfterValidator(as_utc)]
