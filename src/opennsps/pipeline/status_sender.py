"""Sends the status outbox to PortaBilling's ESPF API, per source, never dropping a report:
a failure is retried with backoff (capped at 10 min) for as long as it takes; only a report
PortaBilling refuses for good (4xx other than auth) leaves the outbox, with its reason."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from opennsps import metrics
from opennsps.config import SourceConfig
from opennsps.logging import get_logger
from opennsps.pipeline.store_calls import StoreCalls
from opennsps.pipeline.wakeup import set_from_any_thread
from opennsps.portabilling.espf_client import EspfApiClient, EspfApiError, EspfApiSettings
from opennsps.store.outbox import OutboxEntry, Outcome, StatusOutbox

log = get_logger("opennsps.status")

MAX_BACKOFF_SECONDS = 600.0
# How long a claimed report stays claimed without being renewed: what another process waits
# before it sends the reports of a process that died while sending them. Reports still
# being sent are renewed every third of it.
LEASE = timedelta(seconds=30)
# Once woken by new reports, how long the sender lets more gather before it claims them
# (one claim for the reports of many outcomes, not one for each).
GATHER_SECONDS = 0.05


def espf_clients(sources: Mapping[str, SourceConfig]) -> dict[str, EspfApiClient]:
    clients = {}
    for name, source in sources.items():
        pb = source.portabilling
        if pb is None or pb.espf_api is None:
            continue
        api = pb.espf_api
        clients[name] = EspfApiClient(
            EspfApiSettings(
                url=api.url or pb.url,
                login=api.login,
                password=api.password.get_secret_value(),
                verify_tls=pb.verify_tls,
                timeout=pb.timeout,
            )
        )
    return clients


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2.0 ** min(attempts, 20), MAX_BACKOFF_SECONDS))


class StatusSender:
    def __init__(
        self,
        outbox: StatusOutbox,
        clients: Mapping[str, EspfApiClient],
        owner: str,
        *,
        poll_interval: float = 0.5,
        batch: int = 32,
        store_calls: StoreCalls | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lease: timedelta = LEASE,
    ) -> None:
        self.outbox = outbox
        self.clients = clients
        self.owner = owner
        self.poll_interval = poll_interval
        self.batch = batch
        self.db = store_calls or StoreCalls(on_loop=False)
        self.clock = clock
        self.lease = lease
        self._wake = asyncio.Event()
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False

    def start(self) -> None:
        self._running = True
        self._event_loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._loop(), name="status-sender")

    async def stop(self) -> None:
        self._running = False
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.db(self.outbox.release, self.owner, self.clock())
        for client in self.clients.values():
            await client.close()

    def wake(self) -> None:
        set_from_any_thread(self._wake, self._event_loop)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        taken_over_at = -math.inf
        while self._running:
            self._wake.clear()
            sent = 0
            try:
                if loop.time() - taken_over_at >= self.lease.total_seconds() / 4:
                    taken_over_at = loop.time()
                    taken = await self.db(self.outbox.take_over_expired, self.clock())
                    if taken:
                        log.warning("took over status reports whose lease expired", count=taken)
                now = self.clock()
                entries = await self.db(
                    self.outbox.claim, self.owner, self.batch, now, now + self.lease
                )
                await self._send_all(entries)
                sent = len(entries)
            except Exception:
                log.exception("sending provisioning statuses failed; trying again shortly")
            if sent >= self.batch:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
                    await asyncio.sleep(GATHER_SECONDS)

    async def _send_all(self, entries: list[OutboxEntry]) -> None:
        if not entries:
            return
        renewing = asyncio.create_task(self._renew([entry.id for entry in entries]))
        try:
            results = await asyncio.gather(
                *(self._send(entry) for entry in entries), return_exceptions=True
            )
            outcomes = [result for result in results if isinstance(result, Outcome)]
            for result in results:
                if isinstance(result, BaseException):
                    # Left claimed: sent again once its lease runs out.
                    log.error("sending a status report failed inside OpenNSPS", error=repr(result))
            # One transaction for the batch's bookkeeping, not one per report.
            await self.db(self.outbox.finish, outcomes, self.clock())
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renew(self, ids: list[int]) -> None:
        """While a batch is being sent (PortaBilling may be slow), keep its claim."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                await self.db(self.outbox.extend_leases, self.owner, ids, self.clock() + self.lease)
            except Exception:
                log.exception("renewing the claim on status reports failed")

    async def _send(self, entry: OutboxEntry) -> Outcome:
        client = self.clients.get(entry.source)
        if client is None:
            reason = (
                f"source {entry.source!r} has no ESPF API configured"
                f" (ingress.sources.{entry.source}.portabilling.espf_api)"
            )
            metrics.STATUS_REPORTS.labels("retry").inc()
            return Outcome(entry.id, "retry", reason, self.clock() + backoff(10))
        try:
            await client.set_status(entry.i_account, entry.group_name, entry.status, entry.error)  # type: ignore[arg-type]
        except EspfApiError as exc:
            if exc.retryable:
                metrics.STATUS_REPORTS.labels("retry").inc()
                log.warning(
                    "status report failed; will retry", account=entry.i_account, error=str(exc)
                )
                return Outcome(entry.id, "retry", str(exc), self.clock() + backoff(entry.attempts))
            metrics.STATUS_REPORTS.labels("refused").inc()
            log.error(
                "status report refused by PortaBilling", account=entry.i_account, error=str(exc)
            )
            return Outcome(entry.id, "refused", str(exc))
        metrics.STATUS_REPORTS.labels("sent").inc()
        return Outcome(entry.id, "sent")
