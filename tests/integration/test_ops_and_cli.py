"""Operations endpoints and the CLI, against a real server and a real store."""

from __future__ import annotations

import platform
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from opennsps.app import create_app
from opennsps.cli import app as cli
from opennsps.config import HandlerConfig, PipelineConfig, StoreConfig
from opennsps.store.event_store import EventStore
from tests.support import basic_header, event_body, running, settings_for

runner = CliRunner()


def test_health_ready_and_metrics(gateway: str) -> None:
    assert httpx.get(f"{gateway}/health").json() == {"status": "Healthy"}
    ready = httpx.get(f"{gateway}/ready")
    assert ready.status_code == 200 and ready.json()["store"] == "ok"
    httpx.post(f"{gateway}/espf/events", json=event_body(1), headers=basic_header())
    httpx.post(f"{gateway}/espf/events", json=event_body(1), headers={})
    text = httpx.get(f"{gateway}/metrics").text
    assert (
        'opennsps_events_received_total{event_type="Subscriber/Created",outcome="accepted"}' in text
    )
    assert 'opennsps_events_received_total{event_type="",outcome="unauthorized"}' in text
    assert "opennsps_ingress_latency_seconds_bucket" in text
    assert "opennsps_store_commit_seconds_bucket" in text
    assert f'opennsps_build_info{{python="{platform.python_version()}",version="' in text
    assert "_created" not in text  # no creation-time series beside every counter


def test_the_event_type_label_stays_bounded(gateway: str) -> None:
    for n, event_type in enumerate(["Custom/Anything1", "Custom/Anything2", "Weird/Thing"]):
        body = event_body(100 + n, event_type, i_account=7)
        answer = httpx.post(f"{gateway}/espf/events", json=body, headers=basic_header())
        assert answer.status_code == 200
    text = httpx.get(f"{gateway}/metrics").text
    assert 'opennsps_events_received_total{event_type="Custom/*",outcome="accepted"}' in text
    assert 'opennsps_events_received_total{event_type="other",outcome="accepted"}' in text
    assert "Anything1" not in text and "Weird/Thing" not in text


def test_unknown_routes_answer_in_the_error_shape(gateway: str) -> None:
    response = httpx.get(f"{gateway}/nothing-here")
    assert response.status_code == 404
    assert set(response.json()) == {"message", "error", "type"}
    wrong_method = httpx.get(f"{gateway}/espf/events")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["type"] == "validation_error"


def config_file(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump({"store": {"url": store_url}}))
    return path


def test_db_upgrade_is_idempotent(tmp_path: Path, store_url: str) -> None:
    config = config_file(tmp_path, store_url)
    first = runner.invoke(cli, ["db", "upgrade", "-c", str(config)])
    assert first.exit_code == 0, first.output
    assert "upgraded from empty to 0007" in first.output
    second = runner.invoke(cli, ["db", "upgrade", "-c", str(config)])
    assert "already at 0007" in second.output
    # -c before the command works too (docs/cli.md: every command takes it)
    before = runner.invoke(cli, ["-c", str(config), "db", "upgrade"])
    assert before.exit_code == 0 and "already at 0007" in before.output


def test_events_list_and_show(
    gateway: str, store: EventStore, store_url: str, tmp_path: Path
) -> None:
    headers = basic_header()
    for i_event, kind in [(1, "Subscriber/Created"), (2, "SIM/Updated"), (3, "SIM/Replaced")]:
        response = httpx.post(
            f"{gateway}/espf/events", json=event_body(i_event, kind), headers=headers
        )
        assert response.status_code == 200
    config = str(config_file(tmp_path, store_url))

    listed = runner.invoke(cli, ["events", "list", "-c", config, "--type", "SIM/*"])
    assert listed.exit_code == 0, listed.output
    assert "SIM/Replaced" in listed.output and "SIM/Updated" in listed.output
    assert "Subscriber/Created" not in listed.output
    assert "2 event(s)" in listed.output

    limited = runner.invoke(cli, ["events", "list", "-c", config, "--limit", "1", "--since", "1h"])
    assert "1 event(s)" in limited.output and "SIM/Replaced" in limited.output
    future = runner.invoke(cli, ["events", "list", "-c", config, "--since", "2999-01-01"])
    assert "0 event(s)" in future.output
    bad = runner.invoke(cli, ["events", "list", "-c", config, "--since", "last tuesday"])
    assert bad.exit_code == 2 and "duration" in bad.output

    event_id = store.list_events(limit=1)[0].event_id
    shown = runner.invoke(cli, ["events", "show", event_id, "-c", config])
    assert shown.exit_code == 0, shown.output
    assert orjson.loads(shown.output)["event_type"] == "SIM/Replaced"
    missing = runner.invoke(cli, ["events", "show", "no-such-id", "-c", config])
    assert missing.exit_code == 1


def test_rejected_list(gateway: str, store_url: str, tmp_path: Path) -> None:
    httpx.post(f"{gateway}/espf/events", json=event_body(1), headers=basic_header(password="x"))
    config = str(config_file(tmp_path, store_url))
    table = runner.invoke(cli, ["rejected", "list", "-c", config])
    assert table.exit_code == 0, table.output
    assert "401" in table.output and "unauthorized" in table.output
    full = runner.invoke(cli, ["rejected", "list", "-c", config, "--full"])
    assert '"authorization": "Basic [redacted]"' in full.output


