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
            states = wait_for(lambda: settled(two.url), timeout=120, what="every delivery done")
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
