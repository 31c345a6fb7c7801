"""The RADIUS connector for FreeRADIUS's SQL backend; handler entry point
`opennsps.connectors.radius:RadiusConnector`."""

from opennsps.connectors.radius.connector import RadiusConnector
from opennsps.connectors.radius.desired import RadiusOptions

__all__ = ["RadiusConnector", "RadiusOptions"]
