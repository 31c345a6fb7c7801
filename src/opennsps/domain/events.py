"""An ESPF event as received: its validation rules and the entity it concerns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from opennsps.domain.values import INT64_MIN, as_integer, as_utc, iso_time

MAX_EVENT_TYPE_LENGTH = 255
#: The event types of the ESPF guide (its four groups, and the quota events and custom
#: event of its scheduling scenario) and of the NSPS connector guide (the SIM group).
#: Others (custom event types) are accepted too.
KNOWN_EVENT_TYPES = (
    "Subscriber/Created",
    "Subscriber/Updated",
    "Subscriber/Deleted",
    "Customer/Created",
    "Customer/Updated",
    "Customer/Deleted",
    "Invoice/Created",
    "Invoice/Updated",
    "DID/Created",
    "DID/Updated",
    "DID/Deleted",
    "Account/Service/QuotaExceeded",
    "Account/Service/QuotaAvailable",
    "Custom/NextMonth",
    "SIM/Created",
    "SIM/Updated",
    "SIM/Deleted",
    "SIM/Replaced",
)

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# The entity an event is about, for ordering: the first of these variables it carries.
# An event of any group is accepted without them (ESPF drops an event answered 400), and
# is then ordered on its own.
ENTITY_VARIABLES = (
    ("account", "i_account"),
    ("sim", "i_sim_card"),
    ("customer", "i_customer"),
    ("invoice", "i_invoice"),
    ("did", "number"),
)
NUL_AS_TEXT = "\\u0000"  # the six characters that stand for a NUL character once stored


class EventValidationError(ValueError):
    """The body is not an ESPF event this gateway can store; the message says why."""


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """A validated ESPF event, as ESPF sent it plus what was derived from it."""

    event_type: str
    variables: dict[str, Any]
    variables_json: str  # as stored: serialised once, where a bad value can be refused
    i_event: int
    entity_key: str | None
    event_time: datetime | None

    @property
    def group(self) -> str:
        return event_group(self.event_type)


def event_group(event_type: str) -> str:
    """`Subscriber/Created` -> `Subscriber`; `Account/Service/QuotaExceeded` -> `Account`."""
    return event_type.split("/", 1)[0]


def parse_event(body: Any) -> IncomingEvent:
    """Validate a decoded JSON body as an ESPF event or raise EventValidationError."""
    if not isinstance(body, dict):
        raise EventValidationError("the body must be a JSON object")
    event_type = body.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise EventValidationError("'event_type' must be a non-empty string")
    if len(event_type) > MAX_EVENT_TYPE_LENGTH or _CONTROL_CHARACTERS.search(event_type):
        raise EventValidationError(
            f"'event_type' must be at most {MAX_EVENT_TYPE_LENGTH} printable characters"
        )
    event_type = event_type.strip()
    variables = body.get("variables")
    if not isinstance(variables, dict):
        raise EventValidationError("'variables' must be a JSON object")

    i_event = _parse_i_event(body, variables)
    variables, variables_json = _storable(variables)
    return IncomingEvent(
        event_type=event_type,
        variables=variables,
        variables_json=variables_json,
        i_event=i_event,
        entity_key=entity_key_of(variables),
        event_time=parse_event_time(body.get("event_time", variables.get("event_time"))),
    )


def _parse_i_event(body: dict[str, Any], variables: dict[str, Any]) -> int:
    # The guide's examples carry i_event inside `variables`; its prose lists it beside them.
    in_variables = "i_event" in variables
    in_body = "i_event" in body
    if not in_variables and not in_body:
        raise EventValidationError("'variables.i_event' is required")
    raw = variables["i_event"] if in_variables else body["i_event"]
    i_event = as_integer(raw)
    if i_event is None or i_event < 0:
        raise EventValidationError(
            f"'i_event' must be a non-negative 64-bit integer or integer string, got {_shown(raw)}"
        )
    if in_variables and in_body and as_integer(body["i_event"]) != i_event:
        raise EventValidationError("'i_event' is given twice with different values")
    return i_event


def entity_key_of(variables: dict[str, Any]) -> str | None:
    """The entity (account, SIM card, customer, invoice, DID) an event is about, as
    `kind:id`: the first of ENTITY_VARIABLES it carries with a usable value, whatever the
    event's group (Custom/* included)."""
    for kind, name in ENTITY_VARIABLES:
        value = variables.get(name)
        if name == "number":
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                return f"{kind}:{str(value).strip()}"
            continue
        number = as_integer(value)
        if number is not None:
            return f"{kind}:{number}"
    return None


def _storable(variables: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The variables as both engines store them, and as JSON text.

    What no engine can hold is changed the same way on both (the raw body keeps what was
    sent): a NUL character becomes the six characters `\\u0000`; an integer beyond 64 bits
    becomes its digits as text. JSON nested deeper than the serialiser writes (254 levels)
    is refused here, on its own request, not in the batch it would be written in.
    """
    try:
        text = orjson.dumps(variables).decode()
    except orjson.JSONEncodeError:
        text = None
    if text is not None and "\\u0000" not in text:  # orjson writes a NUL character so
        return variables, text
    cleaned: dict[str, Any] = _as_storable(variables)
    try:
        return cleaned, orjson.dumps(cleaned).decode()
    except orjson.JSONEncodeError as exc:
        raise EventValidationError(f"'variables' cannot be stored: {exc}") from None


def _as_storable(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", NUL_AS_TEXT)
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value < 2**64:
        return str(value)
    if isinstance(value, dict):
        return {_as_storable(key): _as_storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_storable(item) for item in value]
    return value


def _shown(value: Any) -> str:
    """A value quoted in a refusal, cut short (a 5,000-digit number is not repeated)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}… ({len(text)} characters)"


def parse_event_time(value: Any) -> datetime | None:
    """An ISO-8601 or `YYYY-MM-DD HH:MM:SS` time in UTC (UTC when no offset); None when
    absent, unreadable or outside what the stores hold.

    An unreadable event_time never rejects an event: ESPF would drop it for good.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return as_utc(iso_time(value))
    except ValueError:
        return None
