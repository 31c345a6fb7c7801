"""What the store takes in and gives back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opennsps.domain.events import IncomingEvent


class StoreUnavailable(RuntimeError):
    """The store could not commit in time; the caller should answer 503."""

    sqlstate: str | None = None  # the database's error code, when it gave one


class EventNotStorable(ValueError):
    """The database refuses this event's values (e.g. text it cannot hold); never retry."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    event_id: str
    source: str
    i_env: int | None
    event: IncomingEvent
    raw_body: str
    received_at: datetime
    request_id: str | None
    unique_id: str | None


@dataclass(frozen=True, slots=True)
class EventWriteOutcome:
    """`event_id` is the stored event's id; for a duplicate, the one stored first."""

    event_id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class RejectedRequest:
    received_at: datetime
    source: str | None
    http_status: int
    error: str
    reason: str
    method: str
    path: str
    remote_addr: str | None
    headers: dict[str, str]
    body: str | None
    body_truncated: bool
    request_id: str | None
    unique_id: str | None


@dataclass(frozen=True, slots=True)
class StoredRejectedRequest:
    id: int
    request: RejectedRequest


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    event_id: str
    source: str
    i_env: int | None
    i_event: int
    event_type: str
    variables: dict[str, Any]
    raw_body: str
    entity_key: str | None
    event_time: datetime | None
    received_at: datetime
    request_id: str | None
    unique_id: str | None
