"""Connectors: how a delivery reaches an external system (HTTP NSPS contract, ...)."""
