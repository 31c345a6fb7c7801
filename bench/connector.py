"""A minimal NSPS connector for benchmarks (run as its own process): answers 200 at once
and records, per event, the time from the gateway's receipt (the payload's created_at) to
its arrival here. POST /outage {"down": true} makes it answer 503 until told otherwise;
it counts the events of one account that arrive out of i_event order, and the most
requests it answered in any one second."""

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
down = False
refused = 0
last_i_event: dict[int, int] = {}
out_of_order = 0
per_second: dict[int, int] = {}


async def events(request: Request) -> Response:
    global refused, out_of_order
    body = orjson.loads(await request.body())
    if down:
        refused += 1
        return Response(b'{"message":"down"}', status_code=503, media_type="application/json")
    now = datetime.now(UTC)
    created = datetime.fromisoformat(body["created_at"])
    latencies.append((now - created).total_seconds())
    seen.add(body["event_id"])
    second = int(now.timestamp())
    per_second[second] = per_second.get(second, 0) + 1
    variables = body.get("data", {}).get("variables", {})
    account, i_event = variables.get("i_account"), variables.get("i_event")
    if isinstance(account, int) and isinstance(i_event, int):
        if i_event < last_i_event.get(account, 0):
            out_of_order += 1
        last_i_event[account] = i_event
    return Response(b"{}", media_type="application/json")


async def outage(request: Request) -> Response:
    global down
    down = bool(orjson.loads(await request.body())["down"])
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
                "refused": refused,
                "out_of_order": out_of_order,
                "max_per_second": max(per_second.values(), default=0),
            }
        ),
        media_type="application/json",
    )


async def reset(_: Request) -> Response:
    global refused, out_of_order
    latencies.clear()
    seen.clear()
    last_i_event.clear()
    per_second.clear()
    refused = out_of_order = 0
    return Response(b"{}", media_type="application/json")


app = Starlette(
    routes=[
        Route("/events", events, methods=["POST"]),
        Route("/stats", stats),
        Route("/reset", reset, methods=["POST"]),
        Route("/outage", outage, methods=["POST"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
