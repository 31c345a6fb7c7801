"""`opennsps demo` (what `make run` starts): PortaBilling changes flowing into an HSS.

Everything runs on 127.0.0.1 with nothing configured: the PortaBilling sandbox and the HSS
stand-in (one child process), OpenNSPS on SQLite with the HSS connector as its handler
(another child process, `opennsps serve` with a generated configuration). The demo then
1. loads the HSS with the subscribers PortaBilling already has (`reconcile --fix`),
2. runs a subscriber lifecycle scenario (create, SIM, product change, block, unblock,
   SIM replacement, delete) and shows live progress,
3. reconciles again and reports whether the HSS agrees with PortaBilling for every
   account, and which provisioning statuses PortaBilling recorded,
4. keeps serving until Ctrl-C (or exits with --once).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from opennsps.config import Settings, load_settings
from opennsps.console.users import UserStore
from opennsps.pipeline.reconcile import HandlerReconciliation, reconcile_handler
from opennsps.pipeline.reconcile_cli import print_reconciliation
from opennsps.sandbox import dataset
from opennsps.sandbox.scenarios import ScenarioError, ScenarioReport, run_scenario
from opennsps.store.event_store import EventStore

HANDLER_ID = "hss"
APNS = (("internet", 100_000, 50_000), ("ims", 128, 128))  # name, AMBR down, AMBR up
PROFILES = {
    "eps-std": {"apn_ids": [1, 2], "ambr_dl": 100_000, "ambr_ul": 50_000},
    "eps-premium": {"apn_ids": [1, 2], "ambr_dl": 500_000, "ambr_ul": 200_000},
    "eps-iot": {"apn_ids": [1], "ambr_dl": 256, "ambr_ul": 256},
}
START_TIMEOUT = 60.0


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and what to do."""


@dataclass
class DemoOptions:
    workdir: Path = Path("var/demo")
    accounts: int = 200
    lifecycle: int = 300
    rate: float = 100.0
    host: str = "127.0.0.1"
    gateway_port: int = 8700
    sandbox_port: int = 8710
    hss_port: int = 8720
    once: bool = False
    drain_timeout: float = 600.0


@dataclass
class DemoResult:
    initial_load: HandlerReconciliation
    scenario: ScenarioReport
    final: HandlerReconciliation
    deliveries: dict[str, int]
    statuses: dict[str, Any]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        failed = self.deliveries.get("rejected", 0) + self.deliveries.get("dead", 0)
        return self.final.report.agrees and failed == 0 and self.scenario.failed_changes == 0


@dataclass
class _Urls:
    gateway: str
    sandbox: str
    hss: str


def _urls(options: DemoOptions) -> _Urls:
    return _Urls(
        gateway=f"http://{options.host}:{options.gateway_port}",
        sandbox=f"http://{options.host}:{options.sandbox_port}",
        hss=f"http://{options.host}:{options.hss_port}",
    )


def demo_config(options: DemoOptions, secrets_: dict[str, str]) -> dict[str, Any]:
    urls = _urls(options)
    workdir = options.workdir.resolve()
    return {
        "server": {"host": options.host, "port": options.gateway_port},
        "logging": {"level": "info"},
        "store": {"url": f"sqlite:///{workdir / 'opennsps.db'}"},
        "ingress": {
            "sources": {
                "default": {
                    "i_env": 1,
                    "auth": {"username": "espf", "password": secrets_["espf"]},
                    "portabilling": {
                        "url": urls.sandbox,
                        "login": "opennsps",
                        "password": secrets_["portabilling"],
                        "espf_api": {"login": "opennsps", "password": secrets_["portabilling"]},
                    },
                }
            }
        },
        "handlers": [
            {
                "id": HANDLER_ID,
                "name": "HSS (PyHSS API)",
                "events": ["Subscriber/*", "SIM/*"],
                "type": "python",
                "python": {
                    "entry_point": "opennsps.connectors.hss:HssConnector",
                    "options": {
                        "url": urls.hss,
                        "links": f"sqlite:///{workdir / 'hss-links.db'}",
                        "profiles": PROFILES,
                    },
                    "timeout": 10,
                },
                "status_group": "HSS",
            }
        ],
        "api": {"tokens": [{"name": "demo", "token": secrets_["api"], "role": "admin"}]},
    }


