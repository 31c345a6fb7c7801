"""An NSPS connector written the way PortaOne's example connectors are: it validates the
enriched event strictly with pydantic and answers 422 to anything it cannot read. Every
delivery of a subscriber's whole life must pass it, the deletion included (PortaBilling
keeps a terminated account readable, closed, with its SIM card released)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

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
    model_config = ConfigDict(extra="allow")
    account_info: AccountInfo
    sim_info: SimInfo | None = None


class Data(BaseModel):
    event_type: str
    variables: dict[str, Any]


class StrictEvent(BaseModel):
    event_id: str
    data: Data
    pb_data: PbData


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
        for path in (f"{account}/sim", f"{account}/block", f"{account}/unblock"):
            sandbox.post(path)
        wait_for(lambda: len(connector.received) >= 4, timeout=60, what="four deliveries")
        httpx.delete(f"{sandbox.url}{account}", timeout=10).raise_for_status()

        def all_delivered() -> bool:
            with gw.api() as api:
                states = api.get("/stats").json()["deliveries_by_state"]
            return states.get("delivered", 0) == 5 and set(states) == {"delivered"}

        wait_for(all_delivered, timeout=60, what="five deliveries, none refused")
        deleted = next(
            r["body"]
            for r in connector.received
            if r["body"]["data"]["event_type"] == "Subscriber/Deleted"
        )
        assert deleted["pb_data"]["account_info"]["bill_status"] == "terminated"
        assert deleted["pb_data"].get("sim_info") is None  # its card was released
