"""A copy of a rejected request that is safe to store and show: no credentials."""

from __future__ import annotations

from collections.abc import Iterable

from opennsps.ingress.auth import KNOWN_SCHEMES, SIGNATURE_PARAM

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
REDACTED = "[redacted]"


def redacted_headers(
    headers: Iterable[tuple[str, str]], schemes: frozenset[str] = KNOWN_SCHEMES
) -> dict[str, str]:
    """Headers with secret values replaced; the Authorization scheme (and keyId) stay visible
    when the scheme is one of `schemes` (lower case): any other first word may be a
    credential sent without its scheme."""
    safe: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered == "authorization":
            safe[lowered] = _redacted_authorization(value, schemes)
        elif lowered in SECRET_HEADERS:
            safe[lowered] = REDACTED
        else:
            safe[lowered] = value[:1024]
    return safe


def _redacted_authorization(value: str, schemes: frozenset[str]) -> str:
    scheme, _, rest = value.strip().partition(" ")
    if not rest or scheme.lower() not in schemes:
        return REDACTED
    if scheme.lower() == "signature":
        params = dict((k.lower(), v) for k, v in SIGNATURE_PARAM.findall(rest))
        kept = [f'{k}="{params[k][:64]}"' for k in ("keyid", "algorithm") if k in params]
        return f"{scheme[:32]} {','.join([*kept, 'signature=' + REDACTED])}"
    return f"{scheme[:32]} {REDACTED}"
