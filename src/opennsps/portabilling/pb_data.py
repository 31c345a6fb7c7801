"""Enrichment: PortaBilling's raw answers → the NSPS `pb_data` of an event.

Mappings (NSPS connector guide, connector OpenAPI contract):
- bill_status O/S/I/C → open/suspended/inactive/terminated
- billing_model -1/0/1/2/4 → debit_account/recharge_voucher/credit_account/alias/beneficiary
- blocked "Y"/"N" → true/false
An entity PortaBilling no longer has (a deleted account) gives partial data, never a failure.
A SIM event without an `i_account` (an inventory change) gets the card's `sim_info`, and
its account's data when the card is assigned. Event types outside the known groups get
account data when they name an `i_account`, else an empty `pb_data`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Collection
from typing import Any, Protocol

from opennsps.domain.events import event_group
from opennsps.domain.pb_data import PB_DATA_PARTS
from opennsps.domain.values import as_integer
from opennsps.portabilling.client import PortaBillingClient

# What needs Account/get_account_info: the account itself, and what it points to.
ACCOUNT_PARTS = frozenset({"account_info", "product_info", "access_policy_info"})
# Definitions, not subscriber data: no event announces their change (client.call).
REFERENCE_PARTS = frozenset({"product_info", "access_policy_info"})
BILL_STATUS = {"O": "open", "S": "suspended", "I": "inactive", "C": "terminated"}
BILLING_MODEL = {
    -1: "debit_account",
    0: "recharge_voucher",
    1: "credit_account",
    2: "alias",
    4: "beneficiary",
}
ACCOUNT_FIELDS = (
    "email",
    "firstname",
    "i_account",
    "i_customer",
    "i_master_account",
    "i_product",
    "i_vd_plan",
    "id",
    "lastname",
    "phone1",
    "product_name",
    "status",
    "time_zone_name",
    "zip",
)
ADDON_FIELDS = (
    "addon_effective_from",
    "addon_effective_to",
    "addon_priority",
    "description",
    "i_product",
    "i_product_group",
    "i_vd_plan",
    "name",
)
CARD_FIELDS = ("i_account", "i_sim_card", "iccid", "imsi", "msisdn", "status")
PRODUCT_FIELDS = ("name", "description", "addon_priority", "i_product")
ACCOUNT_GROUPS = frozenset({"Subscriber", "Account", "SIM"})
#: The account's service password: in pb_data only for handlers that ask for it.
SERVICE_PASSWORD = "h323_password"  # noqa: S105 (a field name)

Data = dict[str, Any]


class Call(Protocol):
    """PortaBillingClient.call with the event's freshness bound in."""

    def __call__(
        self, method: str, params: Data, *, reference: bool = False
    ) -> Awaitable[Data]: ...


def account_info(raw: Data) -> Data:
    info: Data = {name: raw[name] for name in ACCOUNT_FIELDS if name in raw}
    if "bill_status" in raw:
        info["bill_status"] = BILL_STATUS.get(str(raw["bill_status"]), raw["bill_status"])
    if "billing_model" in raw:
        code = as_integer(raw["billing_model"])
        info["billing_model"] = (
            BILLING_MODEL.get(code, str(raw["billing_model"])) if code is not None else None
        )
    if "blocked" in raw:
        info["blocked"] = str(raw["blocked"]).upper() == "Y"
    if raw.get(SERVICE_PASSWORD) is not None:
        info[SERVICE_PASSWORD] = str(raw[SERVICE_PASSWORD])
    info["assigned_addons"] = [
        {name: addon[name] for name in ADDON_FIELDS if name in addon}
        for addon in raw.get("assigned_addons") or []
    ]
    info["service_features"] = [
        {
            "name": feature.get("name"),
            "effective_flag_value": feature.get("effective_flag_value"),
            "attributes": [
                {"name": a.get("name"), "effective_value": _effective_value(a)}
                for a in feature.get("attributes") or []
            ],
        }
        for feature in raw.get("service_features") or []
    ]
    return info


def with_service_password(pb_data: Data, replacement: str | None) -> Data:
    """pb_data whose account service password is replaced (None: left out); the service
    password stays only in what goes to a handler that asked for it."""
    account = pb_data.get("account_info")
    if not isinstance(account, dict) or SERVICE_PASSWORD not in account:
        return pb_data
    changed = {k: v for k, v in account.items() if k != SERVICE_PASSWORD}
    if replacement is not None:
        changed[SERVICE_PASSWORD] = replacement
    return {**pb_data, "account_info": changed}


def _effective_value(attribute: Data) -> str | None:
    if attribute.get("effective_value") is not None:
        return str(attribute["effective_value"])
    values = attribute.get("effective_values") or attribute.get("values")
    return ",".join(str(v) for v in values) if values else None


def card_info(raw: Data) -> Data:
    return {name: raw[name] for name in CARD_FIELDS if name in raw}


def access_policy_id(raw_account: Data) -> int | None:
    """The access policy named by the account's netaccess_policy service feature."""
    for feature in raw_account.get("service_features") or []:
        if feature.get("name") != "netaccess_policy":
            continue
        for attribute in feature.get("attributes") or []:
            if attribute.get("name") == "access_policy":
                return as_integer(_effective_value(attribute))
    return None


