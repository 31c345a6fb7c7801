"""What FreeRADIUS's SQL tables should hold for one PortaBilling account (pure; no I/O).

- user name from a pb_data path (the account's `id` by default), its password the
  account's service password (`h323_password`) as `Cleartext-Password`;
- the user's group (`radusergroup`) from the product or an access-policy attribute,
  through the operator's mapping;
- per-user reply attributes (`radreply`) from pb_data paths;
- an account that is blocked, suspended or inactive keeps its rows plus
  `Auth-Type := Reject` (and a `Reply-Message` saying why), so FreeRADIUS refuses it;
- no account (deleted) or a terminated one: no rows at all, so the user is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opennsps.connector.errors import Rejected
from opennsps.portabilling.pb_data import SERVICE_PASSWORD

GONE_STATUSES = frozenset({"terminated", "closed"})
PASSWORD_ATTRIBUTE = "Cleartext-Password"  # noqa: S105 (an attribute name)
ACCESS_POLICY_PREFIX = "access_policy."

Row = tuple[str, str, str]  # (attribute, op, value) of radcheck / radreply


class RadiusOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    database: str = Field(
        description="SQLAlchemy URL of FreeRADIUS's SQL database (radcheck, radreply, "
        "radusergroup); e.g. sqlite:////var/lib/freeradius/radius.db"
    )
    create_tables: bool = Field(
        default=False,
        description="Create radcheck/radreply/radusergroup when missing (normally FreeRADIUS's "
        "own schema.sql has created them)",
    )
    links_table: str = Field(default="opennsps_radius_links", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    username: str = Field(default="account_info.id", description="pb_data path of the user name")
    group_from: str = Field(
        default="product_info.name",
        description="pb_data path of the value that picks the group; access_policy.<name> "
        "reads an attribute of the account's access policy",
    )
    groups: dict[str, str] = Field(
        default_factory=dict,
        description="group_from value → RADIUS group; empty: the value is the group name",
    )
    default_group: str | None = Field(
        default=None, description="The group when the value is not in `groups`"
    )
    group_priority: int = Field(default=1, ge=0)
    reply: dict[str, str] = Field(
        default_factory=dict, description="RADIUS reply attribute → pb_data path of its value"
    )
    reject_message: str | None = Field(
        default="Access refused: the account is blocked or not active",
        max_length=253,
        description="Reply-Message sent with the Access-Reject of a blocked or inactive "
        "account (null: none)",
    )

    @field_validator("username", "group_from")
    @classmethod
    def _path(cls, value: str) -> str:
        return _valid_path(value)

    @field_validator("reply")
    @classmethod
    def _reply_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for attribute, path in value.items():
            if not attribute or not attribute.replace("-", "").isalnum():
                raise ValueError(f"{attribute!r} is not a RADIUS attribute name")
            _valid_path(path)
        return value


def _valid_path(path: str) -> str:
    parts = path.split(".")
    if len(parts) < 2 or not all(parts):
        raise ValueError(
            f"{path!r} is not a pb_data path such as account_info.id, sim_info.imsi or "
            "access_policy.<attribute>"
        )
    return path


def value_at(pb_data: dict[str, Any], path: str) -> str | None:
    """The value at a dotted pb_data path as text; access_policy.<name> is an attribute of
    the account's access policy. None when absent or empty."""
    if path.startswith(ACCESS_POLICY_PREFIX):
        wanted = path[len(ACCESS_POLICY_PREFIX) :]
        policy = pb_data.get("access_policy_info") or {}
        for item in policy.get("attributes") or []:
            if item.get("name") == wanted and item.get("value") not in (None, ""):
                return str(item["value"])
        return None
    found: Any = pb_data
    for part in path.split("."):
        if not isinstance(found, dict):
            return None
        found = found.get(part)
    if found is None or found == "" or isinstance(found, dict | list):
        return None
    if isinstance(found, bool):
        return "1" if found else "0"
    return str(found)


@dataclass(frozen=True)
class RadiusUser:
    """Every row this connector owns for one user name, in a canonical order."""

    username: str
    check: tuple[Row, ...]
    reply: tuple[Row, ...]
    groups: tuple[tuple[str, int], ...]

    def differences(self, actual: RadiusUser | None) -> list[str]:
        """'table: FreeRADIUS has X, PortaBilling wants Y' for every table that disagrees;
        the password's value is never shown."""
        if actual is None:
            return [f"user {self.username!r} is missing from FreeRADIUS"]
        found = []
        for table, wanted, have in (
            ("radcheck", self.check, actual.check),
            ("radreply", self.reply, actual.reply),
            ("radusergroup", self.groups, actual.groups),
        ):
            if wanted != have:
                found.append(
                    f"{table} of {self.username!r}: FreeRADIUS has {_shown(have)}, "
                    f"PortaBilling wants {_shown(wanted)}"
                )
        return found


def _shown(rows: tuple[tuple[Any, ...], ...]) -> str:
    def one(row: tuple[Any, ...]) -> str:
        if row[0] == PASSWORD_ATTRIBUTE:
            return f"{row[0]} {row[1]} ******"
        return " ".join(str(part) for part in row)

    return "[" + ", ".join(one(row) for row in rows) + "]" if rows else "nothing"


def canonical(
    username: str,
    check: list[Row],
    reply: list[Row],
    groups: list[tuple[str, int]],
) -> RadiusUser:
    return RadiusUser(username, tuple(sorted(check)), tuple(sorted(reply)), tuple(sorted(groups)))


def _group(pb_data: dict[str, Any], options: RadiusOptions) -> str:
    value = value_at(pb_data, options.group_from)
    if not options.groups and value is not None:
        return value
    if value is not None and value in options.groups:
        return options.groups[value]
    if options.default_group is not None:
        return options.default_group
    raise Rejected(
        f"the account's {options.group_from} ({value!r}) has no RADIUS group: add it under the "
        "handler's options.groups, or set options.default_group"
    )


def desired_user(pb_data: dict[str, Any], options: RadiusOptions) -> RadiusUser | None:
    """The user PortaBilling wants, or None when it wants none. Raises Rejected when the
    account cannot be provisioned (no user name, no service password, no group)."""
    account = pb_data.get("account_info")
    if not account:
        return None
    status = str(account.get("bill_status") or "open")
    if status in GONE_STATUSES:
        return None
    username = value_at(pb_data, options.username)
    if username is None:
        raise Rejected(f"the account has no {options.username}: it cannot be a RADIUS user name")
    password = account.get(SERVICE_PASSWORD)
    if password is None:
        raise Rejected(
            "pb_data carries no service password (account_info.h323_password): set "
            "service_password: true on this handler"
        )
    if password == "":
        raise Rejected("the account has no service password in PortaBilling")
    check: list[Row] = [(PASSWORD_ATTRIBUTE, ":=", str(password))]
    reply: list[Row] = []
    if status == "open" and not account.get("blocked"):
        for attribute, path in options.reply.items():
            value = value_at(pb_data, path)
            if value is not None:
                reply.append((attribute, ":=", value))
    else:
        check.append(("Auth-Type", ":=", "Reject"))
        if options.reject_message:
            reply.append(("Reply-Message", ":=", options.reject_message))
    return canonical(username, check, reply, [(_group(pb_data, options), options.group_priority)])
