"""Roles of the management API and the console: viewer < operator < admin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["viewer", "operator", "admin"]
RANK: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}


@dataclass(frozen=True)
class Caller:
    """Who is calling: an API token's name or a console user's, with its role."""

    name: str
    role: Role
