"""The ESPF ingress under hostile input, over real HTTP on SQLite and PostgreSQL: whatever
the body and headers, never a 5xx (ESPF would send it again forever), every refusal in the
ErrorResponse shape, and the server still answering afterwards; one bad event never fails
the good ones written in the same batch."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support import basic_header, event_body

pytestmark = pytest.mark.slow
JSON = {"Content-Type": "application/json"}
COUNTER = itertools.count(10_000_000)

hostile_integers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64),
    st.just("9" * 5000),
    st.sampled_from(["1\x1c", "\x1f2", "\u0661\u0662", " 12 ", "+7", "-0", "0x10", "1e3", ""]),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
hostile_times = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-05:00",
            "2026-02-30 00:00:00",
            "2026-01-01T00:00:00Z",
            "\x00",
        ]
    ),
    st.text(max_size=40),
    st.integers(),
)


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
variables = st.fixed_dictionaries(
    {},
    optional={
        "i_event": hostile_integers,
        "i_account": hostile_integers,
        "i_customer": hostile_integers,
        "i_invoice": hostile_integers,
        "i_sim_card": hostile_integers,
        "number": st.one_of(st.text(max_size=20), hostile_integers),
        "event_time": hostile_times,
        "deep": st.integers(min_value=200, max_value=400).map(nested),
        "other": json_values,
    },
)
bodies = st.one_of(  # mostly events, so that the checks past the first ones are reached
    st.fixed_dictionaries(
        {
            "event_type": st.one_of(
                st.sampled_from(
                    ["Subscriber/Updated", "SIM/Created", "Customer/Updated", "Invoice/Created",
                     "DID/Updated", "Custom/Thing", "Account/Service/QuotaExceeded"]
                ),
                st.text(max_size=300),
                hostile_integers,
            ),
            "variables": variables,
        },
        optional={"event_time": hostile_times, "i_event": hostile_integers},
    ),
    json_values,
)  # fmt: skip
headers = st.dictionaries(
    st.sampled_from(["Content-Type", "X-B3-TraceId", "X-Request-Id", "Date", "Accept"]),
    # What an HTTP client can send at all: visible ASCII, no surrounding blanks.
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
    .map(str.strip)
    .filter(bool),
    max_size=3,
)


def assert_well_formed(answer: httpx.Response) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text[:500])
    if answer.status_code >= 400:
        body = answer.json()
        assert set(body) >= {"message", "error", "type"}, body


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, extra=headers, raw=st.booleans())
# The inputs that once answered 500, run every time.
@example(body={"event_type": "Custom/X", "variables": {"i_event": "9" * 5000}}, extra={}, raw=False)
@example(
    body={"event_type": "Subscriber/Updated", "variables": {"i_account": "1\x1c"}},
    extra={},
    raw=False,
)
@example(
    body={"event_type": "Custom/X", "variables": {}, "event_time": "9999-12-31T23:59:59-05:00"},
    extra={},
    raw=False,
)
@example(body={"event_type": "Custom/X", "variables": {"deep": nested(300)}}, extra={}, raw=False)
def test_no_body_or_header_makes_the_ingress_fail(
    gateway: str, body: Any, extra: dict[str, str], raw: bool
) -> None:
    if isinstance(body, dict) and isinstance(body.get("variables"), dict):
        body["variables"].setdefault("i_event", next(COUNTER))
    try:
        content = orjson.dumps(body)
    except orjson.JSONEncodeError:
        content = repr(body).encode()
    if raw:
        content = content[: len(content) // 2]  # cut short: not JSON any more
    sent = {**JSON, **extra, **basic_header()}
    answer = httpx.post(f"{gateway}/espf/events", content=content, headers=sent, timeout=30)
    assert_well_formed(answer)
    good = httpx.post(
        f"{gateway}/espf/events",
        json=event_body(next(COUNTER)),
        headers={**JSON, **basic_header()},
        timeout=30,
    )
    assert good.status_code == 200, good.text


def test_an_event_that_cannot_be_stored_never_fails_its_batch(gateway: str) -> None:
    """Variables nested 300 deep parse but cannot be serialised; sent among good events at
    once (so they share group-commit batches), only they are refused."""

    async def send_all() -> list[tuple[bool, httpx.Response]]:
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(k: int) -> tuple[bool, httpx.Response]:
                bad = k % 5 == 0
                body = event_body(20_000_000 + k)
                if bad:
                    body["variables"]["deep"] = nested(300)
                answer = await client.post(
                    f"{gateway}/espf/events", json=body, headers=basic_header()
                )
                return bad, answer

            return await asyncio.gather(*(one(k) for k in range(150)))

    answers = asyncio.run(send_all())
    for bad, answer in answers:
        assert_well_formed(answer)
        assert answer.status_code == (400 if bad else 200), answer.text
    assert "cannot be stored" in next(a for bad, a in answers if bad).json()["message"]
