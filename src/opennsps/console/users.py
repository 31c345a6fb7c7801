"""Local console users: names, roles and scrypt-hashed passwords in the store."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, RowMapping, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from opennsps.console.roles import RANK, Role
from opennsps.store.schema import console_sessions, console_users

MIN_PASSWORD = 10
USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-@")
# scrypt's cost: about 50 ms and 16 MiB per hash on the machines we measured.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class UserError(ValueError):
    """The change cannot be made; the message says why."""


@dataclass(frozen=True)
class ConsoleUser:
    username: str
    role: Role
    created_at: datetime
    updated_at: datetime


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encoded[0]}${encoded[1]}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(base64.b64decode(digest)),
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


# Compared against when the user does not exist, so timing does not tell who exists.
_NOBODY = hash_password(secrets.token_urlsafe(16))


def check_username(username: str) -> str:
    if not 1 <= len(username) <= 64 or set(username) - USERNAME_CHARS:
        raise UserError(
            "a user name has 1 to 64 characters: lower-case letters, digits, '.', '_', '-', '@'"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def check_role(role: str) -> Role:
    if role not in RANK:
        raise UserError(f"role must be one of {', '.join(RANK)}")
    chosen: Role = role  # type: ignore[assignment]
    return chosen


class UserStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, username: str, password: str, role: str) -> ConsoleUser:
        now = datetime.now(UTC)
        row = {
            "username": check_username(username),
            "password_hash": hash_password(check_password(password)),
            "role": check_role(role),
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(console_users).values(row))
        except IntegrityError:
            raise UserError(f"user {username!r} exists already") from None
        return ConsoleUser(username, check_role(role), now, now)

    def set_password(self, username: str, password: str) -> None:
        self._update(username, password_hash=hash_password(check_password(password)))

    def set_role(self, username: str, role: str) -> None:
        self._update(username, role=check_role(role))

    def remove(self, username: str) -> None:
        """Remove the user; their console sessions end with them."""
        with self.engine.begin() as connection:
            gone = connection.execute(
                delete(console_users).where(console_users.c.username == username)
            ).rowcount
            _end_sessions(connection, username)
        if not gone:
            raise UserError(f"no user {username!r}")

    def get(self, username: str) -> ConsoleUser | None:
        row = self._row(username)
        return _user(row) if row is not None else None

    def list(self) -> list[ConsoleUser]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(console_users).order_by(console_users.c.username))
            return [_user(row._mapping) for row in rows]

    def verify(self, username: str, password: str) -> ConsoleUser | None:
        """The user if the password is theirs; None otherwise (same work either way)."""
        row = self._row(username)
        stored = row["password_hash"] if row is not None else _NOBODY
        if not password_matches(password, stored) or row is None:
            return None
        return _user(row)

    def _row(self, username: str) -> RowMapping | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(console_users).where(console_users.c.username == username)
            ).first()
        return row._mapping if row is not None else None

    def _update(self, username: str, **values: str) -> None:
        """A password or role change: the user's console sessions end (log in again)."""
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(console_users)
                .where(console_users.c.username == username)
                .values(**values, updated_at=datetime.now(UTC))
            ).rowcount
            _end_sessions(connection, username)
        if not changed:
            raise UserError(f"no user {username!r}")


def _end_sessions(connection: Connection, username: str) -> None:
    connection.execute(delete(console_sessions).where(console_sessions.c.username == username))


def _user(row: RowMapping) -> ConsoleUser:
    return ConsoleUser(
        row["username"], check_role(row["role"]), row["created_at"], row["updated_at"]
    )
