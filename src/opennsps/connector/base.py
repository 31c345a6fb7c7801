"""The connector base class: one class serves in-process (a `python` handler) and as an
NSPS-compatible HTTP service (`opennsps connector serve MODULE:CLASS`).

A connector subclasses `Connector` and implements `handle(event, context)`:
return normally when the external system holds the change, return `Waiting(...)` when
the result will be reported later, raise `Rejected` for an event that can never succeed
and any other `ConnectorError` (or exception) for one worth retrying.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import structlog
from pydantic import ValidationError

from opennsps.connector.errors import Rejected
from opennsps.connector.gateway import GatewayClient, GatewayError, GatewaySettings, Status
from opennsps.connector.model import Event
from opennsps.logging import get_logger, trace_ids_bound

GATEWAY_OPTION = "opennsps_api"


@dataclass(frozen=True)
class Waiting:
    """The external system accepted the change and will finish it later."""

    message: str = "accepted; the result will be reported later"


@dataclass
class Context:
    """What a connector knows about the current request besides the event."""

    request_id: str
    unique_id: str
    status_group: str | None
    gateway: GatewayClient | None = None
    log: structlog.typing.FilteringBoundLogger = field(
        default_factory=lambda: get_logger("opennsps.connector")
    )

    async def report_status(
        self,
        event: Event,
        status: Status,
        *,
        error: str | None = None,
        group: str | None = None,
    ) -> None:
        """Report the account's provisioning status to PortaBilling through OpenNSPS; an
        OK or FAILED also finishes the delivery that was waiting for it."""
        gateway = self._gateway()
        chosen = group or self.status_group
        if chosen is None or event.i_account is None:
            raise GatewayError("a status needs an account and a status group")
        await gateway.report_status(
            event.i_account,
            chosen,
            status,
            error=error,
            event_id=event.event_id,
            handler_id=event.handler_id,
        )

    async def schedule_event(
        self, event_type: str, variables: dict[str, Any], start_time: datetime
    ) -> None:
        """Ask PortaBilling's ESPF to send `event_type` at `start_time`."""
        await self._gateway().schedule_event(event_type, variables, start_time)

    def _gateway(self) -> GatewayClient:
        if self.gateway is None:
            raise GatewayError(
                f"this connector has no '{GATEWAY_OPTION}' option (url and token of OpenNSPS)"
            )
        return self.gateway


class Connector:
    """Subclass it; read your settings from `self.options` in `__init__`."""

    #: The PortaBilling service group this connector's statuses belong to (e.g. "HSS").
    status_group: ClassVar[str | None] = None
    #: The parts of an account event's pb_data this connector reads (e.g. account_info,
    #: sim_info); None: all. The gateway skips the PortaBilling calls for the others.
    pb_data_parts: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})
        gateway = self.options.pop(GATEWAY_OPTION, None)
        self.gateway = (
            GatewayClient(GatewaySettings.model_validate(gateway)) if gateway is not None else None
        )

    async def handle(self, event: Event, context: Context) -> Waiting | dict[str, Any] | None:
        raise NotImplementedError

    async def close(self) -> None:
        if self.gateway is not None:
            await self.gateway.close()

    def context(self, request_id: str | None, unique_id: str | None) -> Context:
        return Context(
            request_id=request_id or uuid.uuid4().hex,
            unique_id=unique_id or str(uuid.uuid4()),
            status_group=self.status_group,
            gateway=self.gateway,
        )

    async def deliver(
        self, event: dict[str, Any], *, request_id: str | None, unique_id: str | None
    ) -> dict[str, Any] | None:
        """The in-process plug-in entry (see opennsps.connectors.plugin)."""
        try:
            parsed = Event.model_validate(event)
        except ValidationError as exc:
            raise Rejected(f"the event does not match the NSPS Event schema: {exc}") from exc
        context = self.context(request_id, unique_id)
        with trace_ids_bound(context.request_id, context.unique_id):
            answer = await self.handle(parsed, context)
        if isinstance(answer, Waiting):
            return {"status": "IN_PROGRESS", "message": answer.message}
        return answer
