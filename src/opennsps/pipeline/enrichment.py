"""Enrichment per source: each PortaBilling environment has its own API client (one
session, one cache), shared by every handler that enriches its events."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opennsps import metrics
from opennsps.config import PortaBillingConfig, SourceConfig
from opennsps.logging import get_logger
from opennsps.portabilling.client import PortaBillingClient, PortaBillingSettings
from opennsps.portabilling.pb_data import Enricher

log = get_logger("opennsps.enrichment")


class EnrichmentUnavailable(Exception):
    """The event's source has no PortaBilling API configured."""


@dataclass
class SourceHealth:
    """What this process saw of one PortaBilling API: its latest answers."""

    calls: int = 0
    failures: int = 0
    last_ok_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_failure: str | None = None
    last_latency_ms: float | None = None

    def observe(self, method: str, seconds: float, result: str) -> None:
        metrics.PORTABILLING_CALLS.labels(method, result).inc()
        metrics.PORTABILLING_LATENCY.labels(method).observe(seconds)
        now = datetime.now(UTC)
        self.calls += 1
        self.last_latency_ms = round(seconds * 1000, 1)
        if result == "ok":
            self.last_ok_at = now
        else:
            self.failures += 1
            self.last_failure_at = now
            self.last_failure = f"{method}: {result}"

    def view(self) -> dict[str, Any]:
        healthy = self.last_failure_at is None or (
            self.last_ok_at is not None and self.last_ok_at > self.last_failure_at
        )
        return {
            "healthy": healthy if self.calls else None,
            "calls": self.calls,
            "failures": self.failures,
            "last_ok_at": self.last_ok_at.isoformat() if self.last_ok_at else None,
            "last_failure_at": self.last_failure_at.isoformat() if self.last_failure_at else None,
            "last_failure": self.last_failure,
            "last_latency_ms": self.last_latency_ms,
        }


def client_settings(config: PortaBillingConfig) -> PortaBillingSettings:
    return PortaBillingSettings(
        url=config.url,
        login=config.login,
        password=config.password.get_secret_value() if config.password else None,
        token=config.token.get_secret_value() if config.token else None,
        verify_tls=config.verify_tls,
        timeout=config.timeout,
        max_concurrency=config.max_concurrency,
        attempts=config.attempts,
        cache_ttl=config.cache_ttl,
        reference_cache_ttl=config.reference_cache_ttl,
    )


class Enrichment:
    def __init__(self, sources: Mapping[str, SourceConfig]) -> None:
        self.clients: dict[str, PortaBillingClient] = {}
        self.health: dict[str, SourceHealth] = {}
        self._enrichers: dict[str, Enricher] = {}
        for name, source in sources.items():
            if source.portabilling is None:
                continue
            health = self.health[name] = SourceHealth()
            client = PortaBillingClient(
                client_settings(source.portabilling), observe=health.observe
            )
            self.clients[name] = client
            self._enrichers[name] = Enricher(client)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()

    async def pb_data(
        self,
        source: str,
        event_type: str,
        variables: dict[str, Any],
        *,
        fresh_after: float | None = None,
        parts: Collection[str] | None = None,
    ) -> dict[str, Any]:
        enricher = self._enrichers.get(source)
        if enricher is None:
            raise EnrichmentUnavailable(
                f"source {source!r} has no PortaBilling API configured"
                f" (ingress.sources.{source}.portabilling); set it, or turn enrichment off"
                " for this handler"
            )
        return await enricher.pb_data(event_type, variables, fresh_after=fresh_after, parts=parts)
