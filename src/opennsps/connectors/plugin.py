"""In-process Python connectors: no HTTP hop, same outcomes.

A handler of type `python` names an entry point `package.module:factory`. The factory is
called once with the handler's `options` and returns a plug-in object with

    async def deliver(self, event: dict, *, request_id: str | None,
                      unique_id: str | None) -> dict | None

and optionally `async def close(self)`. Returning normally means delivered (a returned
`{"status": "IN_PROGRESS"}` means waiting for an asynchronous status); raising
`Rejected` means the event can never succeed (not retried); any other exception, or
running past the handler's timeout, is retried. The SDK's other errors
(opennsps.connector.errors) keep their meaning: `Unauthorized` is retried and flagged as a
configuration problem, `retry_after` is honoured. A class built on `opennsps.connector`
is itself such a factory.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from datetime import timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from opennsps.config import describe_errors
from opennsps.connector.errors import ConnectorError, Rejected, Unauthorized
from opennsps.connectors.base import EXCERPT_BYTES, AttemptResult
from opennsps.domain.outcomes import Outcome, OutcomeKind

__all__ = ["PluginConnector", "PluginLoadError", "Rejected", "load_plugin"]


class PluginLoadError(RuntimeError):
    pass


class Plugin(Protocol):
    async def deliver(
        self, event: dict[str, Any], *, request_id: str | None, unique_id: str | None
    ) -> dict[str, Any] | None: ...


def plugin_factory(entry_point: str) -> Any:
    """The object an entry point names (`package.module:Factory`), imported."""
    module_name, _, attribute = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute)
    except (ImportError, AttributeError) as exc:
        raise PluginLoadError(f"cannot load {entry_point}: {exc}") from exc


def check_plugin(entry_point: str, options: dict[str, Any]) -> None:
    """Without building it: the plug-in can be imported, and its options pass its
    `options_model` (a pydantic model class) when it declares one. PluginLoadError says
    what is wrong."""
    factory = plugin_factory(entry_point)
    model = getattr(factory, "options_model", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        try:
            model.model_validate(options)
        except ValidationError as exc:
            problems = "; ".join(describe_errors(exc))
            raise PluginLoadError(f"{entry_point} options: {problems}") from None


def load_plugin(entry_point: str, options: dict[str, Any]) -> Plugin:
    factory = plugin_factory(entry_point)
    try:
        plugin = factory(options)
    except Exception as exc:
        raise PluginLoadError(f"{entry_point} refused its options: {exc}") from exc
    if not callable(getattr(plugin, "deliver", None)):
        raise PluginLoadError(f"{entry_point} returned an object without a deliver() method")
    return plugin  # type: ignore[no-any-return]


class PluginConnector:
    def __init__(self, plugin: Plugin, timeout: float) -> None:
        self.plugin = plugin
        self.timeout = timeout
        group = getattr(plugin, "status_group", None)
        #: The plug-in's own status group (an SDK Connector's class attribute), used when
        #: its handler names none.
        self.status_group: str | None = group if isinstance(group, str) and group else None
        parts = getattr(plugin, "pb_data_parts", None)
        #: The parts of pb_data the plug-in reads (an SDK Connector's class attribute).
        self.pb_data_parts: tuple[str, ...] | None = (
            tuple(parts) if isinstance(parts, (tuple, list)) else None
        )

    async def close(self) -> None:
        closer = getattr(self.plugin, "close", None)
        if closer is not None:
            await closer()

    async def deliver(
        self, event: dict[str, Any], *, request_id: str | None, unique_id: str | None
    ) -> AttemptResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self.plugin.deliver(
                    event, request_id=request_id, unique_id=unique_id
                )
        except ConnectorError as exc:
            outcome = _outcome_of(exc)
            return _result(started, outcome, outcome.reason)
        except TimeoutError:
            reason = f"no answer within {self.timeout:g} s"
            return _result(started, Outcome(OutcomeKind.RETRY, reason), reason)
        except Exception as exc:  # a plug-in's failure is this attempt's outcome
            reason = f"{type(exc).__name__}: {exc}"[:EXCERPT_BYTES]
            return _result(started, Outcome(OutcomeKind.RETRY, reason), reason)
        waiting = isinstance(answer, dict) and str(answer.get("status", "")).upper() == (
            "IN_PROGRESS"
        )
        outcome = Outcome(
            OutcomeKind.WAITING if waiting else OutcomeKind.DELIVERED,
            "accepted; waiting for an asynchronous status" if waiting else "done",
        )
        excerpt = repr(answer)[:EXCERPT_BYTES] if answer is not None else ""
        return _result(started, outcome, None, excerpt)


def _outcome_of(exc: ConnectorError) -> Outcome:
    reason = f"{exc.error}: {exc}"[:EXCERPT_BYTES]
    if not exc.retryable:
        return Outcome(OutcomeKind.REJECTED, reason)
    after = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
    return Outcome(
        OutcomeKind.RETRY,
        reason,
        configuration_problem=isinstance(exc, Unauthorized),
        retry_after=after,
    )


def _result(
    started: float, outcome: Outcome, error: str | None, excerpt: str = ""
) -> AttemptResult:
    return AttemptResult(outcome, None, excerpt, error, (time.perf_counter() - started) * 1000)
