"""A PortaBilling JSON API client as the ESPF guide advises using it.

One session is opened and reused (a login per call would open a session each time); an
expired session is replaced by logging in again; calls toward PortaBilling are bounded in
number; server faults and network errors are retried with backoff; answers are cached
for a few seconds so that several handlers enriching the same event cost one set of calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from opennsps.http_client import LazySession

# Told of every HTTP call: method, seconds, and "ok", "fault" or "error".
CallObserver = Callable[[str, float, str], None]
SESSION_FAULTS = frozenset({"Server.Session.check_auth.auth_failed"})


class PortaBillingError(Exception):
    """PortaBilling could not answer the call; `retryable` says whether it may later."""

    def __init__(self, message: str, *, retryable: bool, faultcode: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.faultcode = faultcode


@dataclass(frozen=True)
class PortaBillingSettings:
    url: str  # e.g. https://portabilling.example.net (without /rest)
    login: str
    password: str | None = None
    token: str | None = None
    verify_tls: bool = True
    timeout: float = 10.0
    max_concurrency: int = 32
    attempts: int = 3
    backoff: float = 0.2
    cache_ttl: float = 5.0
    reference_cache_ttl: float = 300.0


class PortaBillingClient:
    def __init__(
        self,
        settings: PortaBillingSettings,
        clock: Callable[[], float] = time.monotonic,
        observe: CallObserver | None = None,
    ) -> None:
        if not settings.password and not settings.token:
            raise ValueError("PortaBilling credentials need a password or an API token")
        self.settings = settings
        self._clock = clock
        self._base_url = settings.url.rstrip("/")
        self._http = LazySession(
            timeout=settings.timeout,
            max_connections=settings.max_concurrency,
            verify_tls=settings.verify_tls,
        )
        self._session_id: str | None = None
        self._login_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        # key → (clock when answered, wall time the request was sent, answer, its TTL)
        self._cache: dict[str, tuple[float, float, dict[str, Any], float]] = {}
        self._pending: dict[str, tuple[float, asyncio.Future[dict[str, Any]]]] = {}
        self._swept_at = clock()
        self._observe = observe
        self.logins = 0
        self.calls = 0

    async def close(self) -> None:
        await self._http.close()

    async def call(
        self,
        method: str,
        params: dict[str, Any],
        *,
        cached: bool = True,
        fresh_after: float | None = None,
        reference: bool = False,
    ) -> dict[str, Any]:
        """Call `Service/method` and return its JSON answer (`{}` for an unknown entity).

        A cached (or in-flight) answer is shared only while it is younger than the cache
        TTL and, with `fresh_after` (a Unix time, e.g. the event's receipt), only if its
        request was sent after that moment: an event's enrichment must see the change that
        caused the event, never an answer read before it. A `reference` answer (a product,
        an access policy: definitions no event announces the change of) is kept for the
        reference TTL instead, whatever `fresh_after` says.
        """
        if not cached:
            return await self._call_with_retries(method, params)
        key = method + orjson.dumps(params, option=orjson.OPT_SORT_KEYS).decode()
        floor = fresh_after if fresh_after is not None and not reference else float("-inf")
        hit = self._cache.get(key)
        if hit is not None and self._clock() - hit[0] < hit[3] and hit[1] >= floor:
            return hit[2]
        # Concurrent identical calls share one request.
        waiting = self._pending.get(key)
        if waiting is not None and waiting[0] >= floor:
            return await asyncio.shield(waiting[1])
        sent_at = time.time()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[key] = (sent_at, future)
        try:
            answer = await self._call_with_retries(method, params)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; the waiters re-raise it
            raise
        finally:
            if self._pending.get(key, (0.0, None))[1] is future:
                del self._pending[key]
        future.set_result(answer)
        ttl = self.settings.reference_cache_ttl if reference else self.settings.cache_ttl
        self._remember(key, sent_at, answer, ttl)
        return answer

    def _remember(self, key: str, sent_at: float, answer: dict[str, Any], ttl: float) -> None:
        now = self._clock()
        previous = self._cache.get(key)
        if previous is not None and previous[1] > sent_at:
            return  # a newer answer is already there
        self._cache[key] = (now, sent_at, answer, ttl)
        # Expired answers are swept at most once per (short) TTL, so the cache holds about
        # two TTLs' worth of calls and the sweep costs nothing per call.
        if now - self._swept_at >= self.settings.cache_ttl:
            self._swept_at = now
            for stale in [k for k, entry in self._cache.items() if now - entry[0] >= entry[3]]:
                del self._cache[stale]

    async def _call_with_retries(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        last: PortaBillingError | None = None
        for attempt in range(self.settings.attempts):
            if attempt:
                await asyncio.sleep(self.settings.backoff * 2 ** (attempt - 1))
            try:
                return await self._call_once(method, params)
            except PortaBillingError as exc:
                if not exc.retryable:
                    raise
                last = exc
        assert last is not None
        raise last

    async def _call_once(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        session_id = await self._session()
        try:
            return await self._post(method, params, {"session_id": session_id})
        except PortaBillingError as exc:
            if exc.faultcode not in SESSION_FAULTS:
                raise
        # The session expired (or PortaBilling restarted): log in again, once.
        session_id = await self._session(replace=session_id)
        return await self._post(method, params, {"session_id": session_id})

    async def _session(self, replace: str | None = None) -> str:
        current = self._session_id
        if current is not None and current != replace:
            return current
        async with self._login_lock:
            if self._session_id is not None and self._session_id != replace:
                return self._session_id
            credentials: dict[str, Any] = {"login": self.settings.login}
            if self.settings.token:
                credentials["token"] = self.settings.token
            else:
                credentials["password"] = self.settings.password
            answer = await self._post("Session/login", credentials, None)
            session_id = answer.get("session_id")
            if not isinstance(session_id, str) or not session_id:
                raise PortaBillingError("Session/login returned no session_id", retryable=True)
            self._session_id = session_id
            self.logins += 1
            return session_id

    async def _post(
        self, method: str, params: dict[str, Any], auth_info: dict[str, Any] | None
    ) -> dict[str, Any]:
        fields = {"params": orjson.dumps(params).decode()}
        if auth_info is not None:
            fields["auth_info"] = orjson.dumps(auth_info).decode()
        async with self._slots:
            self.calls += 1
            started = time.perf_counter()
            try:
                answer = await self._http.send(
                    "POST", f"{self._base_url}/rest/{method}", data=fields
                )
            except TimeoutError:
                self._observed(method, started, "error")
                raise PortaBillingError(
                    f"{method}: no answer within {self.settings.timeout:g} s", retryable=True
                ) from None
            except aiohttp.ClientError as exc:
                self._observed(method, started, "error")
                raise PortaBillingError(
                    f"{method}: {type(exc).__name__}: {exc}", retryable=True
                ) from None
        self._observed(method, started, "ok" if answer.status == 200 else "fault")
        return _answer(method, answer.status, answer.content)

    def _observed(self, method: str, started: float, result: str) -> None:
        if self._observe is not None:
            self._observe(method, time.perf_counter() - started, result)


def _answer(method: str, status: int, content: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(content) if content else {}
    except orjson.JSONDecodeError:
        body = None
    if status == 200 and isinstance(body, dict):
        return body
    if isinstance(body, dict) and "faultcode" in body:
        code = str(body["faultcode"])
        message = f"{method}: {code}: {body.get('faultstring', '')}"
        # Client.* faults are our request's fault and will not change on a retry; the login
        # fault means wrong credentials.
        retryable = not code.startswith("Client.") and code != "Server.Session.login.auth_failed"
        raise PortaBillingError(message, retryable=retryable, faultcode=code)
    retryable = status >= 500 or status in (408, 429)
    text = content[:200].decode("utf-8", errors="replace")
    raise PortaBillingError(f"{method}: HTTP {status}: {text}", retryable=retryable)
