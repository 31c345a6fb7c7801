"""The integers and times OpenNSPS takes from outside (ESPF bodies, the management API, the
CLI): one definition of what is acceptable, shared by every entry point.

PortaBilling's ids are 64-bit integers; both stores keep times in UTC within years 1-9999.
A value outside these cannot be stored or sent on, so it is refused where it enters (an
ESPF event is refused only for its i_event: see domain/events.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

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


def as_utc_bound(value: datetime) -> datetime:
    """As as_utc, but a time just outside the storable years is the nearest storable one:
    as a search bound it finds the same rows."""
    try:
        return as_utc(value)
    except ValueError:
        return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)


def _integer_text(value: Any) -> Any:
    """Integers in URLs: ASCII digits only, read by as_integer (pydantic would also take
    "0.0" or "1_000")."""
    if isinstance(value, str):
        number = as_integer(value)
        if number is None:
            raise ValueError("must be a whole number of at most 19 digits")
        return number
    return value


def iso_time(text: str) -> datetime:
    """An ISO-8601 time (`T` or a space between date and time, `Z` for UTC); raises
    ValueError when the text is not one."""
    return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


def _iso_time(value: Any) -> Any:
    """Only ISO-8601 text (or a datetime) is a time: pydantic would also read a number such
    as `0.5` as seconds since 1970."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return iso_time(value)
        except ValueError:
            pass
    raise ValueError("must be an ISO-8601 date-time such as 2026-01-31T12:00:00Z")


Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX), BeforeValidator(_integer_text)]
Id64 = Annotated[int, Field(ge=0, le=INT64_MAX), BeforeValidator(_integer_text)]


def json_integer(value: Any) -> Any:
    """In a JSON body an integer is a JSON number (1.0 included, as JSON Schema has it):
    `false` or "5" is not an account."""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON integer")
    return value


# Integers in a JSON body stay within I-JSON's (RFC 7493) exact range: every client, and
# every JSON Schema validator (they compare as doubles), reads them the same.
JSON_INT_MAX = 2**53 - 1
JsonInt = Annotated[int, Field(ge=-JSON_INT_MAX, le=JSON_INT_MAX), BeforeValidator(json_integer)]
JsonId = Annotated[int, Field(ge=0, le=JSON_INT_MAX), BeforeValidator(json_integer)]
UtcTime = Annotated[datetime, BeforeValidator(_iso_time), AfterValidator(as_utc_bound)]
# Text that filters or names stored things: PostgreSQL cannot hold a NUL character.
NO_NUL = "^[^\x00]*$"
Text = Annotated[str, Field(max_length=1000, pattern=NO_NUL)]
