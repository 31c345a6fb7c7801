"""The pure ESPF event rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opennsps.domain.events import (
    MAX_BIGINT,
    EventValidationError,
    as_integer,
    parse_event,
    parse_event_time,
)


@given(st.integers(min_value=0, max_value=MAX_BIGINT), st.booleans())
def test_i_event_as_integer_or_string(i_event: int, as_text: bool) -> None:
    raw = str(i_event) if as_text else i_event
    event = parse_event({"event_type": "Custom/X", "variables": {"i_event": raw}})
    assert event.i_event == i_event


@given(st.one_of(st.booleans(), st.floats(), st.text().filter(lambda t: as_integer(t) is None)))
def test_non_integer_i_event_is_refused(raw: object) -> None:
    with pytest.raises(EventValidationError):
        parse_event({"event_type": "Custom/X", "variables": {"i_event": raw}})


def test_i_event_at_the_top_level_is_accepted() -> None:
    event = parse_event({"event_type": "Custom/X", "variables": {}, "i_event": 9})
    assert event.i_event == 9
    with pytest.raises(EventValidationError, match="twice"):
        parse_event({"event_type": "Custom/X", "variables": {"i_event": 8}, "i_event": 9})


def test_event_type_is_trimmed_and_bounded() -> None:
    assert (
        parse_event(
            {"event_type": " SIM/Updated ", "variables": {"i_event": 1, "i_account": 2}}
        ).event_type
        == "SIM/Updated"
    )
    for bad in ("", "   ", "x" * 256, "A\nB"):
        with pytest.raises(EventValidationError):
            parse_event({"event_type": bad, "variables": {"i_event": 1}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-03-01 00:00:00", "2021-03-01T00:00:00+00:00"),
        ("2021-03-01T02:00:00+02:00", "2021-03-01T00:00:00+00:00"),
        ("2021-03-01T00:00:00Z", "2021-03-01T00:00:00+00:00"),
        ("next tuesday", None),
        ("", None),
    ],
)
def test_event_time(text: str, expected: str | None) -> None:
    parsed = parse_event_time(text)
    assert (parsed.isoformat() if parsed else None) == expected
