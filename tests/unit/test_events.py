"""The pure ESPF event rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opennsps.domain.events import EventValidationError, parse_event, parse_event_time
from opennsps.domain.values import INT64_MAX, as_integer


@given(st.integers(min_value=0, max_value=INT64_MAX), st.booleans())
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


@pytest.mark.parametrize(
    "raw",
    ["9" * 5000, "1" + "0" * 19, 2**63, -(2**63) - 1, "1\x1c", "\x1f2", "\u0661\u0662", "\u00a012"],
)
def test_integers_are_ascii_and_64_bit(raw: object) -> None:
    """Beyond 4,300 digits int() itself fails; \x1c-\x1f and Arabic-Indic digits are what a
    Unicode-aware pattern lets through; none of them is an ESPF id."""
    assert as_integer(raw) is None
    with pytest.raises(EventValidationError, match="64-bit"):
        parse_event({"event_type": "Custom/X", "variables": {"i_event": raw}})
    # As an entity id it is no id: the event is still taken, ordered on its own.
    event = parse_event(
        {"event_type": "Subscriber/Updated", "variables": {"i_event": 1, "i_account": raw}}
    )
    assert event.entity_key is None


def test_a_refused_value_is_quoted_short() -> None:
    with pytest.raises(EventValidationError) as refused:
        parse_event({"event_type": "Custom/X", "variables": {"i_event": "9" * 5000}})
    assert len(str(refused.value)) < 200


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"])
def test_an_event_time_outside_the_storable_years_is_ignored(text: str) -> None:
    assert parse_event_time(text) is None
    event = parse_event({"event_type": "Custom/X", "variables": {"i_event": 1}, "event_time": text})
    assert event.event_time is None


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_variables_nested_deeper_than_the_store_writes_are_refused() -> None:
    parse_event({"event_type": "Custom/X", "variables": {"i_event": 1, "deep": nested(250)}})
    with pytest.raises(EventValidationError, match="cannot be stored"):
        parse_event({"event_type": "Custom/X", "variables": {"i_event": 1, "deep": nested(300)}})


def test_what_no_store_can_hold_is_stored_as_text_the_same_on_both_engines() -> None:
    event = parse_event(
        {
            "event_type": "Custom/X",
            "variables": {"i_event": 1, "big": 2**70, "note": "a\x00b", "list": [-(2**64)]},
        }
    )
    assert event.variables == {
        "i_event": 1,
        "big": str(2**70),
        "note": "a\\u0000b",
        "list": [str(-(2**64))],
    }
    assert '"big":"1180591620717411303424"' in event.variables_json
