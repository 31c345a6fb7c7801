"""Reads of the sandbox dataset in PortaBilling's raw API shapes (one function per object)."""

from __future__ import annotations

import sqlite3
from typing import Any

Row = dict[str, Any]
EFFECTIVE_BILL_STATUS = (
    "CASE WHEN a.bill_status = 'C' OR c.bill_status = 'C' THEN 'C'"
    " WHEN c.bill_status = 'S' AND a.bill_status = 'O' THEN 'S' ELSE a.bill_status END"
)


def _one(db: sqlite3.Connection, sql: str, *args: object) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute(sql, args).fetchone()
    return row


def account_list(db: sqlite3.Connection, offset: int, limit: int) -> list[Row]:
    """Accounts in i_account order, the short form Account/get_account_list answers."""
    rows = db.execute(
        "SELECT a.i_account, a.id, a.i_customer, a.i_product,"  # noqa: S608 (constant SQL)
        f" {EFFECTIVE_BILL_STATUS} AS bill_status, a.blocked"
        " FROM accounts a JOIN customers c USING (i_customer)"
        " WHERE a.deleted = 0 ORDER BY a.i_account LIMIT ? OFFSET ?",
        (limit, offset),
    ).fetchall()
    return [dict(row) for row in rows]


def account_info(
    db: sqlite3.Connection, i_account: int | None = None, id: str | None = None
) -> Row | None:
    # A terminated account stays readable, closed (bill_status C, status closed), as
    # PortaBilling keeps it: ESPF guide, Example 3 reads the deleted account's ID.
    # The billing status is the account's own, or the customer's where that is worse: a
    # suspended customer suspends its accounts, a closed one closes them (NSPS connector
    # guide: an account's billing status "affected by the customer's billing status").
    select = (
        f"SELECT a.*, {EFFECTIVE_BILL_STATUS} AS effective_bill_status FROM accounts a"  # noqa: S608
        " JOIN customers c USING (i_customer)"
    )
    if i_account is not None:
        row = _one(db, f"{select} WHERE a.i_account = ?", i_account)
    else:
        row = _one(db, f"{select} WHERE a.id = ? ORDER BY a.deleted LIMIT 1", id)
    if row is None:
        return None
    product = _one(db, "SELECT name FROM products WHERE i_product = ?", row["i_product"])
    effective = row["effective_bill_status"]
    status = {"O": "active", "S": "suspended", "I": "inactive", "C": "closed"}[effective]
    if effective == "S" and row["bill_status"] != "S":
        status = "customer_suspended"
    elif row["blocked"] == "Y" and effective != "C":
        status = "blocked"
    info: Row = {
        "i_account": row["i_account"],
        "id": row["id"],
        "i_customer": row["i_customer"],
        "i_product": row["i_product"],
        "product_name": product["name"] if product else None,
        "bill_status": row["effective_bill_status"],
        "billing_model": row["billing_model"],
        "blocked": row["blocked"],
        "status": status,
        "balance": row["balance"],
        "credit_limit": row["credit_limit"],
        "iso_4217": "EUR",
        "time_zone_name": row["time_zone_name"],
        "firstname": row["firstname"],
        "lastname": row["lastname"],
        "email": row["email"],
        "phone1": row["phone1"],
        "zip": row["zip"],
        "activation_date": row["activation_date"][:10],
        "h323_password": row["h323_password"],
        "assigned_addons": assigned_addons(db, row["i_account"]),
        "service_features": service_features(row),
    }
    return info


def assigned_addons(db: sqlite3.Connection, i_account: int) -> list[Row]:
    rows = db.execute(
        "SELECT a.i_product, a.addon_effective_from, a.addon_effective_to, p.name, p.description,"
        " p.addon_priority, p.i_vd_plan FROM account_addons a JOIN products p USING (i_product)"
        " WHERE a.i_account = ? ORDER BY p.addon_priority",
        (i_account,),
    ).fetchall()
    return [
        {
            "i_product": r["i_product"],
            "name": r["name"],
            "description": r["description"],
            "addon_priority": r["addon_priority"],
            "i_vd_plan": r["i_vd_plan"],
            "addon_effective_from": r["addon_effective_from"].replace(" ", "T"),
            **(
                {"addon_effective_to": r["addon_effective_to"].replace(" ", "T")}
                if r["addon_effective_to"]
                else {}
            ),
        }
        for r in rows
    ]


def service_features(account: sqlite3.Row) -> list[Row]:
    features: list[Row] = [
        {
            "name": "netaccess_policy",
            "flag_value": account["netaccess_flag"],
            "effective_flag_value": account["netaccess_flag"],
            "attributes": [
                {
                    "name": "access_policy",
                    "values": [str(account["i_access_policy"] or "")],
                    "effective_values": [str(account["i_access_policy"] or "")],
                    "effective_value": str(account["i_access_policy"] or ""),
                }
            ],
        }
    ]
    return features


