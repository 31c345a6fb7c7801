"""What the HSS should hold for one PortaBilling account (pure; no I/O).

shared/reference/pyhss-api.md, "Mapping from PortaBilling": IMSI and MSISDN from the SIM
card, `enabled` only for an open, unblocked account, APNs and AMBR from the access policy's
profile attribute through the operator's mapping. No account, a terminated account or no
SIM card means: no subscriber at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from opennsps.connector.errors import Rejected

GONE_STATUSES = frozenset({"terminated", "closed"})


class ApnProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    apn_ids: list[int] = Field(min_length=1, description="PyHSS apn_id values, in order")
    default_apn: int | None = Field(default=None, description="Defaults to the first apn_id")
    ambr_dl: int = Field(default=999999, gt=0)
    ambr_ul: int = Field(default=999999, gt=0)

    @model_validator(mode="after")
    def _default_in_list(self) -> ApnProfile:
        if self.default_apn is not None and self.default_apn not in self.apn_ids:
            raise ValueError(f"default_apn {self.default_apn} is not one of apn_ids")
        return self


class HssOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="PyHSS's API, e.g. http://127.0.0.1:8080")
    provisioning_key: SecretStr | None = None
    timeout: float = Field(default=10.0, gt=0)
    links: str = Field(
        default="sqlite:///var/hss-links.db",
        description="SQLAlchemy URL of the table linking accounts to the IMSI provisioned",
    )
    profile_attribute: str = "eps_profile"
    profiles: dict[str, ApnProfile] = Field(min_length=1)
    default_profile: str | None = Field(
        default=None, description="Used when the account's access policy names no profile"
    )

    @model_validator(mode="after")
    def _default_known(self) -> HssOptions:
        if self.default_profile is not None and self.default_profile not in self.profiles:
            raise ValueError(f"default_profile {self.default_profile!r} is not in profiles")
        return self


@dataclass(frozen=True)
class Subscriber:
    """The PyHSS subscriber fields this connector owns."""

    imsi: str
    msisdn: str | None
    enabled: bool
    default_apn: int
    apn_list: str
    ue_ambr_dl: int
    ue_ambr_ul: int

    def fields(self) -> dict[str, Any]:
        """The fields to create the subscriber with (PyHSS refuses `msisdn: null`)."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    def changes(self, actual: dict[str, Any]) -> dict[str, Any]:
        """Only the owned fields that disagree with `actual`, for a partial PATCH. A number
        to remove is sent as "" (PyHSS answers 500 to `msisdn: null`)."""
        return {
            name: "" if wanted is None else wanted
            for name, _, wanted in self._disagreements(actual)
        }

    def differences(self, actual: dict[str, Any]) -> list[str]:
        """'field: HSS has X, PortaBilling wants Y' for every field that disagrees."""
        return [
            f"{name}: HSS has {have!r}, PortaBilling wants {wanted!r}"
            for name, have, wanted in self._disagreements(actual)
        ]

    def _disagreements(self, actual: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        found = []
        for name, wanted in asdict(self).items():
            have = actual.get(name)
            if name == "apn_list":
                have = ",".join(str(part).strip() for part in str(have or "").split(","))
            if _comparable(have) != _comparable(wanted):
                found.append((name, have, wanted))
        return found


def _comparable(value: Any) -> str:
    """PyHSS answers numbers and flags as JSON types and keeps a removed MSISDN as ""."""
    return "" if value is None else str(value)


def _msisdn(sim: dict[str, Any], account: dict[str, Any]) -> str | None:
    value = sim.get("msisdn") or str(account.get("id") or "").split("@")[0] or None
    return str(value).lstrip("+") if value else None


def _profile_name(pb_data: dict[str, Any], attribute: str) -> str | None:
    policy = pb_data.get("access_policy_info") or {}
    for item in policy.get("attributes") or []:
        if item.get("name") == attribute and item.get("value"):
            return str(item["value"])
    return None


def desired_subscriber(pb_data: dict[str, Any], options: HssOptions) -> Subscriber | None:
    """The subscriber PortaBilling wants, or None when it wants none. Raises Rejected when
    the account's profile has no APN mapping (an operator must add one)."""
    account = pb_data.get("account_info")
    sim = pb_data.get("sim_info")
    if not account or not sim or not sim.get("imsi"):
        return None
    status = str(account.get("bill_status") or "open")
    if status in GONE_STATUSES:
        return None
    name = _profile_name(pb_data, options.profile_attribute) or options.default_profile
    if name is None or name not in options.profiles:
        raise Rejected(
            f"the account's access policy profile {name!r} ({options.profile_attribute}) has no "
            f"APN mapping: add it under the handler's options.profiles"
        )
    profile = options.profiles[name]
    return Subscriber(
        imsi=str(sim["imsi"]),
        msisdn=_msisdn(sim, account),
        enabled=status == "open" and not account.get("blocked"),
        default_apn=profile.default_apn if profile.default_apn is not None else profile.apn_ids[0],
        apn_list=",".join(str(apn) for apn in profile.apn_ids),
        ue_ambr_dl=profile.ambr_dl,
        ue_ambr_ul=profile.ambr_ul,
    )


def previous_imsi(pb_data: dict[str, Any]) -> str | None:
    """The IMSI of the SIM card this event's SIM replaced (SIM/Replaced), if any."""
    previous = pb_data.get("prev_sim_info") or {}
    return str(previous["imsi"]) if previous.get("imsi") else None