@pytest.mark.parametrize("url", ["sqlite:////proc/no/such/dir/x.db"])
def test_cli_reports_an_unusable_store(tmp_path: Path, url: str) -> None:
    result = runner.invoke(cli, ["events", "list", "-c", str(config_file(tmp_path, url))])
    assert result.exit_code == 1
    assert "cannot open the store" in result.output


def test_a_wrong_method_names_every_method_the_path_takes(gateway: str) -> None:
    """Several routes share /api/v1/handlers/{id} (one per method): Allow lists them all."""
    answer = httpx.patch(f"{gateway}/api/v1/handlers/x", timeout=10)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "DELETE, GET, PUT"
    assert answer.json()["type"] == "validation_error"


def test_db_current_and_downgrade(tmp_path: Path, store_url: str) -> None:
    config = str(config_file(tmp_path, store_url))
    assert runner.invoke(cli, ["db", "upgrade", "-c", config]).exit_code == 0
    current = runner.invoke(cli, ["db", "current", "-c", config])
    assert current.exit_code == 0 and "schema 0007 (up to date)" in current.output
    refused = runner.invoke(cli, ["db", "downgrade", "0006", "-c", config], input="n\n")
    assert refused.exit_code == 1  # asked first; "no" changes nothing
    down = runner.invoke(cli, ["db", "downgrade", "0006", "--yes", "-c", config])
    assert down.exit_code == 0 and "downgraded from 0007 to 0006" in down.output
    behind = runner.invoke(cli, ["db", "current", "-c", config])
    assert "schema 0006 (behind: run opennsps db upgrade to 0007)" in behind.output
    assert "to 0007" in runner.invoke(cli, ["db", "upgrade", "-c", config]).output


def test_db_backup_copies_a_running_sqlite_store(
    gateway: str, store: EventStore, store_url: str, tmp_path: Path
) -> None:
    config = str(config_file(tmp_path, store_url))
    target = tmp_path / "backups" / "copy.db"
    if not store_url.startswith("sqlite"):
        refused = runner.invoke(cli, ["db", "backup", str(target), "-c", config])
        assert refused.exit_code == 1 and "pg_dump" in refused.output
        return
    for i_event in range(1, 6):
        answer = httpx.post(
            f"{gateway}/espf/events", json=event_body(i_event), headers=basic_header()
        )
        assert answer.status_code == 200
    made = runner.invoke(cli, ["db", "backup", str(target), "-c", config])
    assert made.exit_code == 0, made.output
    assert "checked" in made.output
    again = runner.invoke(cli, ["db", "backup", str(target), "-c", config])
    assert again.exit_code == 1 and "exists already" in again.output
    # Restored: the copy is a store with every event the original had.
    restored = EventStore(StoreConfig(url=f"sqlite:///{target}"))
    try:
        assert restored.upgrade() == ("0007", "0007")
        copied = {e.event_id for e in restored.list_events(limit=100)}
    finally:
        restored.close()
    assert copied == {e.event_id for e in store.list_events(limit=100)} and len(copied) == 5


@pytest.mark.postgres
def test_the_documented_postgresql_backup_procedure_restores_everything(
    postgres_admin_url: str, tmp_path: Path
) -> None:
    """docs/operations.md's procedure, run as written: pg_dump of a live store, pg_restore
    into an empty database, and OpenNSPS finds every event and delivery there."""
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.fail("pg_dump and pg_restore are not installed (Debian postgresql-client)")
    base = postgres_admin_url.rpartition("/")[0]
    names = [f"opennsps_backup_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    original, restored = (f"{base}/{name}" for name in names)
    try:
        crm = {
            "id": "crm",
            "events": ["*"],
            "type": "http",
            "http": {"url": "http://127.0.0.1:9/events"},
        }
        # the deliveries stay pending, as in a backlog
        settings = settings_for(original).model_copy(
            update={
                "handlers": [HandlerConfig.model_validate(crm)],
                "pipeline": PipelineConfig(enabled=False),
            }
        )
        with running(create_app(settings)) as url:
            for i_event in range(1, 8):
                answer = httpx.post(
                    f"{url}/espf/events", json=event_body(i_event), headers=basic_header()
                )
                assert answer.status_code == 200
            dump = tmp_path / "opennsps.dump"
            subprocess.run(
                ["pg_dump", "--format=custom", f"--file={dump}", original],
                check=True,
                capture_output=True,
                timeout=120,
            )
        subprocess.run(
            ["pg_restore", f"--dbname={restored}", str(dump)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        counts = {}
        for url_ in (original, restored):
            with psycopg.connect(url_) as connection:
                counts[url_] = tuple(
                    connection.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]  # noqa: S608
                    for table in ("events", "deliveries", "handlers")
                )
        assert counts[original] == counts[restored] == (7, 7, 1)
        current = runner.invoke(cli, ["db", "current", "-c", str(config_file(tmp_path, restored))])
        assert "(up to date)" in current.output, current.output
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
