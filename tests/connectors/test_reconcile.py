"""`opennsps reconcile`: finds drift injected into the HSS and repairs it with --fix."""

from __future__ import annotations

from pathlib import Path

import yaml

from opennsps.config import Settings
from tests.connectors.hss_support import PROVISIONING_KEY, hss_handler, hss_server, reconcile
from tests.connectors.test_hss_connector import settled
from tests.pipeline.harness import gateway, gateway_config, sandbox_server, wait_for

ACCOUNTS = 200  # tests/conftest.py's dataset


def test_reconcile_reports_drift_and_fix_repairs_it(
    store_url: str, dataset_file: Path, tmp_path: Path
) -> None:
    with (
        hss_server(dataset_file, provisioning_key=PROVISIONING_KEY) as hss,
        sandbox_server(dataset_file) as sandbox,
    ):
        data = gateway_config(store_url, sandbox.url, [hss_handler(hss, tmp_path / "links.db")])
        config = tmp_path / "opennsps.yaml"
        config.write_text(yaml.safe_dump(data))
        with gateway(Settings.model_validate(data)) as gw:
            # The HSS starts empty: every account with a SIM is drift.
            code, output = reconcile(config)
            assert code == 3, output
            assert f"{ACCOUNTS} account(s) checked" in output
            assert f"{ACCOUNTS} drift" in output
            assert "is missing from the HSS" in output
            assert "run again with --fix" in output
            assert hss.subscribers() == {}  # without --fix nothing changes

            code, output = reconcile(config, "--fix")
            assert code == 3 and f"enqueued {ACCOUNTS} repair event(s)" in output
            states = wait_for(lambda: settled(gw), timeout=60, what="repairs delivered")
            assert states == {"delivered": ACCOUNTS}
            assert len(hss.subscribers()) == ACCOUNTS
            code, output = reconcile(config)
            assert code == 0, output
            assert f"{ACCOUNTS} agree, 0 drift" in output

            # Inject drift behind OpenNSPS's back: a lost subscriber, a wrong flag, a wrong
            # MSISDN and a subscriber nobody provisioned.
            subscribers = sorted(hss.subscribers().values(), key=lambda s: s["imsi"])
            lost, barred, renumbered = subscribers[0], subscribers[1], subscribers[2]
            hss.state.delete_subscriber(lost["subscriber_id"])
            hss.state.update_subscriber(barred["subscriber_id"], {"enabled": not barred["enabled"]})
            hss.state.update_subscriber(renumbered["subscriber_id"], {"msisdn": "999"})
            auc = hss.state.create_auc(
                {"ki": "0" * 32, "opc": "1" * 32, "amf": "8000", "imsi": "001019999999999"}
            )
            orphan = {"imsi": "001019999999999", "default_apn": 1, "apn_list": "1"}
            hss.state.create_subscriber({**orphan, "auc_id": auc["auc_id"]})
            code, output = reconcile(config)
            assert code == 3
            assert "3 drift" in output
            assert f"IMSI {lost['imsi']} is missing from the HSS" in output
            assert f"IMSI {barred['imsi']} enabled: HSS has" in output
            assert f"IMSI {renumbered['imsi']} msisdn: HSS has '999'" in output
            assert "belongs to no account: HSS subscriber" in output
            assert "(IMSI 001019999999999)" in output

            code, output = reconcile(config, "--fix")
            assert "enqueued 3 repair event(s)" in output
            wait_for(lambda: settled(gw), timeout=60, what="repairs delivered")
            hss.state.delete_subscriber(
                hss.subscribers()["001019999999999"]["subscriber_id"]
            )  # the orphan is for the operator to remove
            code, output = reconcile(config)
            assert code == 0, output
            assert f"{ACCOUNTS} agree, 0 drift" in output
            # Repair events are ESPF-like events of the source, visible and searchable.
            with gw.api() as api:
                repairs = api.get("/events", params={"limit": 500}).json()["items"]
            assert len(repairs) == ACCOUNTS + 3
            assert all(event["i_event"] < 0 for event in repairs)


def test_reconcile_explains_what_it_cannot_do(store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "opennsps.yaml"
    data = gateway_config(store_url, "http://127.0.0.1:9", [])
    config.write_text(yaml.safe_dump(data))
    code, output = reconcile(config)
    assert code == 1
    assert "no handler with id 'hss'" in output