class Enricher:
    def __init__(self, client: PortaBillingClient) -> None:
        self.client = client

    async def pb_data(
        self,
        event_type: str,
        variables: Data,
        *,
        fresh_after: float | None = None,
        parts: Collection[str] | None = None,
    ) -> Data:
        """The event's pb_data, read from answers sent after `fresh_after` (a Unix time);
        of an account, only `parts` (domain/pb_data.py) when given."""
        call = functools.partial(self.client.call, fresh_after=fresh_after)
        wanted = frozenset(parts) if parts is not None else PB_DATA_PARTS
        group = event_group(event_type)
        i_account = as_integer(variables.get("i_account"))
        if group == "SIM" and i_account is None:
            return await self._card(call, variables, wanted)
        if group in ACCOUNT_GROUPS or (
            i_account is not None and group not in {"Customer", "Invoice", "DID"}
        ):
            if i_account is None:
                return {}
            return await self._account(call, i_account, variables, wanted)
        if group == "Customer":
            return await self._one(
                call, "Customer/get_customer_info", "i_customer", variables, "customer_info"
            )
        if group == "Invoice":
            invoice, customer = await asyncio.gather(
                self._one(call, "Invoice/get_invoice_info", "i_invoice", variables, "invoice_info"),
                self._one(
                    call, "Customer/get_customer_info", "i_customer", variables, "customer_info"
                ),
            )
            return {**invoice, **customer}
        if group == "DID" and variables.get("number"):
            answer = await call("DID/get_number_info", {"number": str(variables["number"])})
            return {"number_info": answer["number_info"]} if "number_info" in answer else {}
        return {}

    @staticmethod
    async def _one(call: Call, method: str, key: str, variables: Data, answer_key: str) -> Data:
        value = as_integer(variables.get(key))
        if value is None:
            return {}
        answer = await call(method, {key: value})
        return {answer_key: answer[answer_key]} if answer_key in answer else {}

    @classmethod
    async def _card(cls, call: Call, variables: Data, wanted: frozenset[str]) -> Data:
        """A SIM event that names no account (an inventory change): the card, and its
        account's data when the card is assigned to one."""
        i_sim_card = as_integer(variables.get("i_sim_card"))
        if i_sim_card is None:
            return {}
        answer = await call("SIMCard/get_card_info", {"i_sim_card": i_sim_card})
        card = answer.get("sim_info")
        if not card:
            return {}
        i_account = as_integer(card.get("i_account"))
        if i_account is not None:
            return await cls._account(call, i_account, variables, wanted)
        return {"sim_info": card_info(card)}

    @staticmethod
    async def _account(call: Call, i_account: int, variables: Data, wanted: frozenset[str]) -> Data:
        """The account's parts that are `wanted`, with only the calls they need; products
        and access policies are reference data (client.call's `reference`)."""

        async def nothing() -> Data:
            return {}

        by_account = {"i_account": i_account}
        account, cards, counters = await asyncio.gather(
            call("Account/get_account_info", by_account) if wanted & ACCOUNT_PARTS else nothing(),
            call("SIMCard/get_card_list", by_account) if "sim_info" in wanted else nothing(),
            call("Account/get_full_vd_counter_info", by_account)
            if "full_vd_counter_info" in wanted
            else nothing(),
        )
        pb_data: Data = {}
        raw = account.get("account_info")
        lookups = []
        if raw:
            if "account_info" in wanted:
                pb_data["account_info"] = account_info(raw)
            policy = access_policy_id(raw) if "access_policy_info" in wanted else None
            if policy is not None:
                lookups.append(
                    (
                        "access_policy_info",
                        "AccessPolicy/get_access_policy_info",
                        {"i_access_policy": policy},
                    )
                )
            if raw.get("i_product") is not None and "product_info" in wanted:
                lookups.append(
                    ("product_info", "Product/get_product_info", {"i_product": raw["i_product"]})
                )
        previous = as_integer(variables.get("prev_i_sim_card"))
        if previous is not None and "prev_sim_info" in wanted:
            lookups.append(("prev_sim_info", "SIMCard/get_card_info", {"i_sim_card": previous}))
        card_list = cards.get("card_list") or []
        if card_list:
            pb_data["sim_info"] = card_info(card_list[0])
        answers = await asyncio.gather(
            *(
                call(method, params, reference=key in REFERENCE_PARTS)
                for key, method, params in lookups
            )
        )
        for (key, _, _), answer in zip(lookups, answers, strict=True):
            found = answer.get("sim_info" if key == "prev_sim_info" else key)
            if found:
                if key == "product_info":
                    found = {name: found[name] for name in PRODUCT_FIELDS if name in found}
                elif key == "prev_sim_info":
                    found = card_info(found)
                pb_data[key] = found
        if raw and "full_vd_counter_info" in counters:
            pb_data["full_vd_counter_info"] = counters["full_vd_counter_info"]
        return pb_data
