"""`opennsps sandbox serve` as its own process: TLS, faults from the start, HSS, change CLI."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from opennsps.cli import app as cli
from tests.sandbox.conftest import API_LOGIN, API_PASSWORD, Receiver
from tests.support import free_port, stop_process

pytestmark = pytest.mark.slow
runner = CliRunner()


@contextlib.contextmanager
def sandbox_process(tmp_path: Path, *args: str, port: int | None = None) -> Iterator[str]:
    """`opennsps sandbox serve --tls ...` as its own process; yields its https URL."""
    port = port or free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opennsps.cli",
            "sandbox",
            "serve",
            "--dataset",
            str(tmp_path / "sb.db"),
            "--port",
            str(port),
            "--tls",
            *args,
        ],
        stdout=(tmp_path / "sandbox.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                # A self-signed certificate made at start: nothing to verify it against.
                httpx.get(f"{url}/sandbox/summary", verify=False)  # noqa: S501
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the sandbox did not start"
                assert process.poll() is None, "the sandbox exited"
                time.sleep(0.2)
        yield url
    finally:
        stop_process(process, timeout=30)
    assert process.returncode == 0


def test_serve_with_tls_faults_hss_and_the_change_commands(
    tmp_path: Path, receiver: Receiver
) -> None:
    hss_port = free_port()
    faults = {"error_rate": {"Product/get_product_info": 1.0}}
    with sandbox_process(
        tmp_path,
        "--accounts",
        "50",
        "--hss-port",
        str(hss_port),
        "--faults",
        json.dumps(faults),
        "--target",
        receiver.url,
        "--rate",
        "100",
    ) as url:
        # The sandbox makes a self-signed certificate at start: nothing to verify it against.
        with httpx.Client(base_url=url, verify=False, timeout=10) as client:  # noqa: S501
            session = client.post(
                "/rest/Session/login",
                data={"params": json.dumps({"login": API_LOGIN, "password": API_PASSWORD})},
            ).json()["session_id"]
            auth = json.dumps({"session_id": session})
            account = client.post(
                "/rest/Account/get_account_info",
                data={"auth_info": auth, "params": '{"i_account": 100001}'},
            )
            product = client.post(
                "/rest/Product/get_product_info",
                data={"auth_info": auth, "params": '{"i_product": 3774}'},
            )
        assert account.status_code == 200 and "account_info" in account.json()
        assert (
            product.status_code == 500 and product.json()["faultcode"] == "Server.Internal.injected"
        )

        dump = httpx.get(f"http://127.0.0.1:{hss_port}/hss/dump").json()
        assert len(dump["auc"]) == 2052 and "ki" not in dump["auc"][0]

        blocked = runner.invoke(cli, ["sandbox", "change", "block", "100001", "--url", url])
        assert blocked.exit_code == 0, blocked.output
        assert "Subscriber/Updated" in blocked.output and "SIM/Updated" in blocked.output
        missing = runner.invoke(cli, ["sandbox", "change", "block", "1", "--url", url])
        assert missing.exit_code == 1 and "no account 1" in missing.output
        deadline = time.monotonic() + 20
        while len(receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        log = runner.invoke(cli, ["sandbox", "deliveries", "--url", url])
        assert (
            log.exit_code == 0
            and "2 delivered" in log.output
            and "Subscriber/Updated" in log.output
        )

        unsubscribed = runner.invoke(
            cli, ["sandbox", "subscriptions", "--unsubscribe", "SIM/Updated", "--url", url]
        )
        assert unsubscribed.exit_code == 0 and "SIM/Replaced" in unsubscribed.output
        assert "SIM/Updated" not in unsubscribed.output
        unblocked = runner.invoke(cli, ["sandbox", "change", "unblock", "100001", "--url", url])
        assert "not sent (not subscribed): SIM/Updated" in unblocked.output
        unknown = runner.invoke(
            cli, ["sandbox", "subscriptions", "--subscribe", "Nope/Never", "--url", url]
        )
        assert unknown.exit_code == 1 and "unknown event type 'Nope/Never'" in unknown.output
        added = runner.invoke(cli, ["sandbox", "change", "add-sim", "--url", url])
        assert added.exit_code == 0 and "SIM/Created" in added.output


def test_the_guides_perl_sample_calls_work_over_https(tmp_path: Path) -> None:
    has_tls = subprocess.run(["perl", "-MIO::Socket::SSL", "-e", "1"], capture_output=True)
    if has_tls.returncode != 0:
        pytest.skip("Perl's IO::Socket::SSL is missing; `make test` installs libio-socket-ssl-perl")
    client = Path(__file__).with_name("portabilling_client.pl")
    with sandbox_process(tmp_path, "--accounts", "20", "--hss-port", "0") as url:
        ran = subprocess.run(
            ["perl", str(client), url.removeprefix("https://"), API_LOGIN, API_PASSWORD, "100001"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["id"] == "79120000000@msisdn"
    assert answer["imsi"] == "001010000000000" and len(answer["session"]) == 32
