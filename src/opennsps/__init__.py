"""OpenNSPS: a self-hosted provisioning gateway for PortaBilling ESPF events."""

__version__ = "0.1.0"
