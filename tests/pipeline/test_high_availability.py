"""The reference HA deployment of docs/deployment.md, on this machine: two `opennsps serve`
processes on one PostgreSQL, behind a round-robin load balancer, the HSS connector's links
on the same PostgreSQL. PortaBilling's EventSender posts a burst of changes through the
balancer; one gateway is killed (SIGKILL) mid-burst; the other carries on. Nothing is
lost: every event is stored once and delivered, and the HSS agrees with PortaBilling
account by account (`opennsps reconcile` finds no drift)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.connectors.hss_support import PROVISIONING_KEY, hss_handler, hss_server, reconcile
from tests.pipeline.harness import api_get, gateway_config, sandbox_server, wait_for
from tests.support import GatewayProcess
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
FIRST, ACCOUNTS, CHANGED = 100_001, 200, 100
PREMIUM = 180  # the sandbox's access policy "LTE premium" (another HSS profile)


def settled(url: str) -> dict[str, int] | None:
    stats = api_get(url, "/stats")
    states: dict[str, int] = stats["deliveries_by_state"]
    busy = states.get("pending", 0) + states.get("in_flight", 0)
    return None if busy or stats["status_outbox_backlog"] else states


def unsettled(store_url: str, log: Path) -> str:
    """What is left to do, read from the store, and the surviving gateway's last log lines:
    the report a timeout carries, so that a failure says where the work stopped."""
    queries = {
        "deliveries": "SELECT id, entity_key, state, failures, attempts, next_attempt_at,"
        " lease_owner, lease_expires_at, last_error FROM deliveries"
        " WHERE state IN ('pending', 'in_flight') ORDER BY id LIMIT 20",
        "status outbox": "SELECT id, i_account, state, attempts, next_attempt_at, lease_owner,"
        " last_error FROM status_outbox WHERE state <> 'sent' ORDER BY id LIMIT 20",
        "circuits": "SELECT * FROM handler_circuits",
        "now": "SELECT now()",
    }
    engine = create_engine(store_url)
    try:
        with engine.connect() as connection:
            lines = [
                f"{name}: {[tuple(row) for row in connection.execute(text(query))]}"
                for name, query in queries.items()
            ]
    finally:
        engine.dispose()
    tail = log.read_text(errors="replace").splitlines()[-30:] if log.exists() else []
    return "\n".join([*lines, "the surviving gateway's log, last lines:", *tail])


def test_one_gateway_killed_mid_burst_the_other_carries_on_and_nothing_is_lost(
    postgres_url: str, dataset_file: Path, tmp_path: Path
) -> None:
    with (
        hss_server(dataset_file, provisioning_key=PROVISIONING_KEY) as hss,
        sandbox_server(dataset_file, rate=300, concurrency=8) as sandbox,
    ):
        handler = hss_handler(hss, tmp_path / "unused.db")
        handler["python"]["options"]["links"] = postgres_url  # the links shared too
        config = gateway_config(postgres_url, sandbox.url, [handler], lease_seconds=5)
        config["logging"] = {"level": "warning"}
        path = tmp_path / "opennsps.yaml"
        path.write_text(yaml.safe_dump(config))
        one = GatewayProcess(path, tmp_path / "one.log")
        two: GatewayProcess | None = None
        balancer: TcpProxy | None = None
        try:
            two = GatewayProcess(path, tmp_path / "two.log")
            balancer = TcpProxy("127.0.0.1", one.port, two.port)
            balancer.start()
            sandbox.point_sender_at(f"http://127.0.0.1:{balancer.port}/espf/events")

            # The initial load through both gateways: every account provisioned.
            code, output = reconcile(path, "--fix")
            assert code == 3 and f"enqueued {ACCOUNTS} repair event(s)" in output, output
            wait_for(lambda: settled(two.url) == {"delivered": ACCOUNTS}, 60, what="the load")

            # A burst of changes: accounts blocked and unblocked, a third re-priced.
            changes = 0
            for n in range(CHANGED):
                account = f"/sandbox/accounts/{FIRST + n}"
                steps = ["block", "unblock"] + (["access-policy"] if n % 3 == 0 else [])
                for step in steps:
                    body = {"i_access_policy": PREMIUM} if step == "access-policy" else None
                    sandbox.post(f"{account}/{step}", body)
                    changes += 1
                if n == CHANGED // 4:
                    # mid-burst: some delivered, most still coming
                    wait_for(
                        lambda: (
                            api_get(two.url, "/stats")["deliveries_by_state"].get("delivered", 0)
                            > ACCOUNTS + 20
                        ),
                        what="the burst under way",
                    )
                    one.kill()
            assert one.process.poll() is not None  # it really died mid-burst

            wait_for(
                lambda: sandbox.get("/sandbox/eventsender?limit=0")["queue"]["pending"] == 0,
                timeout=120,
                what="the EventSender's queue to empty",
            )
            try:
                states = wait_for(lambda: settled(two.url), timeout=240, what="every delivery done")
            except AssertionError as timeout:
                report = unsettled(postgres_url, tmp_path / "two.log")
                raise AssertionError(f"{timeout}\n{report}") from None
            sent = sandbox.get("/sandbox/eventsender?limit=0")["queue"]
            stored = api_get(two.url, "/stats")["last_hour"]["events_received"]
            workers = {a["worker"] for a in api_get(two.url, "/attempts", limit=1000)["items"]}
            code, output = reconcile(path)
        finally:
            if balancer is not None:
                balancer.close()
            one.stop()
            if two is not None:
                two.stop()
    assert set(states) == {"delivered"}, states  # nothing dead, nothing left behind
    assert stored >= ACCOUNTS + changes and stored == sent["delivered"] + ACCOUNTS, (stored, sent)
    assert len(workers) == 2  # both gateways delivered before the kill
    assert code == 0, output  # the HSS agrees with PortaBilling for every account
