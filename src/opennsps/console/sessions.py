"""Console sessions, kept in the store: the cookie is a random token, the store holds its
SHA-256 with the user, the CSRF token every changing request must echo in the
`X-CSRF-Token` header, and the session's times.

Every OpenNSPS process on one database sees the same sessions, so ending one (logout, a
password or role change, the user's removal, an admin) takes effect at once everywhere.
A session ends when unused for the idle timeout, and in any case at its absolute expiry.
The user is read again on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Engine, delete, insert, select, update

from opennsps.console.roles import Caller
from opennsps.console.users import ConsoleUser, UserStore
from opennsps.store.schema import console_sessions

COOKIE = "opennsps_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: last_seen_at is written at most this often per session (not on every request).
TOUCH_EVERY = timedelta(seconds=30)
CLIENT_CHARS = 255


class SessionRefused(Exception):
    """No valid session; the message says why."""


@dataclass(frozen=True)
class Session:
    id: str
    caller: Caller
    csrf: str
    expires_at: datetime


@dataclass(frozen=True)
class SessionInfo:
    """A session as an admin sees it (never its token)."""

    id: str
    username: str
    client: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(
        self,
        engine: Engine,
        users: UserStore,
        lifetime_seconds: float,
        idle_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.users = users
        self.lifetime = lifetime_seconds
        self.idle = timedelta(seconds=idle_seconds)
        # last_seen_at is written at most this often (not on every request)
        self.touch_every = min(TOUCH_EVERY, self.idle / 4)
        self._now = clock

    def issue(self, user: ConsoleUser, client: str) -> tuple[str, Session]:
        """A session for a user who just proved who they are; (cookie token, session)."""
        now = self._now()
        token = secrets.token_urlsafe(32)
        session = Session(
            secrets.token_hex(16),
            Caller(user.username, user.role),
            secrets.token_urlsafe(24),
            now + timedelta(seconds=self.lifetime),
        )
        with self.engine.begin() as connection:
            connection.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now))
            connection.execute(
                insert(console_sessions).values(
                    id=session.id,
                    token_hash=token_hash(token),
                    username=user.username,
                    csrf=session.csrf,
                    client=_printable(client)[:CLIENT_CHARS],
                    created_at=now,
                    last_seen_at=now,
                    expires_at=session.expires_at,
                )
            )
        return token, session

    def read(self, cookie: str | None) -> Session:
        if not cookie:
            raise SessionRefused("log in first")
        with self.engine.connect() as connection:
            row = connection.execute(
                select(console_sessions).where(console_sessions.c.token_hash == token_hash(cookie))
            ).first()
        if row is None:
            raise SessionRefused("the session has ended or is not valid: log in again")
        found = row._mapping
        now = self._now()
        if now >= found["expires_at"]:
            self._end_where(console_sessions.c.id == found["id"])
            raise SessionRefused("the session has expired: log in again")
        if now - found["last_seen_at"] >= self.idle:
            self._end_where(console_sessions.c.id == found["id"])
            raise SessionRefused("the session ended after being unused: log in again")
        user = self.users.get(found["username"])
        if user is None:
            raise SessionRefused("this user no longer exists")
        if now - found["last_seen_at"] >= self.touch_every:
            with self.engine.begin() as connection:
                connection.execute(
                    update(console_sessions)
                    .where(console_sessions.c.id == found["id"])
                    .values(last_seen_at=now)
                )
        return Session(
            found["id"], Caller(user.username, user.role), found["csrf"], found["expires_at"]
        )

    def end(self, cookie: str | None) -> bool:
        """End the session of this cookie (logout); False if there was none."""
        if not cookie:
            return False
        return self._end_where(console_sessions.c.token_hash == token_hash(cookie)) > 0

    def end_for(self, username: str, session_id: str | None = None) -> int:
        """End a user's sessions (or one of them); how many ended."""
        condition = console_sessions.c.username == username
        if session_id is not None:
            condition = condition & (console_sessions.c.id == session_id)
        return self._end_where(condition)

    def list_for(self, username: str) -> list[SessionInfo]:
        now = self._now()
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(console_sessions)
                .where(console_sessions.c.username == username)
                .where(console_sessions.c.expires_at > now)
                .order_by(console_sessions.c.created_at)
            ).all()
        idle = self.idle
        return [
            SessionInfo(
                r.id,
                r.username,
                r.client,
                r.created_at,
                r.last_seen_at,
                min(r.expires_at, r.last_seen_at + idle),
            )
            for r in rows
            if now - r.last_seen_at < idle
        ]

    def _end_where(self, condition: ColumnElement[bool]) -> int:
        with self.engine.begin() as connection:
            ended: int = connection.execute(delete(console_sessions).where(condition)).rowcount
        return ended

    @staticmethod
    def check_csrf(session: Session, method: str, presented: str | None) -> None:
        if method in SAFE_METHODS:
            return
        if not presented or not hmac.compare_digest(presented, session.csrf):
            raise SessionRefused(
                f"a change from the console needs its session's {CSRF_HEADER} header"
            )


def _printable(text: str) -> str:
    """The client as shown to admins: a browser's user agent is the caller's own text."""
    return "".join(char for char in text if char.isprintable())
