"""`opennsps sandbox serve` as its own process: TLS, faults from the start, HSS, change CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from opennsps.cli import app as cli
from tests.sandbox.conftest import API_LOGIN, API_PASSWORD, Receiver
from tests.support import free_port

pytestmark = pytest.mark.slow
runner = CliRunner()


def test_serve_with_tls_faults_hss_and_the_change_commands(
    tmp_path: Path, receiver: Receiver
) -> None:
    port, hss_port = free_port(), free_port()
    faults = {"error_rate": {"Product/get_product_info": 1.0}}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opennsps.cli",
            "sandbox",
            "serve",
            "--dataset",
            str(tmp_path / "sb.db"),
            "--accounts",
            "50",
            "--port",
            str(port),
            "--hss-port",
            str(hss_port),
            "--tls",
            "--faults",
            json.dumps(faults),
            "--target",
            receiver.url,
            "--rate",
            "100",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    url = f"https://127.0.0.1:{port}"
    try:
        # The sandbox makes a self-signed certificate at start: nothing to verify it against.
        with httpx.Client(base_url=url, verify=False, timeout=10) as client:  # noqa: S501
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/sandbox/summary").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.2)
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
        assert "Subscriber/Updated" in blocked.output
        missing = runner.invoke(cli, ["sandbox", "change", "block", "1", "--url", url])
        assert missing.exit_code == 1 and "no account 1" in missing.output
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
        log = runner.invoke(cli, ["sandbox", "deliveries", "--url", url])
        assert (
            log.exit_code == 0
            and "1 delivered" in log.output
            and "Subscriber/Updated" in log.output
        )
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode == 0


def test_the_guides_perl_sample_calls_work_over_https(tmp_path: Path) -> None:
    has_tls = subprocess.run(["perl", "-MIO::Socket::SSL", "-e", "1"], capture_output=True)
    if has_tls.returncode != 0:
        pytest.skip("Perl's IO::Socket::SSL is missing; `make test` installs libio-socket-ssl-perl")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opennsps.cli",
            "sandbox",
            "serve",
            "--dataset",
            str(tmp_path / "sb.db"),
            "--accounts",
            "20",
            "--port",
            str(port),
            "--hss-port",
            "0",
            "--tls",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"https://127.0.0.1:{port}/sandbox/summary", verify=False)  # noqa: S501
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.2)
        client = Path(__file__).with_name("portabilling_client.pl")
        ran = subprocess.run(
            ["perl", str(client), f"127.0.0.1:{port}", API_LOGIN, API_PASSWORD, "100001"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        process.terminate()
        process.wait(30)
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["id"] == "79120000000@msisdn"
    assert answer["imsi"] == "001010000000000" and len(answer["session"]) == 32
