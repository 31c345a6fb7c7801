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

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Where each name lives: imported on first use, so that `opennsps --help` (which reaches
# `opennsps.connector.cli`) and a plug-in that needs only part of the SDK do not import
# the HTTP service, aiohttp and the rest.
_HOMES = {
    "Connector": "base",
    "Context": "base",
    "Waiting": "base",
    "ConnectorError": "errors",
    "NotFound": "errors",
    "RateLimited": "errors",
    "Rejected": "errors",
    "ServiceError": "errors",
    "Unauthorized": "errors",
    "Unavailable": "errors",
    "GatewayError": "gateway",
    "Event": "model",
    "EventData": "model",
    "create_app": "service",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{home}"), name)
