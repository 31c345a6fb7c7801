"""`opennsps sandbox ...`: generate a dataset, serve the stand-ins, run scenarios."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

from opennsps.sandbox.scenarios import SCENARIOS

if TYPE_CHECKING:  # imported when a command runs (`opennsps --help` stays fast)
    import httpx
    from rich.progress import Progress
from opennsps.terminal import console

app = typer.Typer(
    help="The PortaBilling and HSS stand-ins for tests, demos and benchmarks.", no_args_is_help=True
)
out = console()
err = console(stderr=True)
AuthScheme = Literal["basic", "custom", "signature", "bearer", "none"]
change_app = typer.Typer(
    help="Change PortaBilling data in a running sandbox; the ESPF events follow.",
    no_args_is_help=True,
)
app.add_typer(change_app, name="change")
UrlOption = Annotated[str, typer.Option("--url", help="The running sandbox.")]
DEFAULT_URL = "http://127.0.0.1:8710"
# These commands talk only to the sandbox, whose --tls certificate is self-signed by design.
SANDBOX_TLS_VERIFY = False


@app.command()
def generate(
    out_path: Annotated[Path, typer.Option("--out", help="The dataset file to (re)create.")] = Path(
        "var/sandbox.db"
    ),
    accounts: Annotated[int, typer.Option(min=1, max=10_000_000)] = 1000,
    seed: Annotated[int, typer.Option(help="The same seed always gives the same data.")] = 1,
) -> None:
    """Generate a deterministic PortaBilling dataset (customers, accounts, SIMs, ...)."""
    from opennsps.sandbox import dataset

    with _progress() as progress:
        task = progress.add_task("accounts", total=accounts)
        summary = dataset.generate(
            out_path, accounts, seed, lambda done: progress.update(task, completed=done)
        )
    out.print(
        f"{out_path}: {summary.accounts} accounts, {summary.customers} customers, "
        f"{summary.sim_cards} SIM cards, {summary.invoices} invoices, {summary.dids} DIDs "
        f"in {summary.seconds:.1f} s"
    )


@app.command()
def serve(
    dataset_path: Annotated[
        Path, typer.Option("--dataset", help="Generated on first use if missing.")
    ] = Path("var/sandbox.db"),
    accounts: Annotated[int, typer.Option(help="Accounts in a newly generated dataset.")] = 1000,
    seed: int = 1,
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(help="PortaBilling JSON API and ESPF API.")] = 8710,
    hss_port: Annotated[int, typer.Option(help="The HSS stand-in; 0 to leave it off.")] = 8720,
    tls: Annotated[
        bool, typer.Option(help="HTTPS with a self-signed certificate made at start.")
    ] = False,
    api_login: str = "opennsps",
    api_password: str = "sandbox-password",
    api_token: str = "sandbox-token",
    session_idle: Annotated[
        float, typer.Option(help="Seconds before an unused API session expires.")
    ] = 300.0,
    target: Annotated[str | None, typer.Option(help="The URL ESPF events are posted to.")] = None,
    target_auth: Annotated[
        str, typer.Option(help="basic | custom | signature | bearer | none")
    ] = "basic",
    target_user: str = "espf",
    target_password: str = "change-me",
    target_auth_type: str = "Plain",
    target_credentials: str = "",
    target_key_id: str = "test",
    target_key: str = "",
    i_env: int = 1,
    rate: Annotated[float, typer.Option(help="Events per second sent by the EventSender.")] = 10.0,
    concurrency: int = 4,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the application's answer.")
    ] = 300.0,
    retry_delay: float = 10.0,
    hss_provisioning_key: str | None = None,
    hss_async: bool = False,
    hss_notify: Annotated[
        str | None, typer.Option(help="URL for asynchronous HSS results.")
    ] = None,
    faults: Annotated[
        str | None, typer.Option(help="Faults to inject from the start, as JSON (docs/sandbox.md).")
    ] = None,
    subscribe: Annotated[
        list[str] | None,
        typer.Option(
            help="An event type the EventSender sends (repeat it); replaces the dataset's list."
            " Without it: the list kept in the dataset, every known type at first start."
        ),
    ] = None,
) -> None:
    """Serve the PortaBilling stand-in (JSON API, ESPF API, EventSender) and the HSS."""
    import uvicorn

    from opennsps.logging import configure_logging
    from opennsps.sandbox.app import SandboxSettings, create_sandbox_app
    from opennsps.sandbox.eventsender import (
        SenderAuth,
        SenderConfig,
        SubscriptionError,
        check_event_type,
    )
    from opennsps.sandbox.hss import HssSettings, create_hss_app
    from opennsps.sandbox.portabilling_api import ApiUser
    from opennsps.sandbox.serving import Server, certificate, serve_all

    if target_auth not in ("basic", "custom", "signature", "bearer", "none"):
        raise typer.BadParameter("--target-auth must be basic, custom, signature, bearer or none")
    configure_logging("info")
    auth = SenderAuth(
        scheme=target_auth,  # type: ignore[arg-type]
        username=target_user,
        password=target_password,
        auth_type=target_auth_type,
        credentials=target_credentials,
        key_id=target_key_id,
        key=target_key,
    )
    settings = SandboxSettings(
        dataset=dataset_path,
        accounts=accounts,
        seed=seed,
        users=[ApiUser(api_login, api_password, api_token)],
        session_idle_timeout=session_idle,
        sender=SenderConfig(
            url=target,
            auth=auth,
            i_env=i_env,
            rate=rate,
            concurrency=concurrency,
            timeout=timeout,
            retry_delay=retry_delay,
            subscriptions=subscribe or None,
        ),
    )
    for event_type in subscribe or []:
        try:
            check_event_type(event_type)
        except SubscriptionError as exc:
            raise typer.BadParameter(f"--subscribe: {exc}") from None
    if faults:
        try:
            settings.faults.update(json.loads(faults))
        except (ValueError, TypeError) as exc:
            raise typer.BadParameter(f"--faults: {exc}") from None
    if not dataset_path.exists():
        generate(dataset_path, accounts, seed)
    sandbox_app = create_sandbox_app(settings)
    servers = []
    with certificate(tls) as (certfile, keyfile):
        servers.append(
            Server(
                uvicorn.Config(
                    sandbox_app,
                    host=host,
                    port=port,
                    log_config=None,
                    ssl_certfile=certfile,
                    ssl_keyfile=keyfile,
                )
            )
        )
        scheme = "https" if tls else "http"
        out.print(
            f"PortaBilling JSON API and ESPF API: {scheme}://{host}:{port}"
            " (/rest/{Service}/{method}, /espf/v1/...)"
        )
        if hss_port:
            hss = create_hss_app(
                HssSettings(hss_provisioning_key, hss_async, notification_url=hss_notify)
            )
            loaded = hss.state.hss.load_sims_from_dataset(str(dataset_path))
            servers.append(Server(uvicorn.Config(hss, host=host, port=hss_port, log_config=None)))
            out.print(f"HSS stand-in: http://{host}:{hss_port}/ ({loaded} SIM cards' AUC loaded)")
        out.print(f"EventSender target: {target or 'none (events wait in the queue)'}")
        asyncio.run(serve_all(servers))


@app.command()
def scenario(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SCENARIOS)}.")],
    url: Annotated[str, typer.Option(help="The running sandbox.")] = "http://127.0.0.1:8710",
    accounts: Annotated[int, typer.Option(min=1, max=1_000_000)] = 100,
    rate: Annotated[float, typer.Option(help="Changes per second.")] = 20.0,
    seed: int = 1,
    drain_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for delivery at the end.")
    ] = 600.0,
) -> None:
    """Run a scenario of PortaBilling changes through a running sandbox."""
    from opennsps.sandbox.scenarios import ScenarioError, run_scenario

    with _progress() as progress:
        changes = progress.add_task("changes", total=None)
        delivered = progress.add_task("events delivered", total=None)

        def show(done: int, total: int, queue: dict[str, int]) -> None:
            progress.update(changes, completed=done, total=total)
            finished = queue.get("delivered", 0) + queue.get("dropped", 0)
            progress.update(delivered, completed=finished, total=finished + queue.get("pending", 0))

        try:
            report = run_scenario(name, url, accounts, rate, seed, drain_timeout, show)
        except ScenarioError as exc:
            err.print(f"error: {exc}")
            raise typer.Exit(2) from None
    table = Table(title=f"scenario {name}: {report.changes} changes in {report.seconds:.1f} s")
    table.add_column("event type")
    table.add_column("events", justify="right")
    for event_type, count in sorted(report.events.items()):
        table.add_row(event_type, str(count))
    out.print(table)
    out.print(
        f"EventSender queue: {report.queue.get('delivered', 0)} delivered, "
        f"{report.queue.get('dropped', 0)} dropped (4xx), "
        f"{report.queue.get('pending', 0)} pending; "
        f"{report.failed_changes} change(s) refused"
    )
    if not report.drained:
        err.print("warning: events were still pending when the drain timeout ran out")
        raise typer.Exit(1)


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
    )


def _sandbox_request(url: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request to a running sandbox; a clear error and exit 1 when it does not answer."""
    import httpx

    try:
        return httpx.request(
            method, f"{url}{path}", timeout=30, verify=SANDBOX_TLS_VERIFY, **kwargs
        )
    except httpx.HTTPError as exc:
        err.print(f"error: the sandbox at {url} does not answer: {exc}")
        raise typer.Exit(1) from None


