"""An ESPF event as received: its validation rules and the entity it concerns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_EVENT_TYPE_LENGTH = 255
MAX_BIGINT = 2**63 - 1

# Which variables each event group must carry (ESPF guide, "Event types").
REQUIRED_VARIABLES: dict[str, tuple[str, ...]] = {
    "Subscriber": ("i_account",),
    "Account": ("i_account",),
    "SIM": ("i_account",),
    "Customer": ("i_customer",),
    "Invoice": ("i_customer", "i_invoice"),
    "DID": ("number",),
}

_INTEGER_TEXT = re.compile(r"\s*[+-]?\d+\s*")
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
    i_event: int
    entity_key: str | None
    event_time: datetime | None

    @property
    def group(self) -> str:
        return event_group(self.event_type)


def event_group(event_type: str) -> str:
    """`Subscriber/Created` -> `Subscriber`; `Account/Service/QuotaExceeded` -> `Account`."""
    return event_type.split("/", 1)[0]


def as_integer(value: Any) -> int | None:
    """An integer, or a string holding one (ESPF's own examples send `"5"`); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        return int(value)
    return None


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
    if i_event is None or not 0 <= i_event <= MAX_BIGINT:
        raise EventValidationError(
            f"'i_event' must be a non-negative integer or integer string, got {raw!r}"
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
            f"'variables.{name}' must be an integer or integer string, got {value!r}"
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


def parse_event_time(value: Any) -> datetime | None:
    """An ISO-8601 or `YYYY-MM-DD HH:MM:SS` time (UTC when no offset); None when absent or bad.

    An unreadable event_time never rejects an event: ESPF would drop it for good.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
