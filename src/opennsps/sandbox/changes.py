"""Changes made to the sandbox's PortaBilling data, each with the ESPF events it causes.

Every function applies one change in one transaction and returns the events to emit as
(event_type, variables). Unknown entities raise ChangeError with a reason.
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
    MAIN_PRODUCTS,
    addon_amount,
    msisdn_of,
)

Event = tuple[str, dict[str, Any]]


class ChangeError(ValueError):
    """The change cannot be applied; the message says why."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _account(db: sqlite3.Connection, i_account: int) -> sqlite3.Row:
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM accounts WHERE i_account = ? AND deleted = 0", (i_account,)
    ).fetchone()
    if row is None:
        raise ChangeError(f"no account {i_account}")
    return row


def _in_transaction(db: sqlite3.Connection, apply: Callable[[], list[Event]]) -> list[Event]:
    db.execute("BEGIN IMMEDIATE")
    try:
        events = apply()
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return events


def create_account(
    db: sqlite3.Connection, i_customer: int | None = None, i_product: int | None = None
) -> list[Event]:
    def apply() -> list[Event]:
        top = db.execute("SELECT MAX(i_account) FROM accounts").fetchone()[0]
        i_account = (top or FIRST_ACCOUNT - 1) + 1
        customer = i_customer or db.execute("SELECT MIN(i_customer) FROM customers").fetchone()[0]
        product = i_product or MAIN_PRODUCTS[0][0]
        if (
            db.execute(
                "SELECT 1 FROM products WHERE i_product = ? AND is_addon = 0", (product,)
            ).fetchone()
            is None
        ):
            raise ChangeError(f"no main product {product}")
        msisdn = msisdn_of(i_account)
        db.execute(
            "INSERT INTO accounts VALUES (?,?,?,?,'O',1,'N',0,50,'Europe/Prague',"
            "'New','Subscriber',"
            "?,?,'10000','Y',179,?,?,0)",
            (
                i_account,
                f"{msisdn}@msisdn",
                customer,
                product,
                f"new{i_account}@example.org",
                msisdn,
                _now(),
                secrets.token_urlsafe(9),
            ),
        )
        return [("Subscriber/Created", {"i_account": i_account})]

    return _in_transaction(db, apply)


def assign_sim(
    db: sqlite3.Connection, i_account: int, i_sim_card: int | None = None
) -> list[Event]:
    """Give the account a SIM card (a free one if none is named); the old one is released."""

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
            if card is None or card["i_account"] is not None:
                raise ChangeError(f"SIM card {i_sim_card} does not exist or is in use")
        previous = db.execute(
            "SELECT * FROM sim_cards WHERE i_account = ?", (i_account,)
        ).fetchone()
        if previous is not None:
            db.execute(
                "UPDATE sim_cards SET i_account = NULL, msisdn = NULL, status = 'disposed'"
                " WHERE i_sim_card = ?",
                (previous["i_sim_card"],),
            )
        db.execute(
            "UPDATE sim_cards SET i_account = ?, msisdn = ?, status = 'used' WHERE i_sim_card = ?",
            (i_account, account["phone1"], card["i_sim_card"]),
        )
        variables: dict[str, Any] = {"i_account": i_account, "i_sim_card": card["i_sim_card"]}
        if previous is not None:
            variables["prev_i_sim_card"] = previous["i_sim_card"]
        return [("SIM/Replaced", variables)]

    return _in_transaction(db, apply)


def _update_account(db: sqlite3.Connection, i_account: int, sql: str, *args: object) -> list[Event]:
    def apply() -> list[Event]:
        _account(db, i_account)
        db.execute(f"UPDATE accounts SET {sql} WHERE i_account = ?", (*args, i_account))  # noqa: S608
        return [("Subscriber/Updated", {"i_account": i_account})]

    return _in_transaction(db, apply)


def block(db: sqlite3.Connection, i_account: int, blocked: bool) -> list[Event]:
    return _update_account(db, i_account, "blocked = ?", "Y" if blocked else "N")


def set_password(db: sqlite3.Connection, i_account: int, password: str) -> list[Event]:
    """Change the account's service password (h323_password)."""
    if not 1 <= len(password) <= 64:
        raise ChangeError("password must be 1 to 64 characters")
    return _update_account(db, i_account, "h323_password = ?", password)


def set_bill_status(db: sqlite3.Connection, i_account: int, bill_status: str) -> list[Event]:
    if bill_status not in {"O", "S", "I", "C"}:
        raise ChangeError("bill_status must be one of O, S, I, C")
    return _update_account(db, i_account, "bill_status = ?", bill_status)


