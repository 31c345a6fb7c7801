"""The sandbox's PortaBilling data: a seeded, deterministic generator into SQLite.

The same seed and size always give the same customers, accounts, SIM cards, products,
access policies, bundles, invoices and DID numbers. Raw PortaBilling codes are stored as
PortaBilling keeps them: bill_status O/S/I/C, billing_model -1/0/1/2/4, blocked Y/N.
"""

from __future__ import annotations

import base64
import hashlib
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE vd_plans (
    i_vd_plan INTEGER PRIMARY KEY, name TEXT NOT NULL, service_name TEXT NOT NULL,
    unit TEXT NOT NULL, allocated_amount INTEGER NOT NULL, dg_name TEXT NOT NULL,
    i_dest_group INTEGER NOT NULL, i_vd_dg INTEGER NOT NULL, i_service INTEGER NOT NULL
);
CREATE TABLE products (
    i_product INTEGER PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL,
    is_addon INTEGER NOT NULL, addon_priority INTEGER NOT NULL, i_vd_plan INTEGER
);
CREATE TABLE access_policies (i_access_policy INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE access_policy_attributes (
    i_access_policy INTEGER NOT NULL, group_name TEXT NOT NULL, name TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE customers (
    i_customer INTEGER PRIMARY KEY, name TEXT NOT NULL, firstname TEXT NOT NULL,
    lastname TEXT NOT NULL, email TEXT NOT NULL, bill_status TEXT NOT NULL,
    balance REAL NOT NULL, credit_limit REAL, iso_4217 TEXT NOT NULL, deleted INTEGER NOT NULL
);
CREATE TABLE accounts (
    i_account INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, i_customer INTEGER NOT NULL,
    i_product INTEGER NOT NULL, bill_status TEXT NOT NULL, billing_model INTEGER NOT NULL,
    blocked TEXT NOT NULL, balance REAL NOT NULL, credit_limit REAL,
    time_zone_name TEXT NOT NULL, firstname TEXT NOT NULL, lastname TEXT NOT NULL,
    email TEXT NOT NULL, phone1 TEXT NOT NULL, zip TEXT NOT NULL,
    netaccess_flag TEXT NOT NULL, i_access_policy INTEGER, activation_date TEXT NOT NULL,
    h323_password TEXT NOT NULL, deleted INTEGER NOT NULL
);
CREATE INDEX accounts_customer ON accounts (i_customer);
CREATE TABLE account_addons (
    i_account INTEGER NOT NULL, i_product INTEGER NOT NULL,
    addon_effective_from TEXT NOT NULL, addon_effective_to TEXT,
    PRIMARY KEY (i_account, i_product)
);
CREATE TABLE vd_usage (
    i_account INTEGER NOT NULL, i_vd_plan INTEGER NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (i_account, i_vd_plan)
);
CREATE TABLE custom_fields (
    i_account INTEGER NOT NULL, name TEXT NOT NULL, db_value TEXT NOT NULL,
    PRIMARY KEY (i_account, name)
);
CREATE TABLE sim_cards (
    i_sim_card INTEGER PRIMARY KEY, imsi TEXT NOT NULL UNIQUE, iccid TEXT NOT NULL UNIQUE,
    msisdn TEXT, status TEXT NOT NULL, i_account INTEGER
);
CREATE INDEX sim_cards_account ON sim_cards (i_account);
CREATE TABLE invoices (
    i_invoice INTEGER PRIMARY KEY, i_customer INTEGER NOT NULL, invoice_number TEXT NOT NULL,
    issue_date TEXT NOT NULL, due_date TEXT NOT NULL, amount_net REAL NOT NULL,
    amount_paid REAL NOT NULL, invoice_status TEXT NOT NULL
);
CREATE INDEX invoices_customer ON invoices (i_customer);
CREATE TABLE dids (
    number TEXT PRIMARY KEY, i_did_number INTEGER NOT NULL UNIQUE, i_customer INTEGER,
    i_account INTEGER, country TEXT NOT NULL, cost REAL NOT NULL, revenue REAL NOT NULL,
    deleted INTEGER NOT NULL
);
"""

FIRST_ACCOUNT = 100_001
FIRST_CUSTOMER = 6_001
FIRST_SIM = 3_001
FIRST_INVOICE = 900_001
MSISDN_BASE = 79_120_000_000
IMSI_PREFIX = "00101"  # test network MCC 001 / MNC 01
ACCOUNTS_PER_CUSTOMER = 5
SPARE_SIMS_PERCENT = 5
SPARE_SIMS_EXTRA = 2000  # new subscribers and SIM replacements draw from this pool
TIME_ZONES = ("Europe/Prague", "Europe/London", "America/Vancouver", "Asia/Singapore")
FIRST_NAMES = ("Alice", "Bob", "Carol", "Dmytro", "Eva", "Farid", "Grace", "Hana", "Ivan", "Jana")
LAST_NAMES = ("Doe", "Roe", "Novak", "Smith", "Kowalski", "Tanaka", "Garcia", "Olsen")
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)

VD_PLANS = (
    (201, "Free 10MB (1 day)", "Internet Access KB", "megabyte", 10, "RG100", 2650, 283, 106),
    (202, "Data 5GB (30 days)", "Internet Access KB", "megabyte", 5120, "RG100", 2650, 284, 106),
    (203, "Voice 300 min", "Voice Calls", "minute", 300, "ALL-MOBILE", 2651, 285, 3),
    (204, "Youtube UHD", "Internet Access KB", "megabyte", 20480, "RG200", 2652, 286, 106),
    (205, "Roaming 1GB", "Internet Access KB", "megabyte", 1024, "RG300", 2653, 287, 106),
)
ADDON_PRODUCTS = ((3775, "Youtube UHD", 204, 10), (3779, "Roaming Pack", 205, 20))
ALL_ADDONS = frozenset(addon[0] for addon in ADDON_PRODUCTS)


@dataclass(frozen=True)
class MainProduct:
    """A main product: its bundle, the access policy it gives its accounts (their service
    feature netaccess_policy), the add-ons it comes with and the add-ons it allows."""

    i_product: int
    name: str
    i_vd_plan: int | None
    i_access_policy: int
    included_addons: frozenset[int] = frozenset()
    allowed_addons: frozenset[int] = ALL_ADDONS


MAIN_PRODUCTS = (
    MainProduct(3774, "Pay as you go", 201, 179),
    MainProduct(3776, "Unlimited Talk 5GB", 202, 180, frozenset({3779})),
    MainProduct(3777, "Voice 300", 203, 179),
    MainProduct(3778, "IoT Basic", None, 181, allowed_addons=frozenset()),
)
ACCESS_POLICIES = (
    (179, "LTE standard", "lte.std", "cs-std", "eps-std"),
    (180, "LTE premium", "lte.premium", "cs-premium", "eps-premium"),
    (181, "LTE IoT", "lte.iot", "cs-iot", "eps-iot"),
)


@dataclass(frozen=True)
class DatasetSummary:
    accounts: int
    customers: int
    sim_cards: int
    invoices: int
    dids: int
    seconds: float


def msisdn_of(i_account: int) -> str:
    return str(MSISDN_BASE + i_account - FIRST_ACCOUNT)


def service_password_of(i_account: int) -> str:
    """The generated account's service password (PortaBilling's h323_password): fixed per
    account so a dataset is reproducible, without using the generator's random sequence."""
    digest = hashlib.blake2s(f"opennsps-sandbox:{i_account}".encode(), digest_size=8).digest()
    return base64.b32encode(digest).decode().rstrip("=").lower()


def imsi_of(serial: int) -> str:
    return f"{IMSI_PREFIX}{serial:010d}"


def iccid_of(serial: int) -> str:
    body = f"8900101{serial:012d}"
    return body + _luhn_digit(body)


def _luhn_digit(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def connect(path: str | Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


def generate(
    path: str | Path,
    accounts: int,
    seed: int = 1,
    progress: Callable[[int], None] | None = None,
) -> DatasetSummary:
    """Create a new dataset file (replacing any) with `accounts` accounts."""
    if not 1 <= accounts <= 10_000_000:
        raise ValueError("accounts must be between 1 and 10,000,000")
    started = time.perf_counter()
    target = Path(path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    connection = connect(target)
    connection.execute("PRAGMA synchronous=OFF")
    connection.executescript(SCHEMA)
    rng = random.Random(seed)
    customers = max(1, -(-accounts // ACCOUNTS_PER_CUSTOMER))
    spare = accounts * SPARE_SIMS_PERCENT // 100 + SPARE_SIMS_EXTRA
    dids = max(1, min(accounts // 10, 100_000))
    connection.execute("BEGIN")
    _catalogue(connection)
    connection.executemany(
        "INSERT INTO customers VALUES (?,?,?,?,?,?,?,?,?,0)", _customers(rng, customers)
    )
    chunk: list[tuple[object, ...]] = []
    sims: list[tuple[object, ...]] = []
    addons: list[tuple[object, ...]] = []
    usage: list[tuple[object, ...]] = []
    fields: list[tuple[object, ...]] = []
    for number, row in enumerate(_accounts(rng, accounts, customers), 1):
        chunk.append(row)
        i_account = row[0]
        assert isinstance(i_account, int)
        serial = i_account - FIRST_ACCOUNT
        sims.append(
            (
                FIRST_SIM + serial,
                imsi_of(serial),
                iccid_of(serial),
                msisdn_of(i_account),
                "used",
                i_account,
            )
        )
        product = main_product(int(str(row[3])))
        chosen = {i: str(row[17]) for i in product.included_addons}
        if rng.random() < 0.3:
            addon = rng.choice(ADDON_PRODUCTS)
            since = EPOCH + timedelta(days=rng.randrange(300))
            used = rng.randrange(addon_amount(addon[2]) + 1)
            if addon[0] in product.allowed_addons:
                chosen[addon[0]] = _stamp(since)
                usage.append((i_account, addon[2], used))
        addons.extend((i_account, i, since_text, None) for i, since_text in sorted(chosen.items()))
        fields.append((i_account, "marketplace", rng.choice(("retail", "online", "partner"))))
        if len(chunk) >= 50_000:
            _flush(connection, chunk, sims, addons, usage, fields)
            if progress:
                progress(number)
    _flush(connection, chunk, sims, addons, usage, fields)
    connection.executemany(
        "INSERT INTO sim_cards VALUES (?,?,?,?,?,NULL)",
        (
            (
                FIRST_SIM + accounts + k,
                imsi_of(accounts + k),
                iccid_of(accounts + k),
                None,
                "active",
            )
            for k in range(spare)
        ),
    )
    connection.executemany(
        "INSERT INTO invoices VALUES (?,?,?,?,?,?,?,?)", _invoices(rng, customers)
    )
    connection.executemany("INSERT INTO dids VALUES (?,?,?,?,?,?,?,0)", _dids(rng, dids, customers))
    connection.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [
            ("seed", str(seed)),
            ("accounts", str(accounts)),
            ("generated_at", _stamp(datetime.now(UTC))),
        ],
    )
    connection.execute("COMMIT")
    if progress:
        progress(accounts)
    connection.close()
    return DatasetSummary(
        accounts, customers, accounts + spare, customers, dids, time.perf_counter() - started
    )


def main_product(i_product: int) -> MainProduct:
    """The main product with that id; KeyError if there is none."""
    for product in MAIN_PRODUCTS:
        if product.i_product == i_product:
            return product
    raise KeyError(i_product)


def addon_amount(i_vd_plan: int) -> int:
    return next(plan[4] for plan in VD_PLANS if plan[0] == i_vd_plan)


def _flush(connection: sqlite3.Connection, *batches: list[tuple[object, ...]]) -> None:
    statements = (
        "INSERT INTO accounts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
        "INSERT INTO sim_cards VALUES (?,?,?,?,?,?)",
        "INSERT INTO account_addons VALUES (?,?,?,?)",
        "INSERT INTO vd_usage VALUES (?,?,?)",
        "INSERT INTO custom_fields VALUES (?,?,?)",
    )
    for statement, rows in zip(statements, batches, strict=True):
        connection.executemany(statement, rows)
        rows.clear()


def _catalogue(connection: sqlite3.Connection) -> None:
    connection.executemany("INSERT INTO vd_plans VALUES (?,?,?,?,?,?,?,?,?)", VD_PLANS)
    connection.executemany(
        "INSERT INTO products VALUES (?,?,?,0,0,?)",
        [(p.i_product, p.name, f"{p.name} plan", p.i_vd_plan) for p in MAIN_PRODUCTS],
    )
    connection.executemany(
        "INSERT INTO products VALUES (?,?,?,1,?,?)",
        [(i, name, f"{name} add-on", priority, plan) for i, name, plan, priority in ADDON_PRODUCTS],
    )
    for i_policy, name, group, cs, eps in ACCESS_POLICIES:
        connection.execute("INSERT INTO access_policies VALUES (?, ?)", (i_policy, name))
        connection.executemany(
            "INSERT INTO access_policy_attributes VALUES (?,?,?,?)",
            [(i_policy, group, "cs_profile", cs), (i_policy, group, "eps_profile", eps)],
        )


def _customers(rng: random.Random, count: int) -> Iterator[tuple[object, ...]]:
    for k in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        status = "O" if rng.random() < 0.97 else rng.choice("SC")
        if status == "C":
            # A closed customer closes its accounts, and generated accounts are live: such
            # a customer is generated suspended (drawn as before, so a seed's data stays).
            status = "S"
        yield (
            FIRST_CUSTOMER + k,
            f"{first} {last} {k}",
            first,
            last,
            f"{first.lower()}.{last.lower()}.{k}@example.net",
            status,
            round(rng.uniform(0, 200), 2),
            100.0,
            "EUR",
        )


def _accounts(rng: random.Random, count: int, customers: int) -> Iterator[tuple[object, ...]]:
    for k in range(count):
        i_account = FIRST_ACCOUNT + k
        product = MAIN_PRODUCTS[k % len(MAIN_PRODUCTS)]
        roll = rng.random()
        bill_status = "O" if roll < 0.94 else ("S" if roll < 0.97 else "I")
        billing_model = 1 if rng.random() < 0.6 else -1
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        activated = EPOCH + timedelta(days=rng.randrange(600))
        yield (
            i_account,
            f"{msisdn_of(i_account)}@msisdn",
            FIRST_CUSTOMER + k // ACCOUNTS_PER_CUSTOMER % customers,
            product.i_product,
            bill_status,
            billing_model,
            "Y" if rng.random() < 0.02 else "N",
            round(rng.uniform(0, 50), 5),
            50.0 if billing_model == 1 else None,
            TIME_ZONES[k % len(TIME_ZONES)],
            first,
            last,
            f"{first.lower()}{k}@example.org",
            msisdn_of(i_account),
            f"{10000 + k % 89999}",
            "Y",
            product.i_access_policy,
            _stamp(activated),
            service_password_of(i_account),
        )


def _invoices(rng: random.Random, customers: int) -> Iterator[tuple[object, ...]]:
    for k in range(customers):
        issued = EPOCH + timedelta(days=30 * rng.randrange(1, 18))
        amount = round(rng.uniform(5, 120), 2)
        paid = amount if rng.random() < 0.8 else 0.0
        yield (
            FIRST_INVOICE + k,
            FIRST_CUSTOMER + k,
            f"INV-{FIRST_INVOICE + k}",
            _stamp(issued),
            _stamp(issued + timedelta(days=14)),
            amount,
            paid,
            "paid" if paid else "unpaid",
        )


def _dids(rng: random.Random, count: int, customers: int) -> Iterator[tuple[object, ...]]:
    for k in range(count):
        assigned = rng.random() < 0.5
        yield (
            f"1206555{k:04d}" if count <= 10_000 else f"120655{k:06d}",
            50_001 + k,
            FIRST_CUSTOMER + rng.randrange(customers) if assigned else None,
            None,
            "US",
            0.5,
            2.0,
        )