def _free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


CONSOLE_USER = "admin"
CONSOLE_PASSWORD_FILE = "console-password"  # noqa: S105 (a file name)


def _prepare(options: DemoOptions, say: Callable[[str], None]) -> tuple[Path, Settings, str]:
    for name, port in (
        ("gateway", options.gateway_port),
        ("sandbox", options.sandbox_port),
        ("hss", options.hss_port),
    ):
        if not _free(options.host, port):
            raise DemoError(
                f"port {port} ({name}) is in use on {options.host}: stop what uses it, or pass "
                f"--{name}-port"
            )
    if options.workdir.exists():
        shutil.rmtree(options.workdir)
    options.workdir.mkdir(parents=True)
    say(f"generating a PortaBilling dataset of {options.accounts} accounts")
    dataset.generate(options.workdir / "sandbox.db", options.accounts, seed=1)
    secrets_ = {name: secrets.token_urlsafe(24) for name in ("espf", "portabilling", "api")}
    config_path = options.workdir / "opennsps.yaml"
    config_path.write_text(yaml.safe_dump(demo_config(options, secrets_), sort_keys=False))
    config_path.chmod(0o600)
    os.environ.pop("OPENNSPS_CONFIG", None)
    return config_path, load_settings(config_path), secrets_["api"]


def _add_console_admin(store: EventStore, workdir: Path) -> None:
    """A console admin with a new password, kept in a file only its owner can read."""
    password = secrets.token_urlsafe(12)
    target = workdir / CONSOLE_PASSWORD_FILE
    target.write_text(password + "\n")
    target.chmod(0o600)
    UserStore(store.engine).add(CONSOLE_USER, password, "admin")


