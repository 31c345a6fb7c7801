"""Connectors written with the SDK, as a user would write them (used by the SDK tests)."""

from __future__ import annotations

from typing import Any

from opennsps.connector import (
    Connector,
    Context,
    Event,
    RateLimited,
    Rejected,
    Unauthorized,
    Unavailable,
    Waiting,
)


class Echo(Connector):
    """Does what `variables.behave` says; remembers every event it handled."""

    status_group = "ECHO"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.handled: list[Event] = []

    async def handle(self, event: Event, context: Context) -> Waiting | dict[str, Any] | None:
        self.handled.append(event)
        context.log.info("echo handling", event_id=event.event_id)
        behave = event.variables.get("behave", "ok")
        if behave == "reject":
            raise Rejected("this event can never succeed")
        if behave == "unavailable":
            raise Unavailable("the element is down")
        if behave == "busy":
            raise RateLimited("slow down", retry_after=7)
        if behave == "unauthorized":
            raise Unauthorized("the element refused our key")
        if behave == "crash":
            raise RuntimeError("a bug")
        if behave == "wait":
            return Waiting()
        return {"seen": event.i_account}
