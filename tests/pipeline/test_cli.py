"""`opennsps handlers|pause|resume|replay|deliveries` against a running gateway's database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from opennsps.cli import app as cli
from opennsps.config import Settings
from opennsps.pipeline import cli as pipeline_cli
from tests.pipeline.harness import (
    CONNECTOR_TOKEN,
    FAST_RETRY,
    Answer,
    connector_server,
    gateway,
    gateway_config,
    http_handler,
    sandbox_server,
    wait_for,
)

FIRST = 100_001
runner = CliRunner()


def run(config: Path, *args: str) -> str:
    result = runner.invoke(cli, [*args, "-c", str(config)])
    assert result.exit_code == 0, result.output
    return result.output


def test_pipeline_commands(store_url: str, dataset_file: Path, tmp_path: Path) -> None:
    healthy = {"yes": False}

    def decide(_: dict[str, Any]) -> Answer:
        return (200, {}, b"{}") if healthy["yes"] else (500, {}, b"down")

    short = {**FAST_RETRY, "fast_attempts": 1, "give_up_after_seconds": 0.3}
    with (
        sandbox_server(dataset_file) as sandbox,
        connector_server(decide=decide) as connector,
    ):
        data = gateway_config(
            store_url, sandbox.url, [http_handler(connector.url, retry=short, priority=3)]
        )
        config = tmp_path / "opennsps.yaml"
        config.write_text(yaml.safe_dump(data))
        with gateway(Settings.model_validate(data)) as gw:
            sandbox.point_sender_at(f"{gw.url}/espf/events")
            listed = run(config, "handlers", "list")
            assert "hss" in listed and "enabled" in listed and "config" in listed
            shown = run(config, "handlers", "show", "hss")
            assert CONNECTOR_TOKEN not in shown and "[redacted]" in shown

            sandbox.emit("Subscriber/Updated", i_account=FIRST)
            wait_for(
                lambda: "dead" in run(config, "deliveries", "list", "--state", "dead"),
                what="a dead delivery in the CLI",
            )
            healthy["yes"] = True
            # A bulk replay can be looked at first: a count and a sample, nothing replayed.
            preview = run(config, "replay", "--dead", "hss", "--dry-run")
            assert "1 dead deliveries would be replayed" in preview
            assert "Subscriber/Updated" in preview and str(FIRST) in preview
            assert "replayed" not in preview.replace("would be replayed", "")
            with gw.api() as api:
                assert api.get("/stats").json()["deliveries_by_state"] == {"dead": 1}
                dead_preview = api.post("/dead/replay", json={"dry_run": True}).json()
            assert dead_preview["matching"] == 1
            assert dead_preview["sample"][0]["i_account"] == FIRST
            # On a terminal it asks; "no" replays nothing.
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(pipeline_cli, "on_a_terminal", lambda: True)
                refused = runner.invoke(
                    cli, ["replay", "--dead", "hss", "-c", str(config)], input="n\n"
                )
                assert refused.exit_code == 1 and "Replay 1? [y/N]" in refused.output
                with gw.api() as api:
                    assert api.get("/stats").json()["deliveries_by_state"] == {"dead": 1}
                agreed = runner.invoke(
                    cli, ["replay", "--dead", "hss", "-c", str(config)], input="y\n"
                )
            assert "replayed 1 delivery" in agreed.output
            wait_for(
                lambda: "delivered" in run(config, "deliveries", "list", "--state", "delivered"),
                what="delivery after the CLI replay",
            )

            assert "all processing: paused" in run(config, "pause")
            with gw.api() as api:
                assert api.get("/pause").json() == {"paused": True}
                run(config, "resume")
                assert api.get("/pause").json() == {"paused": False}
                run(config, "pause", "hss")
                assert api.get("/handlers/hss").json()["paused"] is True
                run(config, "resume", "hss")
                run(config, "handlers", "disable", "hss")
                assert api.get("/handlers/hss").json()["status"] == "disabled"
                run(config, "handlers", "archive", "hss")
                assert api.get("/handlers/hss").json()["status"] == "archived"
                run(config, "handlers", "enable", "hss")

            events = run(config, "events", "list")
            assert "Subscriber/Updated" in events
            counted = run(config, "replay", "--type", "Subscriber/*", "--dry-run", "--limit", "5")
            assert "1 events would be replayed" in counted and "replayed 1" not in counted
            replayed = run(config, "replay", "--type", "Subscriber/*", "--account", str(FIRST))
            assert "replayed 1 delivery" in replayed

    missing = runner.invoke(cli, ["handlers", "show", "nope", "-c", str(config)])
    assert missing.exit_code == 1
    assert "no handler with id 'nope'" in missing.output
    both = runner.invoke(cli, ["replay", "--dead", "hss", "--delivery", "1", "-c", str(config)])
    assert both.exit_code == 2
    single = runner.invoke(cli, ["replay", "--delivery", "1", "--dry-run", "-c", str(config)])
    assert single.exit_code == 2 and "--dry-run is for --dead and filter options" in single.output
