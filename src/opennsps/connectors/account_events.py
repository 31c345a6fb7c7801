"""What a connector that provisions accounts needs of every event: an account and pb_data."""

from __future__ import annotations

from typing import Any

from opennsps.connector import Event, Rejected
from opennsps.domain.events import event_group

#: What a connector answers for a SIM inventory event about a card no account holds.
NO_ACCOUNT = "no account: the SIM card is not assigned, nothing to provision"


def enriched_account(event: Event, system: str) -> tuple[int, dict[str, Any]] | None:
    """The event's i_account and pb_data. None for a SIM event about a card no account holds
    (SIM/Created, a released card's SIM/Updated): there is nothing to provision. Rejected
    (with what to fix) when an account or pb_data is missing otherwise."""
    if event.i_account is None and event_group(event.event_type) == "SIM":
        return None
    if event.i_account is None:
        raise Rejected(f"{event.event_type} carries no i_account; {system} needs an account")
    if event.pb_data is None:
        raise Rejected(f"the {system} connector needs enriched events: turn enrichment on")
    return event.i_account, event.pb_data