def _spawn(args: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "opennsps.cli", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"{url} exited at start (code {process.returncode}); see {log_path}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise DemoError(f"{url} did not answer within {START_TIMEOUT:g} s; see {log_path}")


@contextmanager
def _processes(
    options: DemoOptions, config_path: Path, config: Settings
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The sandbox (with the HSS stand-in) and `opennsps serve`; stopped on the way out."""
    urls = _urls(options)
    source = config.ingress.sources["default"]
    portabilling = source.portabilling
    assert portabilling is not None and portabilling.password is not None
    auth = source.auth
    espf_password = getattr(auth, "password", None)
    assert espf_password is not None
    started: list[subprocess.Popen[bytes]] = []
    sandbox_log = options.workdir / "sandbox.log"
    gateway_log = options.workdir / "opennsps.log"
    try:
        with sandbox_log.open("wb") as log:
            started.append(
                _spawn(
                    [
                        "sandbox",
                        "serve",
                        "--dataset",
                        str(options.workdir / "sandbox.db"),
                        "--host",
                        options.host,
                        "--port",
                        str(options.sandbox_port),
                        "--hss-port",
                        str(options.hss_port),
                        "--api-password",
                        portabilling.password.get_secret_value(),
                        "--target",
                        f"{urls.gateway}/espf/events",
                        "--target-user",
                        "espf",
                        "--target-password",
                        espf_password.get_secret_value(),
                        "--rate",
                        "1000",
                        "--concurrency",
                        "8",
                        "--retry-delay",
                        "1",
                    ],
                    log,
                )
            )
        _wait_until_up(f"{urls.sandbox}/sandbox/summary", started[0], sandbox_log)
        _wait_until_up(f"{urls.hss}/hss/dump", started[0], sandbox_log)
        with gateway_log.open("wb") as log:
            started.append(_spawn(["serve", "--config", str(config_path)], log))
        _wait_until_up(f"{urls.gateway}/ready", started[1], gateway_log)
        yield started
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(started):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _create_apns(hss_url: str) -> None:
    for name, down, up in APNS:
        answer = httpx.put(
            f"{hss_url}/apn/",
            json={"apn": name, "apn_ambr_dl": down, "apn_ambr_ul": up},
            timeout=10,
        )
        answer.raise_for_status()


class _Gateway:
    def __init__(self, url: str, token: str) -> None:
        self._http = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def stats(self) -> dict[str, Any]:
        answer = self._http.get("/stats")
        answer.raise_for_status()
        figures: dict[str, Any] = answer.json()
        return figures

    def close(self) -> None:
        self._http.close()


def _progress_table(title: str, figures: dict[str, Any], changes: tuple[int, int]) -> Table:
    states = figures.get("deliveries_by_state", {})
    table = Table(title=title, title_justify="left")
    for column in ("changes made", "events received", "delivered", "retrying", "failed", "queued"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{changes[0]}/{changes[1]}" if changes[1] else "-",
        str(figures.get("last_hour", {}).get("events_received", 0)),
        f"[green]{states.get('delivered', 0)}[/green]",
        f"[yellow]{figures.get('retrying', 0)}[/yellow]",
        f"[red]{states.get('rejected', 0) + states.get('dead', 0)}[/red]",
        str(states.get("pending", 0) + states.get("in_flight", 0)),
    )
    return table


def _settled(figures: dict[str, Any], sandbox_queue: dict[str, int]) -> bool:
    states = figures.get("deliveries_by_state", {})
    return (
        states.get("pending", 0) == 0
        and states.get("in_flight", 0) == 0
        and not figures.get("status_outbox_backlog")
        and sandbox_queue.get("pending", 0) == 0
    )


def _wait_settled(
    gateway: _Gateway, sandbox_url: str, timeout: float, show: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        figures = gateway.stats()
        show(figures)
        queue = httpx.get(f"{sandbox_url}/sandbox/eventsender", params={"limit": 0}, timeout=10)
        if _settled(figures, queue.json()["queue"]):
            return figures
        if time.monotonic() > deadline:
            raise DemoError(f"deliveries did not finish within {timeout:g} s: {figures}")
        time.sleep(0.5)


def run_demo(options: DemoOptions, console: Console) -> DemoResult:
    def say(text: str) -> None:
        console.print(f"[bold cyan]▶[/bold cyan] {text}", highlight=False)

    config_path, settings, api_token = _prepare(options, say)
    urls = _urls(options)
    with _processes(options, config_path, settings) as processes:
        say(
            f"PortaBilling sandbox at {urls.sandbox}, HSS stand-in at {urls.hss}, "
            f"OpenNSPS (SQLite, {options.workdir / 'opennsps.db'}) at {urls.gateway}"
        )
        _create_apns(urls.hss)
        gateway = _Gateway(urls.gateway, api_token)
        store = EventStore(settings.store)
        try:
            _add_console_admin(store, options.workdir)
            say(
                f"initial load: the HSS starts empty; `opennsps reconcile {HANDLER_ID} --fix` "
                "enqueues one repair event per existing subscriber"
            )
            initial = asyncio.run(reconcile_handler(settings, store.engine, HANDLER_ID, fix=True))
            say(f"{len(initial.repairs)} repair event(s) enqueued; delivering them")
            with Live(console=console, refresh_per_second=4) as live:
                _wait_settled(
                    gateway,
                    urls.sandbox,
                    options.drain_timeout,
                    lambda f: live.update(_progress_table("initial load", f, (0, 0))),
                )
            console.print()
            say(
                f"subscriber lifecycle for {options.lifecycle} new accounts at "
                f"{options.rate:g} changes/s"
            )
            scenario = _run_lifecycle(options, gateway, urls, console)
            say("reconciling the HSS with PortaBilling")
            final = asyncio.run(reconcile_handler(settings, store.engine, HANDLER_ID))
        finally:
            store.close()
        print_reconciliation(final, console)
        figures = gateway.stats()
        gateway.close()
        statuses = httpx.get(f"{urls.sandbox}/sandbox/statuses", timeout=10).json()
        _print_statuses(statuses, console)
        result = DemoResult(
            initial, scenario, final, figures.get("deliveries_by_state", {}), statuses, processes
        )
        _print_outcome(result, options, urls, config_path, console)
        if not options.once:
            _serve_until_interrupted(processes, console)
    return result


def _run_lifecycle(
    options: DemoOptions, gateway: _Gateway, urls: _Urls, console: Console
) -> ScenarioReport:
    progress = {"done": 0, "total": 0}
    outcome: dict[str, Any] = {}

    def scenario() -> None:
        def note(done: int, total: int, _: dict[str, int]) -> None:
            progress.update(done=done, total=total)

        try:
            outcome["report"] = run_scenario(
                "lifecycle",
                urls.sandbox,
                options.lifecycle,
                options.rate,
                drain_timeout=options.drain_timeout,
                on_progress=note,
            )
        except (ScenarioError, httpx.HTTPError) as exc:
            outcome["error"] = exc

    runner = threading.Thread(target=scenario, name="lifecycle", daemon=True)
    runner.start()
    with Live(console=console, refresh_per_second=4) as live:

        def show(figures: dict[str, Any]) -> None:
            changes = (progress["done"], progress["total"])
            live.update(_progress_table("subscriber lifecycle", figures, changes))

        while runner.is_alive():
            show(gateway.stats())
            runner.join(0.5)
        if "error" in outcome:
            raise DemoError(f"the scenario stopped: {outcome['error']}")
        _wait_settled(gateway, urls.sandbox, options.drain_timeout, show)
    console.print()
    report: ScenarioReport = outcome["report"]
    return report


def _print_statuses(statuses: dict[str, Any], console: Console) -> None:
    table = Table(title="provisioning statuses recorded in PortaBilling (ESPF API)")
    table.add_column("group")
    table.add_column("latest status per account")
    for group, counts in sorted(statuses.get("latest_by_group", {}).items()):
        table.add_row(group, ", ".join(f"{s}: {n}" for s, n in sorted(counts.items())))
    console.print(table)
    console.print(f"{statuses.get('reports', 0)} status reports in all", highlight=False)


def _print_outcome(
    result: DemoResult, options: DemoOptions, urls: _Urls, config_path: Path, console: Console
) -> None:
    states = result.deliveries
    console.print(
        f"deliveries: {states.get('delivered', 0)} delivered, "
        f"{states.get('rejected', 0)} rejected, {states.get('dead', 0)} dead; "
        f"scenario: {result.scenario.changes} changes, "
        f"{sum(result.scenario.events.values())} events",
        highlight=False,
    )
    if result.succeeded:
        console.print("[bold green]The HSS agrees with PortaBilling for every account.[/]")
    else:
        console.print("[bold red]The demo found problems; see above and the logs.[/]")
    console.print(
        f"Web console: {urls.gateway}/console/ (user {CONSOLE_USER}, password in "
        f"{options.workdir / CONSOLE_PASSWORD_FILE})",
        highlight=False,
    )
    console.print(
        f"Management API: {urls.gateway}/docs (token: api.tokens in {config_path}); "
        f"PortaBilling sandbox: {urls.sandbox}; HSS: {urls.hss}/hss/dump; "
        f"logs: {options.workdir}/opennsps.log, {options.workdir}/sandbox.log",
        highlight=False,
    )


def _serve_until_interrupted(processes: list[subprocess.Popen[bytes]], console: Console) -> None:
    console.print("Still serving; press Ctrl-C to stop.")
    # A plain flag: a signal handler must not take a lock the interrupted code may hold.
    stop: list[int] = []

    def request_stop(number: int, _: object) -> None:
        stop.append(number)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop:
            if any(process.poll() is not None for process in processes):
                console.print("[red]a demo process exited; stopping[/red]")
                return
            time.sleep(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("stopping")
