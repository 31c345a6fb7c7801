"""The HSS connector for PyHSS; handler entry point `opennsps.connectors.hss:HssConnector`."""

from opennsps.connectors.hss.connector import HssConnector
from opennsps.connectors.hss.desired import ApnProfile, HssOptions

__all__ = ["ApnProfile", "HssConnector", "HssOptions"]
