"""Changes made to the sandbox's PortaBilling data, each with the ESPF events it causes.

Every function applies one change in one transaction and returns the events a real
PortaBilling emits for it, in both families: the Subscriber/Customer/Invoice/DID group
events of the ESPF guide and the SIM group events of the NSPS connector guide (as
(event_type, variables); the EventSender adds i_event, i_env and event_time and sends only
the types it is subscribed to). docs/sandbox.md has the table of changes and events.
Unknown entities raise ChangeError with a reason.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from opennsps.sandbox.dataset import (
    ACCESS_POLICIES,
    ADDON_PRODUCTS,
    FIRST_ACCOUNT,
    FIRST_SIM,
    MAIN_PRODUCTS,
    MainProduct,
    iccid_of,
    imsi_of,
    main_product,
    msisdn_of,
)

Event = tuple[str, dict[str, Any]]

#: SIM card statuses (PortaBilling's SIM inventory): a free card is available ("active"),
#: reserved or disposed; an assigned card is in use ("used") or blocked.
FREE_SIM_STATUSES = frozenset({"active", "reserved", "disposed"})
ASSIGNED_SIM_STATUSES = frozenset({"used", "blocked"})
#: Bundle services whose exhausted quota is no SIM/Updated trigger (NSPS connector guide).
QUOTA_SERVICES_WITHOUT_SIM_EVENT = ("Internet Access", "Messaging")


class ChangeError(ValueError):
    """The change cannot be applied; the message says why."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _existing(db: sqlite3.Connection, missing: str, sql: str, *args: object) -> sqlite3.Row:
    """The one row the query finds; ChangeError(missing) when there is none."""
    row: sqlite3.Row | None = db.execute(sql, args).fetchone()
    if row is None:
        raise ChangeError(missing)
    return row


def _account(db: sqlite3.Connection, i_account: int) -> sqlite3.Row:
    return _existing(
        db,
        f"no account {i_account}",
        "SELECT * FROM accounts WHERE i_account = ? AND deleted = 0",
        i_account,
    )


def _card_of(db: sqlite3.Connection, i_account: int) -> sqlite3.Row | None:
    card: sqlite3.Row | None = db.execute(
        "SELECT * FROM sim_cards WHERE i_account = ?", (i_account,)
    ).fetchone()
    return card


def _in_transaction(db: sqlite3.Connection, apply: Callable[[], list[Event]]) -> list[Event]:
    db.execute("BEGIN IMMEDIATE")
    try:
        events = apply()
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return events


def _card_variables(i_sim_card: int, i_account: int | None) -> dict[str, Any]:
    """A SIM event's card, and its account only when the card is assigned to one."""
    variables: dict[str, Any] = {"i_sim_card": i_sim_card}
    if i_account is not None:
        variables["i_account"] = i_account
    return variables


def _sim_status_changed(
    i_sim_card: int, i_account: int | None, curr_status: str, prev_status: str
) -> Event:
    variables = _card_variables(i_sim_card, i_account)
    return ("SIM/Updated", {**variables, "curr_status": curr_status, "prev_status": prev_status})


def _account_changed(
    db: sqlite3.Connection, i_account: int, sim_trigger: bool = True
) -> list[Event]:
    """Subscriber/Updated, and SIM/Updated for the account's SIM card when the change is
    one of the NSPS connector guide's SIM/Updated triggers and the account has a card."""
    events: list[Event] = [("Subscriber/Updated", {"i_account": i_account})]
    if sim_trigger and _card_of(db, i_account) is not None:
        events.append(("SIM/Updated", {"i_account": i_account}))
    return events


def _take_card(db: sqlite3.Connection, i_sim_card: int, status: str) -> None:
    """The card no longer belongs to any account, and takes `status`."""
    db.execute(
        "UPDATE sim_cards SET i_account = NULL, msisdn = NULL, status = ? WHERE i_sim_card = ?",
        (status, i_sim_card),
    )


def _release_card(db: sqlite3.Connection, card: sqlite3.Row) -> Event:
    _take_card(db, card["i_sim_card"], "disposed")
    return _sim_status_changed(card["i_sim_card"], None, "disposed", card["status"])


