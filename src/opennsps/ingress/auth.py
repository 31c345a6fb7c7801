"""The four ESPF authentication schemes of the ESPF guide's Appendix A.

Each authenticator checks the request headers only and returns None when the request is
authentic, or a reason (never containing a secret) when it is not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

import jwt

from opennsps.config import AuthConfig, BasicAuth, BearerAuth, CustomAuth, SignatureAuth

Headers = Mapping[str, str]
Clock = Callable[[], float]

# HTTP authentication schemes (IANA's registry, and ESPF's Signature): safe to name back.
KNOWN_SCHEMES = frozenset(
    {"basic", "bearer", "digest", "signature", "negotiate", "hoba", "mutual", "ntlm", "oauth"}
)
SIGNATURE_PARAM = re.compile(r'([A-Za-z]+)\s*=\s*"([^"]*)"')


class Authenticator(Protocol):
    @property
    def challenge(self) -> str:
        """The WWW-Authenticate value sent with a 401."""

    def authenticate(self, headers: Headers) -> str | None: ...


def _credentials(headers: Headers, scheme: str) -> tuple[str, None] | tuple[None, str]:
    """(the credentials after `scheme`, None), or (None, why the header does not do)."""
    value = headers.get("authorization")
    if not value:
        return None, f"missing Authorization header ({scheme} expected)"
    given, _, rest = value.strip().partition(" ")
    if given.lower() != scheme.lower():
        # A credential sent without its scheme would be the first word: never repeat it.
        shown = repr(given) if given.lower() in KNOWN_SCHEMES else "(not shown)"
        return None, f"Authorization scheme {shown} is not {scheme}"
    return rest.strip(), None


@dataclass(frozen=True)
class BasicAuthenticator:
    expected: bytes
    challenge: str = 'Basic realm="OpenNSPS ESPF ingress", charset="UTF-8"'

    def authenticate(self, headers: Headers) -> str | None:
        encoded, problem = _credentials(headers, "Basic")
        if encoded is None:
            return problem
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return "Basic credentials are not valid base64"
        if not hmac.compare_digest(decoded, self.expected):
            return "Basic credentials do not match"
        return None


@dataclass(frozen=True)
class CustomAuthenticator:
    auth_type: str
    credentials: bytes

    @property
    def challenge(self) -> str:
        return self.auth_type

    def authenticate(self, headers: Headers) -> str | None:
        given, problem = _credentials(headers, self.auth_type)
        if given is None:
            return problem
        if not hmac.compare_digest(given.encode(), self.credentials):
            return f"{self.auth_type} credentials do not match"
        return None


@dataclass(frozen=True)
class SignatureAuthenticator:
    keys: Mapping[str, bytes]
    max_clock_skew: float
    clock: Clock = time.time
    challenge: str = 'Signature algorithm="hmac-sha1", headers="date"'

    def authenticate(self, headers: Headers) -> str | None:
        rest, problem = _credentials(headers, "Signature")
        if rest is None:
            return problem
        params = {name.lower(): value for name, value in SIGNATURE_PARAM.findall(rest)}
        key_id, algorithm, given = (
            params.get("keyid"),
            params.get("algorithm"),
            params.get("signature"),
        )
        if not key_id or not algorithm or not given:
            return "Signature needs keyId, algorithm and signature"
        if algorithm.lower() != "hmac-sha1":
            return f"Signature algorithm {algorithm[:32]!r} is not hmac-sha1"
        key = self.keys.get(key_id)
        if key is None:
            return f"Signature keyId {key_id[:64]!r} is not configured"
        date = headers.get("date")
        if not date:
            return "Signature needs a Date header"
        try:
            sent_at = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return "Date header is not an HTTP date"
        skew = abs(self.clock() - sent_at)
        if skew > self.max_clock_skew:
            return f"Date header is {skew:.0f} s away from now (limit {self.max_clock_skew:g} s)"
        expected = base64.b64encode(hmac.new(key, date.encode(), hashlib.sha1).digest())
        if not hmac.compare_digest(given.strip().encode(), expected):
            return "Signature does not match"
        return None


@dataclass(frozen=True)
class BearerAuthenticator:
    keys: tuple[bytes, ...]
    i_env: int
    leeway: float
    challenge: str = 'Bearer realm="OpenNSPS ESPF ingress"'

    def authenticate(self, headers: Headers) -> str | None:
        token, problem = _credentials(headers, "Bearer")
        if token is None:
            return problem
        last_problem = "Bearer token signature does not match any configured key"
        for key in self.keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=["HS256"],
                    options={"require": ["exp"]},
                    leeway=self.leeway,
                )
            except jwt.ExpiredSignatureError:
                return "Bearer token has expired"
            except jwt.MissingRequiredClaimError:
                return "Bearer token has no 'exp' claim"
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidAlgorithmError:
                return "Bearer token is not signed with HS256"
            except jwt.InvalidTokenError as exc:
                last_problem = f"Bearer token is invalid: {type(exc).__name__}"
                break
            i_env = claims.get("i_env")
            if isinstance(i_env, bool) or str(i_env).strip() != str(self.i_env):
                return f"Bearer token i_env {str(i_env)[:20]!r} is not this source's {self.i_env}"
            return None
        return last_problem


def build_authenticator(
    auth: AuthConfig, i_env: int | None, clock: Clock = time.time
) -> Authenticator:
    if isinstance(auth, BasicAuth):
        secret = f"{auth.username}:{auth.password.get_secret_value()}"
        return BasicAuthenticator(expected=secret.encode())
    if isinstance(auth, CustomAuth):
        return CustomAuthenticator(
            auth_type=auth.auth_type, credentials=auth.credentials.get_secret_value().encode()
        )
    if isinstance(auth, SignatureAuth):
        return SignatureAuthenticator(
            keys={k: v.get_secret_value().encode() for k, v in auth.keys.items()},
            max_clock_skew=auth.max_clock_skew,
            clock=clock,
        )
    if isinstance(auth, BearerAuth):
        assert i_env is not None, "validated by SourceConfig"
        return BearerAuthenticator(
            keys=tuple(k.get_secret_value().encode() for k in auth.keys),
            i_env=i_env,
            leeway=auth.leeway,
        )
    raise TypeError(f"unknown auth config {type(auth).__name__}")
