"""Prometheus metrics of the process (one registry per process, as Prometheus expects)."""

from __future__ import annotations

import platform
from functools import lru_cache

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from opennsps import __version__
from opennsps.domain.events import KNOWN_EVENT_TYPES

# A `_created` series beside every counter and histogram doubles what Prometheus stores
# and nothing here reads it.
disable_created_metrics()  # type: ignore[no-untyped-call]

BUILD_INFO = Gauge(
    "opennsps_build_info",
    "Always 1; the labels say which OpenNSPS and Python this process runs.",
    ["version", "python"],
)
BUILD_INFO.labels(__version__, platform.python_version()).set(1)

EVENTS_RECEIVED = Counter(
    "opennsps_events_received_total",
    "ESPF ingress requests by event type and outcome.",
    ["event_type", "outcome"],
)
_KNOWN_TYPES = frozenset(KNOWN_EVENT_TYPES)


def event_type_label(event_type: str) -> str:
    """The event type as a label: the known ones as they are, custom ones as `Custom/*`,
    anything else `other` (ESPF accepts any event type; a label must stay bounded)."""
    if event_type in _KNOWN_TYPES or not event_type:
        return event_type
    return "Custom/*" if event_type.startswith("Custom/") else "other"


@lru_cache(maxsize=4096)
def events_received(event_type: str, outcome: str) -> Counter:
    """The EVENTS_RECEIVED series of one event type and outcome (looked up once each)."""
    return EVENTS_RECEIVED.labels(event_type_label(event_type), outcome)


INGRESS_LATENCY = Histogram(
    "opennsps_ingress_latency_seconds",
    "Time from the start of an ESPF request to its answer.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STORE_COMMIT_LATENCY = Histogram(
    "opennsps_store_commit_seconds",
    "Duration of one group-commit transaction (insert and commit).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
STORE_COMMIT_BATCH = Histogram(
    "opennsps_store_commit_batch_size",
    "Items written by one group-commit transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
STORE_COMMIT_FAILURES = Counter(
    "opennsps_store_commit_failures_total",
    "Group-commit transactions that failed (the callers were answered 503).",
)
STORE_UP = Gauge(
    "opennsps_store_up",
    "1 when the last store write or probe succeeded, else 0.",
)


def observe_commit(size: int, seconds: float, ok: bool) -> None:
    STORE_COMMIT_BATCH.observe(size)
    STORE_COMMIT_LATENCY.observe(seconds)
    if not ok:
        STORE_COMMIT_FAILURES.inc()
    STORE_UP.set(1 if ok else 0)


DELIVERIES = Counter(
    "opennsps_deliveries_total",
    "Delivery attempts by handler and outcome (delivered, waiting, rejected, retry, dead).",
    ["handler", "outcome"],
)
END_TO_END_LATENCY = Histogram(
    "opennsps_end_to_end_latency_seconds",
    "Time from an event's receipt to its delivery to a handler.",
    ["handler"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600, 86400),
)
QUEUE_DEPTH = Gauge(
    "opennsps_queue_depth",
    "Deliveries by handler and state (refreshed every few seconds).",
    ["handler", "state"],
)
CIRCUIT_STATE = Gauge(
    "opennsps_handler_circuit_state",
    "A handler's circuit: 0 closed, 1 half-open (probing), 2 open (deliveries wait).",
    ["handler"],
)
CIRCUIT_OPENED = Counter(
    "opennsps_handler_circuit_opened_total",
    "Times a handler's circuit opened (counted by the process that opened it).",
    ["handler"],
)
OLDEST_PENDING_AGE = Gauge(
    "opennsps_oldest_pending_seconds",
    "Age of the oldest pending delivery.",
)
PORTABILLING_CALLS = Counter(
    "opennsps_portabilling_calls_total",
    "PortaBilling API calls by method and result (ok, fault, error).",
    ["method", "result"],
)
PORTABILLING_LATENCY = Histogram(
    "opennsps_portabilling_call_seconds",
    "Duration of one PortaBilling API call.",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STATUS_OUTBOX_BACKLOG = Gauge(
    "opennsps_status_outbox_backlog",
    "Provisioning statuses not yet taken by PortaBilling's ESPF API.",
)
STATUS_REPORTS = Counter(
    "opennsps_status_reports_total",
    "Status reports sent to the ESPF API by result (sent, retry, refused).",
    ["result"],
)