def create_account(
    db: sqlite3.Connection, i_customer: int | None = None, i_product: int | None = None
) -> list[Event]:
    """A new account on a main product (its access policy and included add-ons with it)."""

    def apply() -> list[Event]:
        top = db.execute("SELECT MAX(i_account) FROM accounts").fetchone()[0]
        i_account = (top or FIRST_ACCOUNT - 1) + 1
        customer = (
            i_customer
            or db.execute("SELECT MIN(i_customer) FROM customers WHERE deleted = 0").fetchone()[0]
        )
        _customer(db, customer)
        product = _main_product(i_product or MAIN_PRODUCTS[0].i_product)
        msisdn = msisdn_of(i_account)
        db.execute(
            "INSERT INTO accounts VALUES (?,?,?,?,'O',1,'N',0,50,'Europe/Prague',"
            "'New','Subscriber',"
            "?,?,'10000','Y',?,?,?,0)",
            (
                i_account,
                f"{msisdn}@msisdn",
                customer,
                product.i_product,
                f"new{i_account}@example.org",
                msisdn,
                product.i_access_policy,
                _now(),
                secrets.token_urlsafe(9),
            ),
        )
        for addon in sorted(product.included_addons):
            _attach_addon(db, i_account, addon)
        return [("Subscriber/Created", {"i_account": i_account})]

    return _in_transaction(db, apply)


def _main_product(i_product: int) -> MainProduct:
    try:
        return main_product(i_product)
    except KeyError:
        raise ChangeError(f"no main product {i_product}") from None


def assign_sim(
    db: sqlite3.Connection, i_account: int, i_sim_card: int | None = None
) -> list[Event]:
    """Give the account a SIM card (a free one if none is named); the old one is disposed."""

    def apply() -> list[Event]:
        account = _account(db, i_account)
        if i_sim_card is None:
            card = db.execute(
                "SELECT * FROM sim_cards WHERE i_account IS NULL AND status = 'active'"
                " ORDER BY i_sim_card LIMIT 1"
            ).fetchone()
            if card is None:
                raise ChangeError("no free SIM card left in the inventory")
        else:
            card = db.execute(
                "SELECT * FROM sim_cards WHERE i_sim_card = ?", (i_sim_card,)
            ).fetchone()
            if card is None or card["i_account"] is not None or card["status"] != "active":
                raise ChangeError(
                    f"SIM card {i_sim_card} does not exist or is not available (status active)"
                )
        previous = _card_of(db, i_account)
        released = [_release_card(db, previous)] if previous is not None else []
        db.execute(
            "UPDATE sim_cards SET i_account = ?, msisdn = ?, status = 'used' WHERE i_sim_card = ?",
            (i_account, account["phone1"], card["i_sim_card"]),
        )
        replaced: dict[str, Any] = {"i_account": i_account, "i_sim_card": card["i_sim_card"]}
        if previous is not None:
            replaced["prev_i_sim_card"] = previous["i_sim_card"]
        return [
            ("Subscriber/Updated", {"i_account": i_account}),
            ("SIM/Replaced", replaced),
            _sim_status_changed(card["i_sim_card"], i_account, "used", card["status"]),
            *released,
        ]

    return _in_transaction(db, apply)


def _update_account(
    db: sqlite3.Connection, i_account: int, sql: str, *args: object, sim_trigger: bool = True
) -> list[Event]:
    def apply() -> list[Event]:
        _account(db, i_account)
        db.execute(f"UPDATE accounts SET {sql} WHERE i_account = ?", (*args, i_account))  # noqa: S608
        return _account_changed(db, i_account, sim_trigger)

    return _in_transaction(db, apply)


def block(db: sqlite3.Connection, i_account: int, blocked: bool) -> list[Event]:
    return _update_account(db, i_account, "blocked = ?", "Y" if blocked else "N")


def set_password(db: sqlite3.Connection, i_account: int, password: str) -> list[Event]:
    """Change the account's service password (h323_password); no SIM/Updated trigger."""
    if not 1 <= len(password) <= 64:
        raise ChangeError("password must be 1 to 64 characters")
    return _update_account(db, i_account, "h323_password = ?", password, sim_trigger=False)


