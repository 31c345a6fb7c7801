"""An NSPS connector written the way PortaOne's example connectors are: it validates the
enriched event strictly with pydantic and answers 422 to anything it cannot read. Every
delivery of a subscriber's whole life must pass it, the deletion included (PortaBilling
keeps a terminated account readable, closed, with its SIM card released)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from tests.pipeline.harness import ConnectorServer, http_handler, wait_for, wired


class AccountInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    i_account: int
    id: str
    i_customer: int
    i_product: int
    bill_status: Literal["open", "suspended", "inactive", "terminated"]
    blocked: bool


class SimInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    i_sim_card: int
    imsi: str
    status: str


class PbData(BaseModel):
    """pb_data as the connector OpenAPI contract has it: every part optional."""

    model_config = ConfigDict(extra="allow")
    account_info: AccountInfo | None = None
    sim_info: SimInfo | None = None
    prev_sim_info: SimInfo | None = None


class Data(BaseModel):
    event_type: str
    variables: dict[str, Any]


class StrictEvent(BaseModel):
    event_id: str
    data: Data
    pb_data: PbData

    @model_validator(mode="after")
    def _what_the_event_is_about(self) -> StrictEvent:
        """An account event needs the account; a SIM event a card (the new or the old)."""
        group = self.data.event_type.split("/")[0]
        if group == "Subscriber" and self.pb_data.account_info is None:
            raise ValueError("a Subscriber event without pb_data.account_info")
        if group == "SIM" and self.pb_data.sim_info is None and self.pb_data.prev_sim_info is None:
            raise ValueError("a SIM event without pb_data.sim_info or prev_sim_info")
        return self


def strictly(body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    try:
        StrictEvent.model_validate(body)
    except ValidationError as exc:
        error = {"message": str(exc)[:500], "error": "invalid_event", "type": "validation_error"}
        return 422, {}, orjson.dumps(error)
    return 200, {}, b"{}"


def test_every_delivery_of_a_life_passes_a_strict_connector_deletion_included(
    store_url: str, dataset_file: Path
) -> None:
    connector = ConnectorServer(decide=strictly)
    handlers = lambda c: [http_handler(c.url, events=["Subscriber/*", "SIM/*"])]  # noqa: E731
    with wired(store_url, dataset_file, handlers, connector) as (sandbox, gw, _):
        created = sandbox.post("/sandbox/accounts")
        i_account = created["events"][0]["variables"]["i_account"]
        account = f"/sandbox/accounts/{i_account}"
        sent = len(created["events"])
        for path in (f"{account}/sim", f"{account}/block", f"{account}/unblock", f"{account}/sim"):
            sent += len(sandbox.post(path)["events"])
        wait_for(lambda: len(connector.received) >= sent, timeout=60, what="the life delivered")
        deleted_events = httpx.delete(f"{sandbox.url}{account}", timeout=10)
        sent += len(deleted_events.raise_for_status().json()["events"])
        # both families: SIM/Replaced and SIM/Updated (the new card and the old) included
        assert sent == 15

        def all_delivered() -> bool:
            with gw.api() as api:
                states = api.get("/stats").json()["deliveries_by_state"]
            return states.get("delivered", 0) == sent and set(states) == {"delivered"}

        wait_for(all_delivered, timeout=60, what="every delivery, none refused")
        deleted = next(
            r["body"]
            for r in connector.received
            if r["body"]["data"]["event_type"] == "Subscriber/Deleted"
        )
        assert deleted["pb_data"]["account_info"]["bill_status"] == "terminated"
        assert deleted["pb_data"].get("sim_info") is None  # its card was released
