"""The fast UTC text forms read back exactly as the slow ones they replace."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta, timezone

import orjson
from hypothesis import given
from hypothesis import strategies as st

from opennsps import utc_text
from opennsps.logging import configure_logging, get_logger, trace_ids_bound

LOG_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def reference_stored_text(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))]),
    )
)
def test_stored_text_matches_isoformat_for_any_time(value: datetime) -> None:
    assert utc_text.stored_utc_text(value) == reference_stored_text(value)


def test_stored_text_changes_with_each_second_and_microsecond() -> None:
    start = datetime(2026, 11, 22, 23, 59, 59, 999_998, tzinfo=UTC)
    for step in range(6):
        value = start + timedelta(microseconds=step)
        assert utc_text.stored_utc_text(value) == reference_stored_text(value)
    whole = datetime(2026, 11, 23, 0, 0, 0, 0, tzinfo=UTC)
    assert utc_text.stored_utc_text(whole) == "2026-11-23 00:00:00.000000"


def test_naive_time_is_taken_as_local_time_as_before() -> None:
    naive = datetime(2026, 6, 1, 12, 30, 15, 42)
    assert utc_text.stored_utc_text(naive) == reference_stored_text(naive)


def test_log_timestamp_is_now_in_utc_with_microseconds() -> None:
    before = datetime.now(UTC)
    text = utc_text.log_timestamp()
    after = datetime.now(UTC)
    assert LOG_TIMESTAMP.fullmatch(text), text
    stamped = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert before - timedelta(milliseconds=1) <= stamped <= after + timedelta(milliseconds=1)


def test_log_lines_carry_the_bound_trace_ids_only_while_bound() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    log = get_logger("opennsps.test")
    try:
        log.info("before")
        with trace_ids_bound("463ac35c9f6413ad48485a3953bb6124", "r-1"):
            log.info("inside")
            log.info("explicit", request_id="given")
        log.info("after")
    finally:
        configure_logging("info")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["before", "inside", "explicit", "after"]
    assert "request_id" not in lines[0] and "request_id" not in lines[3]
    assert (lines[1]["request_id"], lines[1]["unique_id"]) == (
        "463ac35c9f6413ad48485a3953bb6124",
        "r-1",
    )
    assert lines[2]["request_id"] == "given"
    assert all(LOG_TIMESTAMP.fullmatch(line["timestamp"]) for line in lines)
