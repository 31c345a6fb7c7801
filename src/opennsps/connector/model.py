"""The NSPS Event a connector receives (shared/reference/nsps-connector-openapi.json).

Unknown fields are kept, not refused: PortaBilling and OpenNSPS may add fields later.
`pb_data` stays a plain dict because its content depends on the event type.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventData(BaseModel):
    model_config = ConfigDict(extra="allow")
    event_type: str = Field(min_length=1)
    variables: dict[str, Any] = Field(default_factory=dict)


class Event(BaseModel):
    model_config = ConfigDict(extra="allow")
    event_id: str = Field(min_length=1)
    data: EventData
    handler_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    status: str | None = None
    pb_data: dict[str, Any] | None = None

    @property
    def event_type(self) -> str:
        return self.data.event_type

    @property
    def variables(self) -> dict[str, Any]:
        return self.data.variables

    @property
    def i_account(self) -> int | None:
        """The account the event is about, from its variables or the enriched data."""
        for value in (
            self.data.variables.get("i_account"),
            ((self.pb_data or {}).get("account_info") or {}).get("i_account"),
        ):
            if value is None:
                continue
            try:
                return int(value)
            except (TypeError, ValueError):
                continue
        return None
