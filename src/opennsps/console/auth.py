"""Token authentication of the management API, with roles viewer < operator < admin."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from opennsps.config import ApiToken
from opennsps.http_errors import ApiError

Role = Literal["viewer", "operator", "admin"]
RANK: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role


class TokenAuthenticator:
    def __init__(self, tokens: list[ApiToken]) -> None:
        self._tokens = [(t.token.get_secret_value().encode(), t.name, t.role) for t in tokens]

    def caller(self, authorization: str | None) -> Caller:
        if not self._tokens:
            raise ApiError(
                401, "the management API has no tokens configured (api.tokens)", "unauthorized"
            )
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise ApiError(401, "send 'Authorization: Bearer <api token>'", "unauthorized")
        found: Caller | None = None
        for secret, name, role in self._tokens:
            # Every token is compared, so timing does not tell which one nearly matched.
            if hmac.compare_digest(secret, presented.strip().encode()):
                found = Caller(name, role)
        if found is None:
            raise ApiError(401, "unknown API token", "unauthorized")
        return found


def require(role: Role) -> Callable[[Request], Caller]:
    def dependency(request: Request) -> Caller:
        authenticator: TokenAuthenticator = request.app.state.api_auth
        caller = authenticator.caller(request.headers.get("authorization"))
        if RANK[caller.role] < RANK[role]:
            raise ApiError(
                403,
                f"this needs the {role} role; token {caller.name!r} is {caller.role}",
                "forbidden",
            )
        return caller

    return dependency