def set_bill_status(db: sqlite3.Connection, i_account: int, bill_status: str) -> list[Event]:
    if bill_status not in {"O", "S", "I", "C"}:
        raise ChangeError("bill_status must be one of O, S, I, C")
    return _update_account(db, i_account, "bill_status = ?", bill_status)


def change_product(db: sqlite3.Connection, i_account: int, i_product: int) -> list[Event]:
    """Move the account to another main product. The product brings its access policy and
    its included add-ons; add-ons the old product included, or the new one does not allow,
    are removed."""
    product = _main_product(i_product)

    def apply() -> list[Event]:
        account = _account(db, i_account)
        old = main_product(account["i_product"])
        db.execute(
            "UPDATE accounts SET i_product = ?, i_access_policy = ? WHERE i_account = ?",
            (product.i_product, product.i_access_policy, i_account),
        )
        for (addon,) in db.execute(
            "SELECT i_product FROM account_addons WHERE i_account = ?", (i_account,)
        ).fetchall():
            dropped = addon in old.included_addons - product.included_addons
            if dropped or addon not in product.allowed_addons:
                _detach_addon(db, i_account, addon)
        for addon in sorted(product.included_addons):
            _attach_addon(db, i_account, addon)
        return _account_changed(db, i_account)

    return _in_transaction(db, apply)


def change_access_policy(
    db: sqlite3.Connection, i_account: int, i_access_policy: int
) -> list[Event]:
    """Give the account another access policy (its service feature netaccess_policy): the
    policy's attributes (eps_profile...) decide the HSS's APNs and bitrates."""
    if i_access_policy not in {p[0] for p in ACCESS_POLICIES}:
        raise ChangeError(f"no access policy {i_access_policy}")
    return _update_account(db, i_account, "i_access_policy = ?", i_access_policy)


def top_up(db: sqlite3.Connection, i_account: int, amount: float) -> list[Event]:
    """Top up the balance (Subscriber/Updated; a balance top-up is no SIM/Updated trigger)."""
    if amount <= 0:
        raise ChangeError("amount must be positive")
    return _update_account(db, i_account, "balance = balance + ?", amount, sim_trigger=False)


def _addon(i_product: int) -> tuple[int, str, int, int]:
    addon = next((a for a in ADDON_PRODUCTS if a[0] == i_product), None)
    if addon is None:
        raise ChangeError(f"no add-on product {i_product}")
    return addon


def _attach_addon(db: sqlite3.Connection, i_account: int, i_product: int) -> None:
    addon = _addon(i_product)
    db.execute(
        "INSERT OR IGNORE INTO account_addons VALUES (?, ?, ?, NULL)",
        (i_account, i_product, _now()),
    )
    db.execute("INSERT OR IGNORE INTO vd_usage VALUES (?, ?, 0)", (i_account, addon[2]))


def _detach_addon(db: sqlite3.Connection, i_account: int, i_product: int) -> bool:
    gone = db.execute(
        "DELETE FROM account_addons WHERE i_account = ? AND i_product = ?",
        (i_account, i_product),
    ).rowcount
    db.execute(
        "DELETE FROM vd_usage WHERE i_account = ? AND i_vd_plan = ?",
        (i_account, _addon(i_product)[2]),
    )
    return bool(gone)


def add_addon(db: sqlite3.Connection, i_account: int, i_product: int) -> list[Event]:
    _addon(i_product)

    def apply() -> list[Event]:
        account = _account(db, i_account)
        if i_product not in main_product(account["i_product"]).allowed_addons:
            raise ChangeError(
                f"add-on {i_product} is not allowed with the account's product"
                f" {account['i_product']}"
            )
        _attach_addon(db, i_account, i_product)
        return _account_changed(db, i_account)

    return _in_transaction(db, apply)


def remove_addon(db: sqlite3.Connection, i_account: int, i_product: int) -> list[Event]:
    _addon(i_product)

    def apply() -> list[Event]:
        _account(db, i_account)
        if not _detach_addon(db, i_account, i_product):
            raise ChangeError(f"account {i_account} has no add-on {i_product}")
        return _account_changed(db, i_account)

    return _in_transaction(db, apply)


