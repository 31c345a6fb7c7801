"""Who is calling the management API, with roles viewer < operator < admin: an API token
(`Authorization: Bearer`) or a console session (cookie plus CSRF header on changes)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from opennsps.config import ApiToken
from opennsps.console.roles import RANK, Caller, Role
from opennsps.console.sessions import COOKIE, CSRF_HEADER, SessionRefused, Sessions
from opennsps.http_errors import ApiError


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


def _session_caller(request: Request) -> Caller | None:
    """The console user of a request carrying a session cookie; None without one."""
    sessions: Sessions | None = getattr(request.app.state, "console_sessions", None)
    cookie = request.cookies.get(COOKIE)
    if sessions is None or not cookie:
        return None
    try:
        session = sessions.read(cookie)
        sessions.check_csrf(session, request.method, request.headers.get(CSRF_HEADER))
    except SessionRefused as exc:
        raise ApiError(401, str(exc), "unauthorized") from None
    return session.caller


# Declared so that the OpenAPI description (and its /docs page's "Authorize") shows how to
# authenticate; the checks themselves are below, with their error messages.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="api_token",
    description="An API token from api.tokens: `Authorization: Bearer <token>`",
)
SESSION = APIKeyCookie(
    name=COOKIE,
    auto_error=False,
    scheme_name="console_session",
    description="A console session (POST /console/login); changes also need its "
    "X-CSRF-Token header",
)


def require(role: Role) -> Callable[..., Caller]:
    def dependency(
        request: Request,
        _token: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
        _session: Annotated[str | None, Security(SESSION)] = None,
    ) -> Caller:
        caller = None
        if "authorization" not in request.headers:
            caller = _session_caller(request)
        if caller is None:
            authenticator: TokenAuthenticator = request.app.state.api_auth
            caller = authenticator.caller(request.headers.get("authorization"))
        if RANK[caller.role] < RANK[role]:
            raise ApiError(
                403,
                f"this needs the {role} role; {caller.name!r} is {caller.role}",
                "forbidden",
            )
        return caller

    return dependency
