"""The request body of an NSPS connector (`Event` in the connector OpenAPI contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def nsps_event(
    *,
    event_id: str,
    event_type: str,
    variables: dict[str, Any],
    pb_data: dict[str, Any] | None,
    handler_id: str,
    status: str,
    created_at: datetime,
    updated_at: datetime,
) -> dict[str, Any]:
    """`data` is the ESPF event as received; `event_id` is the same on every retry."""
    return {
        "event_id": event_id,
        "data": {"event_type": event_type, "variables": variables},
        "pb_data": pb_data if pb_data is not None else {},
        "handler_id": handler_id,
        "status": status,
        "created_at": created_at.isoformat(),
        "updated_at": updated_at.isoformat(),
    }
