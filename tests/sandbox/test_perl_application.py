"""A third party's ESPF application against the sandbox: a Perl PSGI app written like the
ESPF guide's sample (Appendix B), run with plackup, provisions a subscriber's whole life
from the sandbox's EventSender, reading the sandbox's JSON API over HTTPS."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.sandbox.conftest import API_LOGIN, API_PASSWORD
from tests.sandbox.test_serve_command import sandbox_process
from tests.support import free_port, stop_process

pytestmark = pytest.mark.slow
APPLICATION = Path(__file__).with_name("espf_application.psgi")
MODULES = ("Plack::Request", "Const::Fast", "Cpanel::JSON::XS", "Cache::LRU", "IO::Socket::SSL")
SERVICE_LOGIN, SERVICE_PASSWORD = "events", "topsecret"


def _missing_perl_modules() -> list[str]:
    return [
        module
        for module in MODULES
        if subprocess.run(["perl", f"-M{module}", "-e", "1"], capture_output=True).returncode
    ]


@contextlib.contextmanager
def perl_application(tmp_path: Path, port: int, sandbox_port: int) -> Iterator[Path]:
    """plackup serving the application on 127.0.0.1:port; yields its result file."""
    results = tmp_path / "provisioned.csv"
    log = (tmp_path / "application.log").open("wb")
    process = subprocess.Popen(
        ["plackup", "--host", "127.0.0.1", "--port", str(port), str(APPLICATION)],
        env={
            **os.environ,
            "RESULT_FILE": str(results),
            "SERVICE_LOGIN": SERVICE_LOGIN,
            "SERVICE_PASSWORD": SERVICE_PASSWORD,
            "PORTA_BILLING_API": f"127.0.0.1:{sandbox_port}",
            "PORTA_BILLING_API_USER": API_LOGIN,
            "PORTA_BILLING_API_PASSWORD": API_PASSWORD,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert process.poll() is None, (tmp_path / "application.log").read_text()
            assert time.monotonic() < deadline, "the Perl application did not start"
            time.sleep(0.1)
        yield results
    finally:
        stop_process(process)
        log.close()


def test_an_appendix_b_application_provisions_a_subscribers_life(tmp_path: Path) -> None:
    missing = _missing_perl_modules()
    if missing or shutil.which("plackup") is None:
        pytest.skip(f"Perl modules missing ({', '.join(missing)}); `make test` installs them")
    app_port = free_port()
    sandbox_port = free_port()
    target = f"http://127.0.0.1:{app_port}/"
    with (
        sandbox_process(
            tmp_path,
            "--accounts",
            "20",
            "--hss-port",
            "0",
            "--target",
            target,
            "--target-user",
            SERVICE_LOGIN,
            "--target-password",
            SERVICE_PASSWORD,
            "--rate",
            "100",
            "--concurrency",
            "1",
            port=sandbox_port,
        ) as url,
        # stopped first: its idle keep-alive TLS connections would hold the sandbox's exit
        perl_application(tmp_path, app_port, sandbox_port) as results,
        httpx.Client(base_url=url, verify=False, timeout=30) as control,  # noqa: S501 (self-signed)
    ):

        def change(method: str, path: str, body: dict[str, object] | None = None) -> list[str]:
            answer = control.request(method, path, json=body or {})
            assert answer.status_code == 200, answer.text
            delivered_all(control)
            return [event["event_type"] for event in answer.json()["events"]]

        created = control.post("/sandbox/accounts", json={}).json()["events"][0]
        delivered_all(control)
        i_account = created["variables"]["i_account"]
        account = f"/sandbox/accounts/{i_account}"
        assert "Subscriber/Updated" in change("POST", f"{account}/sim")
        first_imsi = card_of(control, i_account)
        assert "Subscriber/Updated" in change("POST", f"{account}/sim")
        second_imsi = card_of(control, i_account)
        change("POST", f"{account}/block")
        change("POST", f"{account}/topup", {"amount": 5})
        change("DELETE", account)
        log = control.get("/sandbox/eventsender", params={"limit": 1000}).json()["log"]

    assert {attempt["http_status"] for attempt in log} == {200}, "every event answered 200"
    lines = [line.split(",") for line in results.read_text().splitlines()]
    msisdn = f"{created['variables']['i_account'] - 100_001 + 79_120_000_000}@msisdn"
    assert [
        (action, account_id, status, imsi) for action, account_id, _, status, imsi, _ in lines
    ] == [
        ("Created", msisdn, "active", ""),
        ("Updated", msisdn, "active", first_imsi),  # Example 2: a new SIM is a Subscriber/Updated
        ("Updated", msisdn, "active", second_imsi),
        ("Updated", msisdn, "blocked", second_imsi),
        ("Updated", msisdn, "blocked", second_imsi),
        ("Deleted", msisdn, "closed", ""),  # Example 3: read closed, with no SIM left
    ]
    assert float(lines[-2][2]) == 5.0 and first_imsi != second_imsi


def delivered_all(control: httpx.Client) -> None:
    deadline = time.monotonic() + 60
    while control.get("/sandbox/eventsender").json()["queue"]["pending"]:
        assert time.monotonic() < deadline, "the EventSender did not deliver everything"
        time.sleep(0.05)


def card_of(control: httpx.Client, i_account: int) -> str:
    session = control.post(
        "/rest/Session/login",
        data={"params": f'{{"login": "{API_LOGIN}", "password": "{API_PASSWORD}"}}'},
    ).json()["session_id"]
    cards = control.post(
        "/rest/SIMCard/get_card_list",
        data={
            "auth_info": f'{{"session_id": "{session}"}}',
            "params": f'{{"i_account": {i_account}}}',
        },
    ).json()["card_list"]
    imsi: str = cards[0]["imsi"]
    return imsi
