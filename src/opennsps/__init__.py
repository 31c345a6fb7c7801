"""OpenNSPS: a self-hosted provisioning gateway for PortaBilling ESPF events."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("opennsps")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