def change_product(db: sqlite3.Connection, i_account: int, i_product: int) -> list[Event]:
    if i_product not in {p[0] for p in MAIN_PRODUCTS}:
        raise ChangeError(f"no main product {i_product}")
    return _update_account(db, i_account, "i_product = ?", i_product)


def change_access_policy(
    db: sqlite3.Connection, i_account: int, i_access_policy: int
) -> list[Event]:
    """Give the account another access policy (its service feature netaccess_policy): the
    policy's attributes (eps_profile...) decide the HSS's APNs and bitrates."""
    if i_access_policy not in {p[0] for p in ACCESS_POLICIES}:
        raise ChangeError(f"no access policy {i_access_policy}")
    return _update_account(db, i_account, "i_access_policy = ?", i_access_policy)


def top_up(db: sqlite3.Connection, i_account: int, amount: float) -> list[Event]:
    if amount <= 0:
        raise ChangeError("amount must be positive")
    return _update_account(db, i_account, "balance = balance + ?", amount)


def add_addon(db: sqlite3.Connection, i_account: int, i_product: int) -> list[Event]:
    addon = next((a for a in ADDON_PRODUCTS if a[0] == i_product), None)
    if addon is None:
        raise ChangeError(f"no add-on product {i_product}")

    def apply() -> list[Event]:
        _account(db, i_account)
        db.execute(
            "INSERT OR REPLACE INTO account_addons VALUES (?, ?, ?, NULL)",
            (i_account, i_product, _now()),
        )
        db.execute("INSERT OR REPLACE INTO vd_usage VALUES (?, ?, 0)", (i_account, addon[2]))
        return [("Subscriber/Updated", {"i_account": i_account})]

    return _in_transaction(db, apply)


def remove_addon(db: sqlite3.Connection, i_account: int, i_product: int) -> list[Event]:
    def apply() -> list[Event]:
        _account(db, i_account)
        gone = db.execute(
            "DELETE FROM account_addons WHERE i_account = ? AND i_product = ?",
            (i_account, i_product),
        ).rowcount
        if not gone:
            raise ChangeError(f"account {i_account} has no add-on {i_product}")
        return [("Subscriber/Updated", {"i_account": i_account})]

    return _in_transaction(db, apply)


def exceed_quota(db: sqlite3.Connection, i_account: int) -> list[Event]:
    def apply() -> list[Event]:
        _account(db, i_account)
        plans = db.execute(
            "SELECT i_vd_plan FROM vd_usage WHERE i_account = ?", (i_account,)
        ).fetchall()
        for (plan,) in plans:
            db.execute(
                "UPDATE vd_usage SET used = ? WHERE i_account = ? AND i_vd_plan = ?",
                (addon_amount(plan), i_account, plan),
            )
        return [("Account/Service/QuotaExceeded", {"i_account": i_account})]

    return _in_transaction(db, apply)


def delete_account(db: sqlite3.Connection, i_account: int) -> list[Event]:
    def apply() -> list[Event]:
        _account(db, i_account)
        db.execute(
            "UPDATE accounts SET deleted = 1, bill_status = 'C' WHERE i_account = ?", (i_account,)
        )
        db.execute(
            "UPDATE sim_cards SET i_account = NULL, msisdn = NULL, status = 'disposed'"
            " WHERE i_account = ?",
            (i_account,),
        )
        return [("Subscriber/Deleted", {"i_account": i_account})]

    return _in_transaction(db, apply)


def update_customer(
    db: sqlite3.Connection, i_customer: int, name: str | None = None, bill_status: str | None = None
) -> list[Event]:
    def apply() -> list[Event]:
        if (
            db.execute(
                "SELECT 1 FROM customers WHERE i_customer = ? AND deleted = 0", (i_customer,)
            ).fetchone()
            is None
        ):
            raise ChangeError(f"no customer {i_customer}")
        if name:
            db.execute("UPDATE customers SET name = ? WHERE i_customer = ?", (name, i_customer))
        if bill_status:
            if bill_status not in {"O", "S", "C"}:
                raise ChangeError("bill_status must be one of O, S, C")
            db.execute(
                "UPDATE customers SET bill_status = ? WHERE i_customer = ?",
                (bill_status, i_customer),
            )
        return [("Customer/Updated", {"i_customer": i_customer})]

    return _in_transaction(db, apply)


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