def _bundles(db: sqlite3.Connection, i_account: int) -> list[sqlite3.Row]:
    """The account's bundles (its product's and its add-ons'), with their usage."""
    rows: list[sqlite3.Row] = db.execute(
        "SELECT v.i_vd_plan, v.service_name, v.allocated_amount, COALESCE(u.used, 0) AS used"
        " FROM vd_plans v LEFT JOIN vd_usage u ON u.i_account = ? AND u.i_vd_plan = v.i_vd_plan"
        " WHERE v.i_vd_plan IN (SELECT p.i_vd_plan FROM products p JOIN accounts a"
        "   ON a.i_product = p.i_product WHERE a.i_account = ?"
        "  UNION SELECT p.i_vd_plan FROM products p JOIN account_addons d"
        "   ON d.i_product = p.i_product WHERE d.i_account = ?)",
        (i_account, i_account, i_account),
    ).fetchall()
    return rows


def exceed_quota(db: sqlite3.Connection, i_account: int) -> list[Event]:
    """Use up every bundle of the account: Account/Service/QuotaExceeded; SIM/Updated too
    when a bundle of a service other than Internet access or messaging ran out."""

    def apply() -> list[Event]:
        _account(db, i_account)
        bundles = _bundles(db, i_account)
        for bundle in bundles:
            db.execute(
                "INSERT OR REPLACE INTO vd_usage VALUES (?, ?, ?)",
                (i_account, bundle["i_vd_plan"], bundle["allocated_amount"]),
            )
        events: list[Event] = [("Account/Service/QuotaExceeded", {"i_account": i_account})]
        sim_trigger = any(
            not bundle["service_name"].startswith(QUOTA_SERVICES_WITHOUT_SIM_EVENT)
            for bundle in bundles
        )
        if sim_trigger and _card_of(db, i_account) is not None:
            events.append(("SIM/Updated", {"i_account": i_account}))
        return events

    return _in_transaction(db, apply)


def renew_bundles(db: sqlite3.Connection, i_account: int) -> list[Event]:
    """Renew every bundle of the account (counters back to zero), as at the start of a
    billing period: Subscriber/Updated and SIM/Updated, and Account/Service/QuotaAvailable
    when a bundle had run out."""

    def apply() -> list[Event]:
        _account(db, i_account)
        bundles = _bundles(db, i_account)
        exhausted = any(b["used"] >= b["allocated_amount"] for b in bundles)
        db.execute("UPDATE vd_usage SET used = 0 WHERE i_account = ?", (i_account,))
        events = _account_changed(db, i_account)
        if exhausted:
            events.append(("Account/Service/QuotaAvailable", {"i_account": i_account}))
        return events

    return _in_transaction(db, apply)


def _close_account(db: sqlite3.Connection, i_account: int) -> list[Event]:
    db.execute(
        "UPDATE accounts SET deleted = 1, bill_status = 'C' WHERE i_account = ?", (i_account,)
    )
    events: list[Event] = [("Subscriber/Deleted", {"i_account": i_account})]
    card = _card_of(db, i_account)
    if card is not None:
        events.append(
            ("SIM/Replaced", {"i_account": i_account, "prev_i_sim_card": card["i_sim_card"]})
        )
        events.append(_release_card(db, card))
    return events


def delete_account(db: sqlite3.Connection, i_account: int) -> list[Event]:
    """Terminate the account: closed, still readable; its SIM card released and disposed."""

    def apply() -> list[Event]:
        _account(db, i_account)
        return _close_account(db, i_account)

    return _in_transaction(db, apply)


def _customer(db: sqlite3.Connection, i_customer: int) -> sqlite3.Row:
    return _existing(
        db,
        f"no customer {i_customer}",
        "SELECT * FROM customers WHERE i_customer = ? AND deleted = 0",
        i_customer,
    )


def _customer_accounts(db: sqlite3.Connection, i_customer: int) -> list[int]:
    return [
        row[0]
        for row in db.execute(
            "SELECT i_account FROM accounts WHERE i_customer = ? AND deleted = 0"
            " ORDER BY i_account",
            (i_customer,),
        ).fetchall()
    ]


