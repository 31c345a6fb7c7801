"""Scenarios: sequences of PortaBilling changes driven through a running sandbox.

Each scenario calls the sandbox's control API at a fixed rate of changes per second, then
waits for the EventSender to deliver what the changes emitted. Every loop is bounded.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a scenario runs (`opennsps --help` stays fast)
    import httpx

Change = tuple[str, str, dict[str, Any]]  # method, path, JSON body
Step = Callable[["httpx.Client"], list[dict[str, Any]]]


class ScenarioError(RuntimeError):
    pass


@dataclass
class ScenarioReport:
    name: str
    changes: int = 0
    failed_changes: int = 0
    events: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    queue: dict[str, int] = field(default_factory=dict)
    drained: bool = False


def _apply(
    client: httpx.Client, method: str, path: str, body: dict[str, Any]
) -> list[dict[str, Any]]:
    response = client.request(method, path, json=body)
    if response.status_code != 200:
        raise ScenarioError(f"{method} {path}: {response.status_code} {response.text[:200]}")
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def _step(method: str, path: Callable[[], str], body: dict[str, Any]) -> Step:
    def run(client: httpx.Client) -> list[dict[str, Any]]:
        return _apply(client, method, path(), body)

    return run


def _fixed(method: str, path: str, body: dict[str, Any]) -> Step:
    return _step(method, lambda: path, body)


def _account_path(created: dict[str, int], suffix: str) -> Callable[[], str]:
    def path() -> str:
        return f"/sandbox/accounts/{created['i_account']}{suffix}"

    return path


def lifecycle(accounts: int, _: random.Random) -> Iterator[Step]:
    """Create N subscribers, give each a SIM, change product, block/unblock, replace the
    SIM and finally delete the account."""
    for _number in range(accounts):
        created: dict[str, int] = {}

        def create(client: httpx.Client, created: dict[str, int] = created) -> list[dict[str, Any]]:
            events = _apply(client, "POST", "/sandbox/accounts", {})
            created["i_account"] = events[0]["variables"]["i_account"]
            return events

        yield create
        for method, suffix, body in [
            ("POST", "/sim", {}),
            ("POST", "/product", {"i_product": 3776}),
            ("POST", "/block", {}),
            ("POST", "/unblock", {}),
            ("POST", "/sim", {}),
            ("DELETE", "", {}),
        ]:
            yield _step(method, _account_path(created, suffix), body)


def bulk_product_change(accounts: int, _: random.Random, first: int = 100_001) -> Iterator[Step]:
    """Move N existing accounts to another product (as a tariff migration does)."""
    for i_account in range(first, first + accounts):
        yield _fixed("POST", f"/sandbox/accounts/{i_account}/product", {"i_product": 3777})


def mixed_day(accounts: int, rng: random.Random, first: int = 100_001) -> Iterator[Step]:
    """A realistic mix of a day's changes over N existing accounts."""
    weights: list[tuple[str, int]] = [
        ("topup", 30),
        ("addon", 15),
        ("block", 5),
        ("unblock", 5),
        ("quota", 10),
        ("renew", 5),
        ("product", 10),
        ("policy", 3),
        ("sim", 5),
        ("customer", 8),
        ("invoice", 8),
        ("did", 4),
    ]
    kinds = [kind for kind, _ in weights]
    chances = [weight for _, weight in weights]
    for number in range(accounts * 3):
        kind = rng.choices(kinds, chances)[0]
        i_account = first + rng.randrange(accounts)
        customer = 6001 + (i_account - first) // 5
        changes: dict[str, Change] = {
            "topup": (
                "POST",
                f"/sandbox/accounts/{i_account}/topup",
                {"amount": rng.choice((5, 10, 20))},
            ),
            "addon": (
                "POST",
                f"/sandbox/accounts/{i_account}/addons",
                {"i_product": rng.choice((3775, 3779))},
            ),
            "block": ("POST", f"/sandbox/accounts/{i_account}/block", {}),
            "unblock": ("POST", f"/sandbox/accounts/{i_account}/unblock", {}),
            "quota": ("POST", f"/sandbox/accounts/{i_account}/quota-exceeded", {}),
            "product": (
                "POST",
                f"/sandbox/accounts/{i_account}/product",
                {"i_product": rng.choice((3774, 3776, 3777))},
            ),
            "renew": ("POST", f"/sandbox/accounts/{i_account}/bundles/renew", {}),
            "policy": (
                "POST",
                f"/sandbox/accounts/{i_account}/access-policy",
                {"i_access_policy": rng.choice((179, 180, 181))},
            ),
            "sim": ("POST", f"/sandbox/accounts/{i_account}/sim", {}),
            "customer": ("POST", f"/sandbox/customers/{customer}", {"name": f"Customer {number}"}),
            "invoice": (
                "POST",
                f"/sandbox/customers/{customer}/invoices",
                {"amount": round(rng.uniform(5, 50), 2)},
            ),
            "did": ("POST", "/sandbox/dids", {"number": f"1206{rng.randrange(10**7):07d}"}),
        }
        yield _fixed(*changes[kind])


