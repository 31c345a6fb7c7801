"""Times as UTC text, the two forms the gateway writes for every event: the log line's
`timestamp` and the stored `received_at` on SQLite.

datetime.isoformat() and structlog's TimeStamper format every field of every time anew
(about 2 µs each); here the text up to the second is kept until the second changes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

# (the whole second, its text up to and including the ".")
_log_second: tuple[int, str] = (-1, "")
_stored_second: tuple[tuple[int, int, int, int, int, int], str] = ((0, 0, 0, 0, 0, 0), "")


def log_timestamp() -> str:
    """Now, as `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    global _log_second
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _log_second
    if cached[0] != seconds:
        cached = _log_second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds)))
    return f"{cached[1]}{micros:06d}Z"


def stored_utc_text(value: datetime) -> str:
    """`value` in UTC as naive `YYYY-MM-DD HH:MM:SS.ffffff`: the text SQLAlchemy's SQLite
    DATETIME reads back. A naive `value` is taken as local time (datetime.astimezone)."""
    global _stored_second
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    key = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    cached = _stored_second
    if cached[0] != key:
        cached = _stored_second = (
            key,
            f"{key[0]:04d}-{key[1]:02d}-{key[2]:02d} {key[3]:02d}:{key[4]:02d}:{key[5]:02d}.",
        )
    return f"{cached[1]}{value.microsecond:06d}"