def create_customer(db: sqlite3.Connection, name: str) -> list[Event]:
    if not 1 <= len(name) <= 100:
        raise ChangeError("name must be 1 to 100 characters")

    def apply() -> list[Event]:
        top = db.execute("SELECT MAX(i_customer) FROM customers").fetchone()[0] or 6_000
        first, _, last = name.partition(" ")
        db.execute(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, 'O', 0, 100, 'EUR', 0)",
            (top + 1, name, first, last, f"customer{top + 1}@example.net"),
        )
        return [("Customer/Created", {"i_customer": top + 1})]

    return _in_transaction(db, apply)


def update_customer(
    db: sqlite3.Connection, i_customer: int, name: str | None = None, bill_status: str | None = None
) -> list[Event]:
    """Rename the customer or change its billing status. A status change reaches every
    account of the customer (their billing status is affected by it): Subscriber/Updated
    and SIM/Updated for each."""
    if bill_status is not None and bill_status not in {"O", "S", "C"}:
        raise ChangeError("bill_status must be one of O, S, C")

    def apply() -> list[Event]:
        customer = _customer(db, i_customer)
        if name:
            db.execute("UPDATE customers SET name = ? WHERE i_customer = ?", (name, i_customer))
        events: list[Event] = [("Customer/Updated", {"i_customer": i_customer})]
        if bill_status and bill_status != customer["bill_status"]:
            db.execute(
                "UPDATE customers SET bill_status = ? WHERE i_customer = ?",
                (bill_status, i_customer),
            )
            for i_account in _customer_accounts(db, i_customer):
                events.extend(_account_changed(db, i_account))
        return events

    return _in_transaction(db, apply)


def delete_customer(db: sqlite3.Connection, i_customer: int) -> list[Event]:
    """Terminate the customer: closed and still readable; every account of it terminated."""

    def apply() -> list[Event]:
        _customer(db, i_customer)
        db.execute(
            "UPDATE customers SET bill_status = 'C', deleted = 1 WHERE i_customer = ?",
            (i_customer,),
        )
        events: list[Event] = []
        for i_account in _customer_accounts(db, i_customer):
            events.extend(_close_account(db, i_account))
        return [*events, ("Customer/Deleted", {"i_customer": i_customer})]

    return _in_transaction(db, apply)


def add_sim(db: sqlite3.Connection) -> list[Event]:
    """Add a new SIM card to the inventory (available): SIM/Created."""

    def apply() -> list[Event]:
        top = db.execute("SELECT MAX(i_sim_card) FROM sim_cards").fetchone()[0]
        i_sim_card = (top or FIRST_SIM - 1) + 1
        serial = i_sim_card - FIRST_SIM
        db.execute(
            "INSERT INTO sim_cards VALUES (?, ?, ?, NULL, 'active', NULL)",
            (i_sim_card, imsi_of(serial), iccid_of(serial)),
        )
        return [("SIM/Created", {"i_sim_card": i_sim_card})]

    return _in_transaction(db, apply)


def set_sim_status(db: sqlite3.Connection, i_sim_card: int, status: str) -> list[Event]:
    """Change a SIM card's status in the inventory: SIM/Updated with curr_status and
    prev_status (and i_account when the card is assigned)."""

    def apply() -> list[Event]:
        card = _sim_card(db, i_sim_card)
        allowed = FREE_SIM_STATUSES if card["i_account"] is None else ASSIGNED_SIM_STATUSES
        if status not in allowed:
            where = "a free" if card["i_account"] is None else "an assigned"
            raise ChangeError(
                f"{where} SIM card's status must be one of {', '.join(sorted(allowed))}"
            )
        if status == card["status"]:
            return []
        db.execute("UPDATE sim_cards SET status = ? WHERE i_sim_card = ?", (status, i_sim_card))
        return [_sim_status_changed(i_sim_card, card["i_account"], status, card["status"])]

    return _in_transaction(db, apply)


