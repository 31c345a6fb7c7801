"""Scenarios and the `opennsps sandbox` command, against a running sandbox."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opennsps.cli import app as cli
from opennsps.sandbox.scenarios import ScenarioError, run_scenario
from tests.sandbox.conftest import Receiver, start_sandbox

runner = CliRunner()


def test_lifecycle_delivers_every_event_it_causes(dataset_file: Path, receiver: Receiver) -> None:
    progress: list[tuple[int, int]] = []
    for sandbox in start_sandbox(dataset_file, url=receiver.url, rate=500):
        report = run_scenario(
            "lifecycle",
            sandbox.url,
            accounts=5,
            rate=200,
            on_progress=lambda d, t, q: progress.append((d, t)),
        )
    assert report.changes == 35 and report.failed_changes == 0 and report.drained
    # per subscriber (docs/sandbox.md's table): created 1, SIM 3, product 2, block 2,
    # unblock 2, new SIM 4 (the old card disposed too), delete 3
    assert report.events == {
        "Subscriber/Created": 5,
        "Subscriber/Updated": 25,
        "SIM/Replaced": 15,
        "SIM/Updated": 35,
        "Subscriber/Deleted": 5,
    }
    assert report.queue["delivered"] == 85 == len(receiver.received)
    assert progress[-1] == (35, 35)


@pytest.mark.parametrize(("name", "changes"), [("bulk-product-change", 20), ("mixed-day", 60)])
def test_other_scenarios(dataset_file: Path, receiver: Receiver, name: str, changes: int) -> None:
    for sandbox in start_sandbox(dataset_file, url=receiver.url, rate=500):
        report = run_scenario(name, sandbox.url, accounts=20, rate=500)
    assert report.changes + report.failed_changes == changes
    assert report.drained and report.queue["delivered"] == sum(report.events.values())


def test_scenarios_refuse_what_the_dataset_cannot_hold(dataset_file: Path) -> None:
    for sandbox in start_sandbox(dataset_file):
        with pytest.raises(ScenarioError, match="needs 5000 free SIM cards"):
            run_scenario("lifecycle", sandbox.url, accounts=2500, rate=10)
        with pytest.raises(ScenarioError, match="has 200"):
            run_scenario("mixed-day", sandbox.url, accounts=1000, rate=10)
        with pytest.raises(ScenarioError, match="unknown scenario"):
            run_scenario("nope", sandbox.url, accounts=1, rate=10)


def test_sandbox_generate_and_scenario_commands(tmp_path: Path, receiver: Receiver) -> None:
    out = tmp_path / "cli.db"
    generated = runner.invoke(
        cli, ["sandbox", "generate", "--out", str(out), "--accounts", "50", "--seed", "3"]
    )
    assert generated.exit_code == 0, generated.output
    assert "50 accounts, 10 customers" in generated.output
    with sqlite3.connect(out) as db:
        assert db.execute("SELECT COUNT(*) FROM accounts").fetchone()[0] == 50
    for sandbox in start_sandbox(out, url=receiver.url, rate=500):
        ran = runner.invoke(
            cli,
            [
                "sandbox",
                "scenario",
                "bulk-product-change",
                "--url",
                sandbox.url,
                "--accounts",
                "10",
                "--rate",
                "100",
            ],
        )
    assert ran.exit_code == 0, ran.output
    assert "SIM/Updated" in ran.output and "20 delivered" in ran.output
    bad = runner.invoke(cli, ["sandbox", "scenario", "nope", "--url", "http://127.0.0.1:9"])
    assert bad.exit_code == 2


def test_the_same_seed_gives_the_same_data(tmp_path: Path) -> None:
    from opennsps.sandbox.dataset import generate, iccid_of

    dumps = []
    for name in ("a.db", "b.db"):
        generate(tmp_path / name, 300, seed=9)
        with sqlite3.connect(tmp_path / name) as db:
            dumps.append(
                db.execute(
                    "SELECT i_account, id, bill_status, blocked, i_product, balance"
                    " FROM accounts ORDER BY 1"
                ).fetchall()
            )
    assert dumps[0] == dumps[1]
    iccid = iccid_of(12345)
    assert len(iccid) == 20 and luhn_valid(iccid) and luhn_valid("79927398713")


def luhn_valid(number: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit * 2 > 9 else digit * 2
        total += digit
    return total % 10 == 0
