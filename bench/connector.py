"""A minimal NSPS connector for benchmarks (run as its own process): answers 200 at once
and records, per event, the time from the gateway's receipt (the payload's created_at) to
its arrival here."""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

latencies: list[float] = []
seen: set[str] = set()


async def events(request: Request) -> Response:
    body = orjson.loads(await request.body())
    created = datetime.fromisoformat(body["created_at"])
    latencies.append((datetime.now(UTC) - created).total_seconds())
    seen.add(body["event_id"])
    return Response(b"{}", media_type="application/json")


async def stats(_: Request) -> Response:
    ordered = sorted(latencies) or [0.0]

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

    return Response(
        orjson.dumps(
            {
                "requests": len(latencies),
                "events": len(seen),
                "p50_ms": round(statistics.median(ordered) * 1000, 2),
                "p99_ms": pct(0.99),
                "max_ms": round(ordered[-1] * 1000, 2),
            }
        ),
        media_type="application/json",
    )


async def reset(_: Request) -> Response:
    latencies.clear()
    seen.clear()
    return Response(b"{}", media_type="application/json")


app = Starlette(
    routes=[
        Route("/events", events, methods=["POST"]),
        Route("/stats", stats),
        Route("/reset", reset, methods=["POST"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