def _control_request(url: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """A control API call; its error printed and exit 1 when the sandbox refuses it."""
    response = _sandbox_request(url, method, path, **kwargs)
    if response.status_code != 200:
        err.print(f"error: {response.json().get('error', response.text)}")
        raise typer.Exit(1)
    answer: dict[str, Any] = response.json()
    return answer


def _change(url: str, method: str, path: str, body: dict[str, object] | None = None) -> None:
    answer = _control_request(url, method, path, json=body or {})
    for event in answer["events"]:
        out.print(f"queued i_event {event['i_event']}: {event['event_type']} {event['variables']}")
    for event in answer.get("not_sent", []):
        out.print(f"not sent ({event['reason']}): {event['event_type']} {event['variables']}")


@change_app.command("create-account")
def create_account(
    url: UrlOption = DEFAULT_URL, customer: int | None = None, product: int | None = None
) -> None:
    """Create an account (Subscriber/Created)."""
    _change(url, "POST", "/sandbox/accounts", {"i_customer": customer, "i_product": product})


@change_app.command("assign-sim")
def assign_sim(i_account: int, url: UrlOption = DEFAULT_URL, sim: int | None = None) -> None:
    """Give the account a SIM card, replacing its current one (Subscriber/Updated,
    SIM/Replaced, SIM/Updated)."""
    _change(url, "POST", f"/sandbox/accounts/{i_account}/sim", {"i_sim_card": sim})


@change_app.command()
def block(i_account: int, url: UrlOption = DEFAULT_URL) -> None:
    """Block the account (Subscriber/Updated, SIM/Updated)."""
    _change(url, "POST", f"/sandbox/accounts/{i_account}/block")


@change_app.command()
def unblock(i_account: int, url: UrlOption = DEFAULT_URL) -> None:
    """Unblock the account (Subscriber/Updated, SIM/Updated)."""
    _change(url, "POST", f"/sandbox/accounts/{i_account}/unblock")


@change_app.command()
def password(i_account: int, new_password: str, url: UrlOption = DEFAULT_URL) -> None:
    """Change the account's service password, h323_password (Subscriber/Updated)."""
    _change(url, "POST", f"/sandbox/accounts/{i_account}/password", {"password": new_password})


@change_app.command("product")
def change_product(i_account: int, i_product: int, url: UrlOption = DEFAULT_URL) -> None:
    """Move the account to another product, with its access policy and add-ons
    (Subscriber/Updated, SIM/Updated)."""
    _change(url, "POST", f"/sandbox/accounts/{i_account}/product", {"i_product": i_product})


@change_app.command("access-policy")
def change_access_policy(
    i_account: int, i_access_policy: int, url: UrlOption = DEFAULT_URL
) -> None:
    """Give the account another access policy: 179 LTE standard, 180 premium, 181 IoT
    (Subscriber/Updated, SIM/Updated)."""
    _change(
        url,
        "POST",
        f"/sandbox/accounts/{i_account}/access-policy",
        {"i_access_policy": i_access_policy},
    )


@change_app.command("add-addon")
def add_addon(i_account: int, i_product: int, url: UrlOption = DEFAULT_URL) -> None:
    """Add an add-on product (Subscriber/Updated, SIM/Updated)."""
    _change(url, "POST", f"/sandbox/accounts/{i_account}/addons", {"i_product": i_product})


@change_app.command("remove-addon")
def remove_addon(i_account: int, i_product: int, url: UrlOption = DEFAULT_URL) -> None:
    """Remove an add-on product (Subscriber/Updated, SIM/Updated)."""
    _change(url, "DELETE", f"/sandbox/accounts/{i_account}/addons/{i_product}")


@change_app.command()
def topup(i_account: int, amount: float, url: UrlOption = DEFAULT_URL) -> None:
    """Top up the balance (Subscriber/Updated)."""
    _change(url, "POST", f"/sandbox/accounts/{i_account}/topup", {"amount": amount})


@change_app.command("quota-exceeded")
def quota_exceeded(i_account: int, url: UrlOption = DEFAULT_URL) -> None:
    """Use up the account's bundles (Account/Service/QuotaExceeded)."""
    _change(url, "POST", f"/sandbox/accounts/{i_account}/quota-exceeded")


@change_app.command("renew-bundles")
def renew_bundles(i_account: int, url: UrlOption = DEFAULT_URL) -> None:
    """Renew the account's bundles (Subscriber/Updated, SIM/Updated, and
    Account/Service/QuotaAvailable when one had run out)."""
    _change(url, "POST", f"/sandbox/accounts/{i_account}/bundles/renew")


@change_app.command("delete-account")
def delete_account(i_account: int, url: UrlOption = DEFAULT_URL) -> None:
    """Delete the account and release its SIM (Subscriber/Deleted, SIM/Replaced,
    SIM/Updated)."""
    _change(url, "DELETE", f"/sandbox/accounts/{i_account}")


@change_app.command()
def customer(
    i_customer: int,
    url: UrlOption = DEFAULT_URL,
    name: str | None = None,
    bill_status: Annotated[str | None, typer.Option(help="O, S or C")] = None,
) -> None:
    """Change a customer (Customer/Updated; a status change also Subscriber/Updated and
    SIM/Updated for each of its accounts)."""
    _change(
        url, "POST", f"/sandbox/customers/{i_customer}", {"name": name, "bill_status": bill_status}
    )


@change_app.command("create-customer")
def create_customer(name: str, url: UrlOption = DEFAULT_URL) -> None:
    """Create a customer (Customer/Created)."""
    _change(url, "POST", "/sandbox/customers", {"name": name})


@change_app.command("delete-customer")
def delete_customer(i_customer: int, url: UrlOption = DEFAULT_URL) -> None:
    """Terminate a customer and its accounts (Subscriber/Deleted... for each, then
    Customer/Deleted)."""
    _change(url, "DELETE", f"/sandbox/customers/{i_customer}")


@change_app.command("add-sim")
def add_sim(url: UrlOption = DEFAULT_URL) -> None:
    """Add a SIM card to the inventory (SIM/Created)."""
    _change(url, "POST", "/sandbox/sims")


@change_app.command("sim-status")
def sim_status(
    i_sim_card: int,
    status: Annotated[
        str, typer.Argument(help="free: active, reserved, disposed; assigned: used, blocked")
    ],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Change a SIM card's status (SIM/Updated with curr_status and prev_status)."""
    _change(url, "POST", f"/sandbox/sims/{i_sim_card}/status", {"status": status})


@change_app.command("remove-sim")
def remove_sim(i_sim_card: int, url: UrlOption = DEFAULT_URL) -> None:
    """Remove a SIM card from the inventory (SIM/Deleted; taken from its account first)."""
    _change(url, "DELETE", f"/sandbox/sims/{i_sim_card}")


@change_app.command()
def invoice(i_customer: int, amount: float, url: UrlOption = DEFAULT_URL) -> None:
    """Issue an invoice (Invoice/Created)."""
    _change(url, "POST", f"/sandbox/customers/{i_customer}/invoices", {"amount": amount})


@change_app.command("pay-invoice")
def pay_invoice(i_invoice: int, url: UrlOption = DEFAULT_URL) -> None:
    """Pay an invoice in full (Invoice/Updated)."""
    _change(url, "POST", f"/sandbox/invoices/{i_invoice}/pay")


@change_app.command("add-did")
def add_did(number: str, url: UrlOption = DEFAULT_URL) -> None:
    """Upload a DID number (DID/Created)."""
    _change(url, "POST", "/sandbox/dids", {"number": number})


@change_app.command("assign-did")
def assign_did(number: str, url: UrlOption = DEFAULT_URL, account: int | None = None) -> None:
    """Assign a DID to an account, or release it without --account (DID/Updated)."""
    _change(url, "POST", f"/sandbox/dids/{number}/assign", {"i_account": account})


@change_app.command("remove-did")
def remove_did(number: str, url: UrlOption = DEFAULT_URL) -> None:
    """Remove a DID from the inventory (DID/Deleted)."""
    _change(url, "DELETE", f"/sandbox/dids/{number}")


@app.command()
def subscriptions(
    url: UrlOption = DEFAULT_URL,
    subscribe: Annotated[
        list[str] | None, typer.Option(help="Subscribe the EventSender to this event type.")
    ] = None,
    unsubscribe: Annotated[
        list[str] | None, typer.Option(help="Unsubscribe the EventSender from this event type.")
    ] = None,
) -> None:
    """The event types the EventSender sends; --subscribe / --unsubscribe change them at run
    time (as `evctl.pl handler subscribe EventSender <type>` does)."""
    path = "/sandbox/eventsender/subscriptions"
    for event_type in subscribe or []:
        _control_request(url, "POST", path, json={"event_type": event_type})
    for event_type in unsubscribe or []:
        _control_request(url, "DELETE", f"{path}/{event_type}")
    for event_type in _control_request(url, "GET", path)["subscriptions"]:
        out.print(event_type)


@app.command()
def deliveries(
    url: UrlOption = DEFAULT_URL,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    i_event: int | None = None,
) -> None:
    """The EventSender's queue and its delivery log, newest attempt first."""
    params: dict[str, int] = {"limit": limit}
    if i_event is not None:
        params["i_event"] = i_event
    answer = _sandbox_request(url, "GET", "/sandbox/eventsender", params=params).json()
    queue = answer["queue"]
    table = Table(
        title=f"queue: {queue['pending']} pending, {queue['delivered']} delivered, "
        f"{queue['dropped']} dropped"
    )
    for column in ("attempted at", "i_event", "event type", "status", "ms", "outcome", "error"):
        table.add_column(column, overflow="fold")
    for attempt in answer["log"]:
        table.add_row(
            attempt["attempted_at"],
            str(attempt["i_event"]),
            attempt["event_type"],
            str(attempt["http_status"] or ""),
            f"{attempt['duration_ms']:.1f}",
            attempt["outcome"],
            attempt["error"] or "",
        )
    out.print(table)
