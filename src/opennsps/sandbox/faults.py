"""Fault injection for the sandbox: latency, error rates, session-expiry storms, ESPF outages.

Set at start (settings) or at run time (PUT /sandbox/faults). An API is named `rest` (the
whole PortaBilling JSON API), `Service/method` (one method), `espf` (the ESPF API) or
`hss` (the HSS stand-in).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

Distribution = Literal["fixed", "uniform", "exponential"]


@dataclass
class Latency:
    mean_ms: float = 0.0
    jitter_ms: float = 0.0
    distribution: Distribution = "uniform"

    def draw(self, rng: random.Random) -> float:
        if self.distribution == "fixed":
            return self.mean_ms
        if self.distribution == "exponential":
            return rng.expovariate(1 / self.mean_ms) if self.mean_ms > 0 else 0.0
        return max(0.0, rng.uniform(self.mean_ms - self.jitter_ms, self.mean_ms + self.jitter_ms))


@dataclass
class Faults:
    latency: dict[str, Latency] = field(default_factory=dict)
    error_rate: dict[str, float] = field(default_factory=dict)
    # A malformed answer: 200 with each of the answer's fields turned into text (a buggy
    # or hostile PortaBilling), for the PortaBilling API only.
    malformed_rate: dict[str, float] = field(default_factory=dict)
    espf_outage_until: float = 0.0
    seed: int | None = None
    injected_errors: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self._rng.seed(self.seed)

    async def delay(self, *apis: str) -> None:
        for api in apis:
            latency = self.latency.get(api)
            if latency is not None:
                await asyncio.sleep(latency.draw(self._rng) / 1000)

    def should_fail(self, *apis: str) -> bool:
        return self._drawn(self.error_rate, apis)

    def should_malform(self, *apis: str) -> bool:
        return self._drawn(self.malformed_rate, apis)

    def _drawn(self, rates: dict[str, float], apis: tuple[str, ...]) -> bool:
        for api in apis:
            rate = rates.get(api, 0.0)
            if rate and self._rng.random() < rate:
                self.injected_errors += 1
                return True
        return False

    def espf_down(self) -> bool:
        return time.monotonic() < self.espf_outage_until

    def update(self, change: dict[str, Any]) -> None:
        """Apply a JSON change; raises ValueError with a reason when it is not valid."""
        known = {"latency", "error_rate", "malformed_rate", "espf_outage_seconds", "clear"}
        unknown = set(change) - known
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        if change.get("clear"):
            self.latency.clear()
            self.error_rate.clear()
            self.malformed_rate.clear()
            self.espf_outage_until = 0.0
        for api, spec in (change.get("latency") or {}).items():
            if not isinstance(spec, dict):
                raise ValueError(f"latency.{api} must be an object")
            latency = Latency(
                mean_ms=float(spec.get("mean_ms", 0)),
                jitter_ms=float(spec.get("jitter_ms", 0)),
                distribution=spec.get("distribution", "uniform"),
            )
            if latency.distribution not in ("fixed", "uniform", "exponential"):
                raise ValueError("distribution must be fixed, uniform or exponential")
            if latency.mean_ms < 0 or latency.jitter_ms < 0:
                raise ValueError("latency must not be negative")
            self.latency[api] = latency
        for name in ("error_rate", "malformed_rate"):
            rates: dict[str, float] = getattr(self, name)
            for api, rate in (change.get(name) or {}).items():
                value = float(rate)
                if not 0 <= value <= 1:
                    raise ValueError(f"{name}.{api} must be between 0 and 1")
                rates[api] = value
        if "espf_outage_seconds" in change:
            seconds = float(change["espf_outage_seconds"])
            if seconds < 0:
                raise ValueError("espf_outage_seconds must not be negative")
            self.espf_outage_until = time.monotonic() + seconds

    def describe(self) -> dict[str, Any]:
        return {
            "latency": {api: vars(latency) for api, latency in self.latency.items()},
            "error_rate": dict(self.error_rate),
            "malformed_rate": dict(self.malformed_rate),
            "espf_outage_remaining_seconds": max(
                0.0, round(self.espf_outage_until - time.monotonic(), 1)
            ),
            "injected_errors": self.injected_errors,
        }
