"""A small HTTP/1.1 load generator for loopback benchmarks (run as its own process).

Closed loop: N keep-alive connections send back to back for a fixed time (throughput).
Open loop: requests are scheduled at a fixed rate and latency is measured from the
scheduled time, so a slow server cannot hide its queueing (no coordinated omission).
Every loop is bounded by count and time; only 127.0.0.1 is allowed as a target.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import orjson

MAX_REQUESTS = 2_000_000


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


@dataclass
class Report:
    mode: str
    path: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    errors: int


class RequestFactory:
    def __init__(
        self,
        method: str,
        host: str,
        path: str,
        headers: list[str],
        body: str | None,
        start: int,
        accounts: int = 1,
        first_account: int = 100_001,
    ) -> None:
        self.accounts = accounts
        self.first_account = first_account
        self.head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(
            h + "\r\n" for h in headers
        )
        self.body = body
        self.counter = itertools.count(start)

    def next(self) -> bytes:
        if self.body is None:
            return (self.head + "\r\n").encode()
        n = next(self.counter)
        account = self.first_account + n % self.accounts
        payload = self.body.replace("{n}", str(n)).replace("{account}", str(account)).encode()
        return (self.head + f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def closed_loop(
    host: str, port: int, factory: RequestFactory, concurrency: int, duration: float
) -> tuple[Tally, float]:
    tally = Tally()
    started = time.perf_counter()
    deadline = started + duration

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline and len(tally.latencies) < MAX_REQUESTS:
                sent = time.perf_counter()
                try:
                    status = await exchange(reader, writer, factory.next())
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    tally.errors += 1
                    return
                tally.latencies.append(time.perf_counter() - sent)
                tally.statuses[status] = tally.statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return tally, time.perf_counter() - started


async def open_loop(
    host: str, port: int, factory: RequestFactory, rate: float, duration: float, connections: int
) -> tuple[Tally, float]:
    tally = Tally()
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(host, port))
    total = min(int(rate * duration), MAX_REQUESTS)
    started = time.perf_counter()

    async def one(scheduled: float) -> None:
        reader, writer = await idle.get()
        try:
            status = await exchange(reader, writer, factory.next())
        except (OSError, asyncio.IncompleteReadError, ValueError):
            tally.errors += 1
            return
        finally:
            idle.put_nowait((reader, writer))
        tally.latencies.append(time.perf_counter() - scheduled)
        tally.statuses[status] = tally.statuses.get(status, 0) + 1

    tasks = []
    for i in range(total):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(scheduled)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration + 60)
    elapsed = time.perf_counter() - started
    while not idle.empty():
        idle.get_nowait()[1].close()
    return tally, elapsed


def summarize(mode: str, path: str, tally: Tally, seconds: float) -> Report:
    ordered = sorted(tally.latencies) or [0.0]

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return Report(
        mode=mode,
        path=path,
        requests=len(tally.latencies),
        seconds=round(seconds, 3),
        rps=round(len(tally.latencies) / seconds, 1) if seconds else 0.0,
        p50_ms=round(statistics.median(ordered) * 1000, 3),
        p99_ms=round(pct(0.99), 3),
        max_ms=round(ordered[-1] * 1000, 3),
        statuses=tally.statuses,
        errors=tally.errors,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="POST")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument(
        "--body",
        help="request body; {n} becomes a unique increasing number, {account} an account id",
    )
    parser.add_argument("--start", type=int, default=1)
    parser.add_argument("--accounts", type=int, default=1, help="{account} cycles over this many")
    parser.add_argument("--first-account", type=int, default=100_001)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, help="open loop at this many requests/s")
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()

    parts = urlsplit(args.url)
    if parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
        sys.exit("loadgen only targets loopback addresses")
    host, port = parts.hostname, parts.port or 80
    factory = RequestFactory(
        args.method,
        f"{host}:{port}",
        parts.path or "/",
        args.header,
        args.body,
        args.start,
        args.accounts,
        args.first_account,
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.rate:
        tally, seconds = asyncio.run(
            open_loop(host, port, factory, args.rate, args.duration, args.concurrency)
        )
        report = summarize(f"open@{args.rate:g}/s", parts.path, tally, seconds)
    else:
        tally, seconds = asyncio.run(
            closed_loop(host, port, factory, args.concurrency, args.duration)
        )
        report = summarize(f"closed@{args.concurrency}", parts.path, tally, seconds)
    sys.stdout.write(orjson.dumps(asdict(report), option=orjson.OPT_NON_STR_KEYS).decode() + "\n")


if __name__ == "__main__":
    main()
