"""Console sessions: a signed cookie (JWT, HS256) naming the user, with a CSRF token that
every changing request must echo in the `X-CSRF-Token` header.

The signing key is created once and kept in the store, so every OpenNSPS process on one
database accepts the same sessions. The user is read again on every request: a removed
user or a changed role takes effect at once.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from opennsps.console.roles import Caller
from opennsps.console.users import ConsoleUser, UserStore
from opennsps.store.schema import runtime_flags

COOKIE = "opennsps_session"
CSRF_HEADER = "x-csrf-token"
KEY_FLAG = "console_session_key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SessionRefused(Exception):
    """No valid session; the message says why."""


@dataclass(frozen=True)
class Session:
    caller: Caller
    csrf: str
    expires_at: float


def session_key(engine: Engine) -> bytes:
    """The store's session-signing key, created by the first process that needs it."""
    with engine.connect() as connection:
        found = connection.execute(
            select(runtime_flags.c.value).where(runtime_flags.c.name == KEY_FLAG)
        ).scalar_one_or_none()
    if found is None:
        try:
            with engine.begin() as connection:
                connection.execute(
                    insert(runtime_flags).values(
                        name=KEY_FLAG, value=secrets.token_hex(32), updated_at=datetime.now(UTC)
                    )
                )
        except IntegrityError:
            pass  # another process created it first
        return session_key(engine)
    return bytes.fromhex(found)


class Sessions:
    def __init__(self, engine: Engine, users: UserStore, lifetime_seconds: float) -> None:
        self.engine = engine
        self.users = users
        self.lifetime = lifetime_seconds
        self._key: bytes | None = None

    def key(self) -> bytes:
        if self._key is None:
            self._key = session_key(self.engine)
        return self._key

    def issue(self, user: ConsoleUser) -> tuple[str, Session]:
        """A session for a user who just proved who they are."""
        now = time.time()
        session = Session(
            Caller(user.username, user.role), secrets.token_urlsafe(24), now + self.lifetime
        )
        token = jwt.encode(
            {
                "sub": user.username,
                "csrf": session.csrf,
                "iat": int(now),
                "exp": int(session.expires_at),
            },
            self.key(),
            algorithm="HS256",
        )
        return token, session

    def read(self, cookie: str | None) -> Session:
        if not cookie:
            raise SessionRefused("log in first")
        try:
            claims = jwt.decode(
                cookie,
                self.key(),
                algorithms=["HS256"],
                options={"require": ["sub", "exp", "csrf"]},
            )
        except jwt.ExpiredSignatureError:
            raise SessionRefused("the session has expired: log in again") from None
        except jwt.InvalidTokenError:
            raise SessionRefused("the session is not valid: log in again") from None
        user = self.users.get(str(claims["sub"]))
        if user is None:
            raise SessionRefused("this user no longer exists")
        return Session(Caller(user.username, user.role), str(claims["csrf"]), float(claims["exp"]))

    @staticmethod
    def check_csrf(session: Session, method: str, presented: str | None) -> None:
        if method in SAFE_METHODS:
            return
        if not presented or not hmac.compare_digest(presented, session.csrf):
            raise SessionRefused(
                f"a change from the console needs its session's {CSRF_HEADER} header"
            )
