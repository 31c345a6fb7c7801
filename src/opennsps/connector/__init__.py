"""The OpenNSPS connector SDK: write an NSPS-compatible connector in a few lines.

    from opennsps.connector import Connector, Context, Event, Rejected

    class Crm(Connector):
        status_group = "CRM"

        async def handle(self, event: Event, context: Context) -> None:
            if event.i_account is None:
                raise Rejected("no account in this event")
            ...  # call the external system

Run it in-process (a handler of type `python`, entry point `module:Crm`) or as its own
service (`opennsps connector serve module:Crm`). See docs/connectors.md.
"""

from opennsps.connector.base import Connector, Context, Waiting
from opennsps.connector.errors import (
    ConnectorError,
    NotFound,
    RateLimited,
    Rejected,
    ServiceError,
    Unauthorized,
    Unavailable,
)
from opennsps.connector.gateway import GatewayError
from opennsps.connector.model import Event, EventData
from opennsps.connector.service import create_app

__all__ = [
    "Connector",
    "ConnectorError",
    "Context",
    "Event",
    "EventData",
    "GatewayError",
    "NotFound",
    "RateLimited",
    "Rejected",
    "ServiceError",
    "Unauthorized",
    "Unavailable",
    "Waiting",
    "create_app",
]