def custom_fields(db: sqlite3.Connection, i_account: int) -> list[Row]:
    rows = db.execute(
        "SELECT name, db_value FROM custom_fields WHERE i_account = ? ORDER BY name", (i_account,)
    ).fetchall()
    return [
        {"name": r["name"], "db_value": r["db_value"], "text_value": r["db_value"]} for r in rows
    ]


def _card(row: sqlite3.Row) -> Row:
    return {
        "i_sim_card": row["i_sim_card"],
        "imsi": row["imsi"],
        "iccid": row["iccid"],
        "msisdn": row["msisdn"],
        "status": row["status"],
        "i_account": row["i_account"],
    }


def card_list(db: sqlite3.Connection, i_account: int) -> list[Row]:
    rows = db.execute(
        "SELECT * FROM sim_cards WHERE i_account = ? ORDER BY i_sim_card", (i_account,)
    ).fetchall()
    return [_card(r) for r in rows]


def card_info(db: sqlite3.Connection, i_sim_card: int | None, imsi: str | None) -> Row | None:
    if i_sim_card is not None:
        row = _one(db, "SELECT * FROM sim_cards WHERE i_sim_card = ?", i_sim_card)
    else:
        row = _one(db, "SELECT * FROM sim_cards WHERE imsi = ?", imsi)
    return _card(row) if row else None


def access_policy_info(db: sqlite3.Connection, i_access_policy: int) -> Row | None:
    row = _one(db, "SELECT * FROM access_policies WHERE i_access_policy = ?", i_access_policy)
    if row is None:
        return None
    attributes = db.execute(
        "SELECT group_name, name, value FROM access_policy_attributes WHERE i_access_policy = ?",
        (i_access_policy,),
    ).fetchall()
    return {
        "i_access_policy": row["i_access_policy"],
        "name": row["name"],
        "attributes": [
            {"group_name": a["group_name"], "name": a["name"], "value": a["value"]}
            for a in attributes
        ],
    }


def product_info(db: sqlite3.Connection, i_product: int) -> Row | None:
    row = _one(db, "SELECT * FROM products WHERE i_product = ?", i_product)
    if row is None:
        return None
    return {
        "i_product": row["i_product"],
        "name": row["name"],
        "description": row["description"],
        "addon_priority": row["addon_priority"],
        "i_vd_plan": row["i_vd_plan"],
    }


def full_vd_counter_info(db: sqlite3.Connection, i_account: int) -> list[Row]:
    account = _one(
        db, "SELECT i_product FROM accounts WHERE i_account = ? AND deleted = 0", i_account
    )
    if account is None:
        return []
    rows = db.execute(
        "SELECT v.*, p.addon_priority, COALESCE(u.used, 0) AS used FROM products p"
        " JOIN vd_plans v ON v.i_vd_plan = p.i_vd_plan"
        " LEFT JOIN vd_usage u ON u.i_account = ? AND u.i_vd_plan = v.i_vd_plan"
        " WHERE p.i_product = ? OR p.i_product IN"
        " (SELECT i_product FROM account_addons WHERE i_account = ?)"
        " ORDER BY p.addon_priority",
        (i_account, account["i_product"], i_account),
    ).fetchall()
    return [
        {
            "service_name": r["service_name"],
            "vdp_name": r["name"],
            "i_vd_plan": r["i_vd_plan"],
            "i_dest_group": r["i_dest_group"],
            "addon_priority": r["addon_priority"],
            "i_vd_dg": r["i_vd_dg"],
            "remaining": str(max(0, r["allocated_amount"] - r["used"])),
            "i_service": r["i_service"],
            "dg_name": r["dg_name"],
            "discount_info": f"0..{r['allocated_amount']} - 100%",
            "unit": r["unit"],
            "allocated_amount": r["allocated_amount"],
        }
        for r in rows
    ]


def customer_info(db: sqlite3.Connection, i_customer: int) -> Row | None:
    row = _one(db, "SELECT * FROM customers WHERE i_customer = ?", i_customer)
    if row is None:
        return None
    return {key: value for key, value in dict(row).items() if key != "deleted"}


def invoice_info(db: sqlite3.Connection, i_invoice: int) -> Row | None:
    row = _one(db, "SELECT * FROM invoices WHERE i_invoice = ?", i_invoice)
    if row is None:
        return None
    info = dict(row)
    info["amount_due"] = round(row["amount_net"] - row["amount_paid"], 2)
    return info


def number_info(db: sqlite3.Connection, number: str) -> Row | None:
    row = _one(db, "SELECT * FROM dids WHERE number = ? AND deleted = 0", number)
    if row is None:
        return None
    return {key: value for key, value in dict(row).items() if key != "deleted"}