SCENARIOS: dict[str, Callable[[int, random.Random], Iterator[Step]]] = {
    "lifecycle": lifecycle,
    "bulk-product-change": bulk_product_change,
    "mixed-day": mixed_day,
}


def run_scenario(
    name: str,
    url: str,
    accounts: int,
    rate: float,
    seed: int = 1,
    drain_timeout: float = 600.0,
    on_progress: Callable[[int, int, dict[str, int]], None] | None = None,
) -> ScenarioReport:
    """Run a scenario against the sandbox at `url`; `on_progress(done, total, queue)`."""
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    if rate <= 0:
        raise ScenarioError("rate must be positive")
    rng = random.Random(seed)
    steps = list(SCENARIOS[name](accounts, rng))
    report = ScenarioReport(name)
    started = time.monotonic()
    # The sandbox's --tls certificate is self-signed by design.
    import httpx

    with httpx.Client(base_url=url, timeout=30, verify=False) as client:  # noqa: S501
        _check_capacity(client, name, accounts)
        for number, step in enumerate(steps, 1):
            due = started + (number - 1) / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            try:
                for event in step(client):
                    report.events[event["event_type"]] += 1
                report.changes += 1
            except ScenarioError:
                report.failed_changes += 1
            if on_progress is not None and (number % 10 == 0 or number == len(steps)):
                on_progress(number, len(steps), _queue(client))
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline:
            report.queue = _queue(client)
            if on_progress is not None:
                on_progress(len(steps), len(steps), report.queue)
            if report.queue.get("pending", 0) == 0:
                report.drained = True
                break
            time.sleep(0.2)
    report.seconds = time.monotonic() - started
    return report


def _check_capacity(client: httpx.Client, name: str, accounts: int) -> None:
    import httpx

    try:
        summary = client.get("/sandbox/summary").json()
    except httpx.HTTPError as exc:
        raise ScenarioError(f"the sandbox does not answer: {exc}") from None
    if name == "lifecycle" and summary["free_sim_cards"] < 2 * accounts:
        raise ScenarioError(
            f"lifecycle of {accounts} accounts needs {2 * accounts} free SIM cards; the sandbox "
            f"has {summary['free_sim_cards']} (generate a larger dataset)"
        )
    if name in {"bulk-product-change", "mixed-day"} and summary["accounts"] < accounts:
        raise ScenarioError(
            f"{name} of {accounts} accounts needs that many accounts; the sandbox has "
            f"{summary['accounts']} (generate a larger dataset)"
        )


def _queue(client: httpx.Client) -> dict[str, int]:
    queue: dict[str, int] = client.get("/sandbox/eventsender", params={"limit": 0}).json()["queue"]
    return queue
