"""An ESPF event as received: its validation rules and the entity it concerns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from opennsps.domain.values import as_integer, as_utc

MAX_EVENT_TYPE_LENGTH = 255

# Which variables each event group must carry (ESPF guide, "Event types").
REQUIRED_VARIABLES: dict[str, tuple[str, ...]] = {
    "Subscriber": ("i_account",),
    "Account": ("i_account",),
    "SIM": ("i_account",),
    "Customer": ("i_customer",),
    "Invoice": ("i_customer", "i_invoice"),
    "DID": ("number",),
}

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_ENTITY_KEY_VARIABLE: dict[str, tuple[str, str]] = {
    "Subscriber": ("account", "i_account"),
    "Account": ("account", "i_account"),
    "SIM": ("account", "i_account"),
    "Customer": ("customer", "i_customer"),
    "Invoice": ("invoice", "i_invoice"),
    "DID": ("did", "number"),
}
# For event types outside the known groups (Custom/*, ...): the first variable present names it.
_FALLBACK_ENTITY_VARIABLES = (
    ("account", "i_account"),
    ("customer", "i_customer"),
    ("invoice", "i_invoice"),
    ("did", "number"),
)


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
    group = event_group(event_type)
    for name in REQUIRED_VARIABLES.get(group, ()):
        _require_variable(group, name, variables)

    return IncomingEvent(
        event_type=event_type,
        variables=variables,
        variables_json=_storable(variables),
        i_event=i_event,
        entity_key=_entity_key(group, variables),
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


def _require_variable(group: str, name: str, variables: dict[str, Any]) -> None:
    if name not in variables or variables[name] is None:
        raise EventValidationError(f"{group} events require 'variables.{name}'")
    value = variables[name]
    if name == "number":
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            raise EventValidationError("'variables.number' must be a non-empty string")
    elif as_integer(value) is None:
        raise EventValidationError(
            f"'variables.{name}' must be a 64-bit integer or integer string, got {_shown(value)}"
        )


def entity_key_of(event_type: str, variables: dict[str, Any]) -> str | None:
    """The entity (account, customer, invoice, DID) an event is about, as `kind:id`."""
    return _entity_key(event_group(event_type), variables)


def _entity_key(group: str, variables: dict[str, Any]) -> str | None:
    candidates = (
        (_ENTITY_KEY_VARIABLE[group],)
        if group in _ENTITY_KEY_VARIABLE
        else _FALLBACK_ENTITY_VARIABLES
    )
    for kind, name in candidates:
        value = variables.get(name)
        if value is None:
            continue
        if name == "number":
            if isinstance(value, str | int) and not isinstance(value, bool):
                return f"{kind}:{str(value).strip()}"
            continue
        number = as_integer(value)
        if number is not None:
            return f"{kind}:{number}"
    return None


def _storable(variables: dict[str, Any]) -> str:
    """The variables as JSON text. JSON nested deeper than the serialiser writes (254
    levels) is refused here, on its own request, not in the batch it would be written in."""
    try:
        return orjson.dumps(variables).decode()
    except orjson.JSONEncodeError as exc:
        raise EventValidationError(f"'variables' cannot be stored: {exc}") from None


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
        return as_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        return None
