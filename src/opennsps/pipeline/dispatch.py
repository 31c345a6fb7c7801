"""One attempt of one delivery: enrich (late, with PortaBilling's current data), hand the
NSPS Event to the handler's connector, and decide what the outcome makes of the delivery."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from opennsps import tracing
from opennsps.config import HandlerConfig
from opennsps.connectors.base import AttemptResult, Connector
from opennsps.connectors.payload import nsps_event
from opennsps.connectors.templating import expression
from opennsps.domain.circuit import Signal
from opennsps.domain.deliveries import ESPF_STATUS, DeliveryState, NextStep, next_step
from opennsps.domain.outcomes import Outcome, OutcomeKind
from opennsps.domain.retry import RetrySchedule
from opennsps.domain.subjects import subject_of
from opennsps.domain.values import as_integer
from opennsps.ingress.redaction import REDACTED
from opennsps.logging import get_logger
from opennsps.pipeline.enrichment import Enrichment, EnrichmentUnavailable
from opennsps.portabilling.client import PortaBillingError
from opennsps.portabilling.espf_client import MAX_ERROR_LENGTH
from opennsps.portabilling.pb_data import with_service_password
from opennsps.store.deliveries import AttemptRecord, ClaimedDelivery, Completion, StatusReport

log = get_logger("opennsps.dispatch")
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s:]+:[^/@\s]*@")


def redact(text: str | None, secrets: tuple[str, ...]) -> str | None:
    """Text with the handler's secrets and any URL credentials replaced."""
    if not text:
        return text
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _URL_CREDENTIALS.sub(r"\1" + REDACTED + "@", text)


def handler_secrets(handler: HandlerConfig) -> tuple[str, ...]:
    if handler.http is not None and handler.http.token is not None:
        return (handler.http.token.get_secret_value(),)
    return ()


