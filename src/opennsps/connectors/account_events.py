"""What a connector that provisions accounts needs of every event: an account and pb_data."""

from __future__ import annotations

from typing import Any

from opennsps.connector import Event, Rejected


def enriched_account(event: Event, system: str) -> tuple[int, dict[str, Any]]:
    """The event's i_account and pb_data; Rejected (with what to fix) when either is missing."""
    if event.i_account is None:
        raise Rejected(f"{event.event_type} carries no i_account; {system} needs an account")
    if event.pb_data is None:
        raise Rejected(f"the {system} connector needs enriched events: turn enrichment on")
    return event.i_account, event.pb_data
