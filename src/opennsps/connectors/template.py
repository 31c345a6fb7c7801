"""The template connector: one REST call per event, described in YAML with Jinja2.

For each event the most specific `calls` entry whose pattern matches the event type (and
whose `when` expression, if it has one, holds) is rendered
with `event` (the NSPS Event), `pb_data`, `variables`, `event_type`, `event_id`,
`i_account` and `secrets`, then sent. `success` is an expression over `status`, `body`
(parsed JSON, or None) and `headers`; when it is false a 5xx, 408, 425 or 429 answer is
retried and anything else is rejected with the answer as the reason. An event type with
no entry is delivered without a call (nothing to do). docs/connectors.md has examples.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from opennsps.connectors.base import EXCERPT_BYTES, AttemptResult
from opennsps.connectors.templating import Compiled, TemplateError, expression
from opennsps.domain.outcomes import Outcome, OutcomeKind, classify
from opennsps.domain.routing import matches
from opennsps.http_client import Answer, LazySession

DEFAULT_SUCCESS = "200 <= status < 300"
MAX_CONNECTIONS = 16  # to one system: a handler's max_concurrency is 16 by default


@dataclass(frozen=True)
class TemplateCall:
    pattern: str
    method: str
    url: Compiled
    headers: Compiled
    body: Compiled | None
    success: Any
    when: Any = None


def specificity(pattern: str) -> tuple[bool, int, str]:
    """The order calls are tried in: an exact event type before any pattern, a pattern with
    more literal text before one with less, then by the text. It does not depend on the
    order the calls were written in: PostgreSQL (JSONB) does not keep that order."""
    return ("*" in pattern, -len(pattern.replace("*", "")), pattern)


def compile_calls(calls: Mapping[str, Mapping[str, Any]]) -> list[TemplateCall]:
    """Raises TemplateError naming the call and field that cannot be compiled; the calls
    come back in the order they are tried (`specificity`)."""
    compiled = []
    for pattern, call in sorted(calls.items(), key=lambda item: specificity(item[0])):
        where = f"calls.{pattern}"
        compiled.append(
            TemplateCall(
                pattern=pattern,
                method=str(call.get("method", "POST")).upper(),
                url=Compiled(call["url"], f"{where}.url"),
                headers=Compiled(call.get("headers") or {}, f"{where}.headers"),
                body=Compiled(call["body"], f"{where}.body") if "body" in call else None,
                success=expression(call.get("success") or DEFAULT_SUCCESS, f"{where}.success"),
                when=expression(call["when"], f"{where}.when") if call.get("when") else None,
            )
        )
    return compiled


class TemplateConnector:
    def __init__(
        self,
        calls: Mapping[str, Mapping[str, Any]],
        *,
        base_url: str | None,
        secrets: Mapping[str, str],
        timeout: float,
        verify_tls: bool = True,
    ) -> None:
        self.calls = compile_calls(calls)
        self.secrets = dict(secrets)
        self.base_url = (base_url or "").rstrip("/")
        self._http = LazySession(
            timeout=timeout, max_connections=MAX_CONNECTIONS, verify_tls=verify_tls
        )

    async def close(self) -> None:
        await self._http.close()

    def _absolute(self, url: str) -> str:
        """A call's URL: as written when absolute, else below base_url."""
        if url.startswith(("http://", "https://")) or not self.base_url:
            return url
        return f"{self.base_url}/{url.lstrip('/')}"

    async def deliver(
        self, event: dict[str, Any], *, request_id: str | None, unique_id: str | None
    ) -> AttemptResult:
        started = time.perf_counter()
        event_type = str(event.get("data", {}).get("event_type", ""))
        context = self._context(event)
        try:
            call = _chosen(self.calls, event_type, context)
        except TemplateError as exc:
            reason = f"template: {exc}"
            return _result(started, Outcome(OutcomeKind.REJECTED, reason), None, reason)
        if call is None:
            return _result(started, Outcome(OutcomeKind.DELIVERED, "no call"), None, None)
        try:
            url = str(call.url.render(context))
            headers = {str(k): str(v) for k, v in call.headers.render(context).items()}
            body = call.body.render(context) if call.body is not None else None
        except TemplateError as exc:
            reason = f"template: {exc}"
            return _result(started, Outcome(OutcomeKind.REJECTED, reason), None, reason)
        headers.update({k: v for k, v in _trace(request_id, unique_id).items() if v})
        if body is not None and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"  # the body is sent as JSON
        try:
            answer = await self._http.send(  # a redirect is the system's answer to judge
                call.method,
                self._absolute(url),
                headers=headers,
                data=orjson.dumps(body) if body is not None else None,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] if str(exc) else "no answer in time"
            return _result(started, classify(None, error=error), None, error)
        return self._judge(started, call, answer)

    def _context(self, event: dict[str, Any]) -> dict[str, Any]:
        variables = event.get("data", {}).get("variables") or {}
        pb_data = event.get("pb_data") or {}
        return {
            "event": event,
            "event_id": event.get("event_id"),
            "event_type": event.get("data", {}).get("event_type"),
            "variables": variables,
            "pb_data": pb_data,
            "i_account": variables.get("i_account")
            or (pb_data.get("account_info") or {}).get("i_account"),
            "secrets": self.secrets,
        }

    @staticmethod
    def _judge(started: float, call: TemplateCall, response: Answer) -> AttemptResult:
        excerpt = response.content[:EXCERPT_BYTES].decode("utf-8", errors="replace")
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = None
        try:
            passed = bool(call.success(status=response.status, body=body, headers=response.headers))
        except Exception as exc:  # a success expression that fails on this answer
            reason = f"calls.{call.pattern}.success: {exc}"
            return _result(started, Outcome(OutcomeKind.REJECTED, reason), response, reason)
        if passed:
            outcome = Outcome(OutcomeKind.DELIVERED, f"HTTP {response.status}")
            return _result(started, outcome, response, None, excerpt)
        classified = classify(response.status, retry_after=response.headers.get("Retry-After"))
        if classified.kind is OutcomeKind.DELIVERED:  # 2xx, but the condition says no
            reason = f"HTTP {response.status}: the success condition is false"
            classified = Outcome(OutcomeKind.REJECTED, reason)
        return _result(started, classified, response, classified.reason, excerpt)


def _chosen(
    calls: list[TemplateCall], event_type: str, context: Mapping[str, Any]
) -> TemplateCall | None:
    """The first call whose pattern matches the event type and whose `when` holds."""
    for call in calls:
        if not matches(call.pattern, event_type):
            continue
        if call.when is None:
            return call
        try:
            holds = bool(call.when(**context))
        except Exception as exc:  # a condition that fails on this event's data
            raise TemplateError(f"calls.{call.pattern}.when: {exc}") from None
        if holds:
            return call
    return None


def _trace(request_id: str | None, unique_id: str | None) -> dict[str, str | None]:
    return {"x-b3-traceid": request_id, "x-request-id": unique_id}


def _result(
    started: float,
    outcome: Outcome,
    response: Answer | None,
    error: str | None,
    excerpt: str = "",
) -> AttemptResult:
    status = response.status if response is not None else None
    return AttemptResult(outcome, status, excerpt, error, (time.perf_counter() - started) * 1000)