class Dispatcher:
    def __init__(
        self,
        enrichment: Enrichment,
        schedule_for: Callable[[HandlerConfig], RetrySchedule],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.enrichment = enrichment
        self.schedule_for = schedule_for
        self.clock = clock

    async def attempt(
        self,
        delivery: ClaimedDelivery,
        handler: HandlerConfig,
        connector: Connector | None,
        connector_error: str | None = None,
        *,
        probe: bool = False,
    ) -> Completion:
        """One attempt and its outcome. Whatever fails inside OpenNSPS during it is an
        attempt too: recorded with the error and counted toward the retry schedule, so a
        delivery can never be stuck without a record or a death. A circuit's `probe` that
        fails is not counted toward the delivery's schedule."""
        started_at = self.clock()
        started = time.perf_counter()
        traced = tracing.event_span(
            "opennsps.delivery",
            request_id=delivery.request_id,
            event_id=delivery.event_id,
            attributes={
                "opennsps.event_id": delivery.event_id,
                "opennsps.event_type": delivery.event_type,
                "opennsps.handler": handler.id,
                "opennsps.attempt": delivery.attempts,
                "opennsps.probe": probe,
            },
        )
        try:
            with traced as span:
                result, pb_data, sent_status = await self._try(
                    delivery, handler, connector, connector_error, started, started_at
                )
                if span is not None:
                    span.set_attribute("opennsps.outcome", result.outcome.kind.value)
        except Exception as exc:
            log.exception("attempt failed inside OpenNSPS", delivery=delivery.id)
            reason = f"OpenNSPS failed during this attempt: {type(exc).__name__}: {exc}"
            result, pb_data, sent_status = _failed(started, reason[:1000], False), None, None
        # The execution log's duration covers the whole attempt, enrichment included.
        total_ms = (time.perf_counter() - started) * 1000
        group = handler.status_group or getattr(connector, "status_group", None)
        schedule = self.schedule_for(handler)
        step = next_step(
            result.outcome,
            failures_before=delivery.failures,
            first_attempt_at=delivery.first_attempt_at,
            now=self.clock(),
            schedule=schedule,
            counted=not probe,
        )
        if probe and step.state is DeliveryState.PENDING:
            reason = f"circuit probe failed (not counted toward its retries): {step.reason}"
            step = replace(step, reason=reason)
        completion = self._completion(
            delivery, handler, result, started_at, pb_data, total_ms, sent_status, group, step
        )
        if sent_status is None:  # the connector was not reached: nothing said of its health
            return completion
        healthy = result.outcome.kind is not OutcomeKind.RETRY
        return replace(completion, health=Signal(healthy, probe, completion.attempt.error))

    def expire(
        self, delivery: ClaimedDelivery, handler: HandlerConfig, connector: Connector | None
    ) -> Completion:
        """Give up, without an attempt, a delivery that waited behind its handler's open
        circuit past its retry schedule's give-up age."""
        give_up = self.schedule_for(handler).give_up_after
        reason = (
            f"gave up without an attempt: waited more than {give_up} "
            "while the handler's circuit was open"
        )
        result = AttemptResult(Outcome(OutcomeKind.RETRY, reason), None, "", reason, 0.0)
        step = NextStep(DeliveryState.DEAD, None, delivery.failures, reason)
        group = handler.status_group or getattr(connector, "status_group", None)
        return self._completion(
            delivery, handler, result, self.clock(), None, 0.0, None, group, step
        )

    async def _try(
        self,
        delivery: ClaimedDelivery,
        handler: HandlerConfig,
        connector: Connector | None,
        connector_error: str | None,
        started: float,
        started_at: datetime,
    ) -> tuple[AttemptResult, dict[str, Any] | None, str | None]:
        pb_data: dict[str, Any] | None = None
        if connector is None:
            reason = connector_error or "the handler has no connector"
            return _failed(started, reason, True), None, None
        if handler.enrichment:
            try:
                parts = handler.pb_data_parts or getattr(connector, "pb_data_parts", None)
                with tracing.span("opennsps.enrich"):
                    pb_data = await self.enrichment.pb_data(
                        delivery.source,
                        delivery.event_type,
                        delivery.variables,
                        fresh_after=delivery.received_at.timestamp(),
                        parts=parts,
                    )
            except EnrichmentUnavailable as exc:
                return _failed(started, str(exc), True), None, None
            except PortaBillingError as exc:
                failed = _failed(started, f"enrichment failed: {exc}", not exc.retryable)
                return failed, None, None
        if handler.filter:
            skipped = _filter_says_skip(handler.filter, delivery, pb_data, started)
            if skipped is not None:
                return skipped, with_service_password(pb_data, None) if pb_data else None, None
        sent_pb_data: dict[str, Any] | None = None
        if pb_data is not None:
            # The handler gets the service password only if it asked; the execution log
            # never keeps it.
            wanted = handler.service_password
            sent_pb_data = pb_data if wanted else with_service_password(pb_data, None)
            pb_data = with_service_password(pb_data, REDACTED if wanted else None)
        sent_status = "queued" if delivery.failures == 0 else "retrying"
        body = nsps_event(
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            variables=delivery.variables,
            pb_data=sent_pb_data,
            handler_id=handler.id,
            status=sent_status,
            created_at=delivery.created_at,
            updated_at=started_at,
        )
        with tracing.span("opennsps.connector", {"opennsps.handler_type": handler.type}):
            result = await connector.deliver(
                body, request_id=delivery.request_id, unique_id=delivery.unique_id
            )
        return result, pb_data, sent_status

    def _completion(
        self,
        delivery: ClaimedDelivery,
        handler: HandlerConfig,
        result: AttemptResult,
        started_at: datetime,
        pb_data: dict[str, Any] | None,
        duration_ms: float,
        sent_status: str | None,
        status_group: str | None,
        step: NextStep,
    ) -> Completion:
        secrets = handler_secrets(handler)
        error = redact(result.error or _error_of(result.outcome), secrets)
        reason = redact(step.reason, secrets)
        attempt = AttemptRecord(
            started_at=started_at,
            duration_ms=duration_ms,
            status_code=result.status_code,
            outcome=step.state.value if step.state is not DeliveryState.PENDING else "retry",
            error=error,
            configuration_problem=result.outcome.configuration_problem,
            response_excerpt=redact(result.response_excerpt, secrets),
            pb_data=pb_data,
            subject=subject_of(delivery.variables, pb_data),
            sent_status=sent_status,
        )
        return Completion(
            delivery=delivery,
            attempt=attempt,
            state=step.state,
            failures=step.failures,
            next_attempt_at=step.next_attempt_at,
            last_error=None if step.state is DeliveryState.DELIVERED else reason,
            report=self._report(delivery, status_group, step.state, reason, handler.filter_status),
        )

    @staticmethod
    def _report(
        delivery: ClaimedDelivery,
        group: str | None,
        state: DeliveryState,
        reason: str | None,
        filter_status: str = "none",
    ) -> StatusReport | None:
        """The status to send to PortaBilling under `group` (the handler's status_group, or
        its connector's own), if any."""
        i_account = as_integer(delivery.variables.get("i_account"))
        if group is None or i_account is None:
            return None
        if state is DeliveryState.SKIPPED and filter_status == "none":
            return None
        status = ESPF_STATUS[state]
        # A retry is reported once, not on each of its attempts.
        if status == delivery.reported_status and status in {"RETRY", "IN_PROGRESS"}:
            return None
        return StatusReport(
            source=delivery.source,
            i_account=i_account,
            group_name=group,
            status=status,
            error=None if status == "OK" else (reason or "")[:MAX_ERROR_LENGTH],
            origin=f"handler:{delivery.handler_id}",
        )


def _error_of(outcome: Outcome) -> str | None:
    return None if outcome.kind is OutcomeKind.DELIVERED else outcome.reason


def _filter_says_skip(
    condition: str, delivery: ClaimedDelivery, pb_data: dict[str, Any] | None, started: float
) -> AttemptResult | None:
    """A skipped attempt when the handler's filter is false for this event; None when it
    holds. A filter that cannot be evaluated on the event's data is a configuration
    problem, retried (nothing is dropped while the operator fixes it)."""
    context = {
        "event_type": delivery.event_type,
        "variables": delivery.variables,
        "pb_data": with_service_password(pb_data, None) if pb_data else {},
        "i_account": as_integer(delivery.variables.get("i_account")),
    }
    try:
        holds = bool(expression(condition, "filter")(**context))
    except Exception as exc:
        reason = f"the handler's filter cannot be evaluated on this event: {exc}"
        return _failed(started, reason[:1000], True)
    if holds:
        return None
    reason = f"skipped: the filter {condition!r} is false for this event"
    return AttemptResult(
        Outcome(OutcomeKind.SKIPPED, reason),
        None,
        f"filter {condition!r} -> false",
        None,
        (time.perf_counter() - started) * 1000,
    )


def _failed(started: float, reason: str, configuration_problem: bool) -> AttemptResult:
    return AttemptResult(
        Outcome(OutcomeKind.RETRY, reason, configuration_problem=configuration_problem),
        None,
        "",
        reason,
        (time.perf_counter() - started) * 1000,
    )
