"""Who an attempt was about, as operators search for it: the account, its MSISDN and IMSI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opennsps.domain.values import as_integer


@dataclass(frozen=True)
class Subject:
    i_account: int | None
    msisdn: str | None
    imsi: str | None


def _text(value: Any) -> str | None:
    return str(value).lstrip("+")[:32] if value not in (None, "") else None


def subject_of(variables: dict[str, Any], pb_data: dict[str, Any] | None) -> Subject:
    """The account from the ESPF event; MSISDN and IMSI from the SIM card PortaBilling
    reported (the MSISDN falls back to a numeric account id such as 420700000001@msisdn)."""
    data = pb_data or {}
    sim = data.get("sim_info") or {}
    account = data.get("account_info") or {}
    i_account = as_integer(variables.get("i_account"))
    if i_account is None:
        i_account = as_integer(account.get("i_account"))
    msisdn = _text(sim.get("msisdn"))
    if msisdn is None:
        local = str(account.get("id") or "").split("@")[0].lstrip("+")
        msisdn = local if local.isdigit() else None
    return Subject(i_account, msisdn, _text(sim.get("imsi")))
