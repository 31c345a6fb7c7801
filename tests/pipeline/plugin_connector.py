"""An in-process connector plug-in used by the tests (entry point
`tests.pipeline.plugin_connector:create`): it records what it gets, and rejects events of
accounts listed in its `reject_accounts` option."""

from __future__ import annotations

from typing import Any

from opennsps.connectors.plugin import Rejected

RECEIVED: list[dict[str, Any]] = []


class RecordingPlugin:
    def __init__(self, reject_accounts: list[int]) -> None:
        self.reject_accounts = set(reject_accounts)

    async def deliver(
        self, event: dict[str, Any], *, request_id: str | None, unique_id: str | None
    ) -> dict[str, Any] | None:
        account = event["data"]["variables"].get("i_account")
        if account in self.reject_accounts:
            raise Rejected(f"account {account} is not provisioned here")
        RECEIVED.append({**event, "request_id": request_id})
        return None


def create(options: dict[str, Any]) -> RecordingPlugin:
    return RecordingPlugin(list(options.get("reject_accounts", [])))