def remove_sim(db: sqlite3.Connection, i_sim_card: int) -> list[Event]:
    """Remove a SIM card from the inventory (it stays readable, status "deleted"). An
    assigned card is first taken from its account: Subscriber/Updated and SIM/Replaced."""

    def apply() -> list[Event]:
        card = _sim_card(db, i_sim_card)
        i_account = card["i_account"]
        events: list[Event] = []
        if i_account is not None:
            events = [
                ("Subscriber/Updated", {"i_account": i_account}),
                ("SIM/Replaced", {"i_account": i_account, "prev_i_sim_card": i_sim_card}),
            ]
        _take_card(db, i_sim_card, "deleted")
        return [*events, ("SIM/Deleted", _card_variables(i_sim_card, i_account))]

    return _in_transaction(db, apply)


def _sim_card(db: sqlite3.Connection, i_sim_card: int) -> sqlite3.Row:
    return _existing(
        db,
        f"no SIM card {i_sim_card}",
        "SELECT * FROM sim_cards WHERE i_sim_card = ? AND status != 'deleted'",
        i_sim_card,
    )


def issue_invoice(db: sqlite3.Connection, i_customer: int, amount: float) -> list[Event]:
    def apply() -> list[Event]:
        if (
            db.execute("SELECT 1 FROM customers WHERE i_customer = ?", (i_customer,)).fetchone()
            is None
        ):
            raise ChangeError(f"no customer {i_customer}")
        top = db.execute("SELECT MAX(i_invoice) FROM invoices").fetchone()[0] or 900_000
        i_invoice = top + 1
        today = _now()
        db.execute(
            "INSERT INTO invoices VALUES (?, ?, ?, ?, ?, ?, 0, 'unpaid')",
            (i_invoice, i_customer, f"INV-{i_invoice}", today, today, round(amount, 2)),
        )
        return [("Invoice/Created", {"i_customer": i_customer, "i_invoice": i_invoice})]

    return _in_transaction(db, apply)


def pay_invoice(db: sqlite3.Connection, i_invoice: int) -> list[Event]:
    def apply() -> list[Event]:
        row = db.execute(
            "SELECT i_customer FROM invoices WHERE i_invoice = ?", (i_invoice,)
        ).fetchone()
        if row is None:
            raise ChangeError(f"no invoice {i_invoice}")
        db.execute(
            "UPDATE invoices SET amount_paid = amount_net, invoice_status = 'paid'"
            " WHERE i_invoice = ?",
            (i_invoice,),
        )
        return [("Invoice/Updated", {"i_customer": row[0], "i_invoice": i_invoice})]

    return _in_transaction(db, apply)


def add_did(db: sqlite3.Connection, number: str) -> list[Event]:
    def apply() -> list[Event]:
        if db.execute("SELECT 1 FROM dids WHERE number = ?", (number,)).fetchone() is not None:
            raise ChangeError(f"DID {number} exists")
        top = db.execute("SELECT MAX(i_did_number) FROM dids").fetchone()[0] or 50_000
        db.execute(
            "INSERT INTO dids VALUES (?, ?, NULL, NULL, 'US', 0.5, 2.0, 0)", (number, top + 1)
        )
        return [("DID/Created", {"number": number})]

    return _in_transaction(db, apply)


def assign_did(db: sqlite3.Connection, number: str, i_account: int | None) -> list[Event]:
    def apply() -> list[Event]:
        if (
            db.execute("SELECT 1 FROM dids WHERE number = ? AND deleted = 0", (number,)).fetchone()
            is None
        ):
            raise ChangeError(f"no DID {number}")
        customer = _account(db, i_account)["i_customer"] if i_account is not None else None
        db.execute(
            "UPDATE dids SET i_account = ?, i_customer = ? WHERE number = ?",
            (i_account, customer, number),
        )
        return [("DID/Updated", {"number": number})]

    return _in_transaction(db, apply)


def remove_did(db: sqlite3.Connection, number: str) -> list[Event]:
    def apply() -> list[Event]:
        if (
            db.execute(
                "UPDATE dids SET deleted = 1 WHERE number = ? AND deleted = 0", (number,)
            ).rowcount
            == 0
        ):
            raise ChangeError(f"no DID {number}")
        return [("DID/Deleted", {"number": number})]

    return _in_transaction(db, apply)
