"""Every ESPF authentication scheme of Appendix A, accepted and refused, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

import httpx
import jwt
import pytest

from opennsps.store.event_store import EventStore
from tests.support import (
    BEARER_I_ENV,
    BEARER_KEYS,
    CUSTOM_CREDENTIALS,
    CUSTOM_TYPE,
    SIGNATURE_KEYS,
    basic_header,
    event_body,
    signature_header,
)

JSON = {"Content-Type": "application/json"}


def post(url: str, headers: dict[str, str], i_event: int = 1) -> httpx.Response:
    return httpx.post(url, json=event_body(i_event), headers={**JSON, **headers}, timeout=10)


def assert_refused(response: httpx.Response, reason_part: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["type"] == "authentication_error"
    assert body["error"] == "unauthorized"
    assert reason_part in body["message"]
    assert response.headers["www-authenticate"]


def test_the_guides_basic_example_username_secret_is_accepted(
    gateway: str, store: EventStore
) -> None:
    # Appendix A: user ID "username", password "secret" -> base64("username:secret").
    headers = {"Authorization": "Basic dXNlcm5hbWU6c2VjcmV0"}
    response = post(f"{gateway}/espf/events", headers)
    assert response.status_code == 200, response.text
    assert store.count_events() == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing Authorization"),
        (basic_header(password="wrong"), "do not match"),
        (basic_header(user="someone"), "do not match"),
        ({"Authorization": "Basic !!!notbase64"}, "not valid base64"),
        ({"Authorization": "Bearer abc"}, "is not Basic"),
    ],
)
def test_basic_refusals(
    gateway: str, store: EventStore, headers: dict[str, str], reason: str
) -> None:
    assert_refused(post(f"{gateway}/espf/events", headers), reason)
    assert store.count_events() == 0


def test_custom_scheme(gateway: str, store: EventStore) -> None:
    url = f"{gateway}/espf/events/custom"
    good = {"Authorization": f"{CUSTOM_TYPE} {CUSTOM_CREDENTIALS}"}
    assert post(url, good, 1).status_code == 200
    assert_refused(post(url, {"Authorization": f"{CUSTOM_TYPE} wrong"}, 2), "do not match")
    assert_refused(post(url, {"Authorization": f"Other {CUSTOM_CREDENTIALS}"}, 3), "is not Plain")
    assert store.count_events() == 1


def test_signature_computed_as_appendix_a_describes(gateway: str, store: EventStore) -> None:
    # Computed here independently: HMAC-SHA1 over the Date header value, base64.
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    digest = hmac.new(b"signature", date.encode(), hashlib.sha1).digest()
    signature = base64.b64encode(digest).decode()
    headers = {
        "Date": date,
        "Authorization": f'Signature keyId="test", algorithm="hmac-sha1", signature="{signature}"',
    }
    response = post(f"{gateway}/espf/events/signed", headers)
    assert response.status_code == 200, response.text
    stored = store.list_events()[0]
    assert stored.source == "signed"
    assert stored.i_env == 2


def test_signature_keys_rotate(gateway: str) -> None:
    url = f"{gateway}/espf/events/signed"
    assert post(url, signature_header("test", SIGNATURE_KEYS["test"]), 1).status_code == 200
    assert post(url, signature_header("next", SIGNATURE_KEYS["next"]), 2).status_code == 200


# Each case builds its headers when the test runs: a Date computed at collection time
# drifts by however long the suite has been running before this test.
@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (lambda: signature_header("test", "not-the-key"), "does not match"),
        (lambda: signature_header("unknown", SIGNATURE_KEYS["test"]), "is not configured"),
        (lambda: signature_header(at=time.time() - 301), "away from now"),
        (lambda: signature_header(at=time.time() + 400), "away from now"),
        (lambda: {"Authorization": signature_header()["Authorization"]}, "needs a Date"),
        (lambda: {**signature_header(), "Date": "yesterday"}, "not an HTTP date"),
        (
            lambda: {
                **signature_header(),
                "Authorization": 'Signature keyId="test",algorithm="hmac-sha256",signature="x"',
            },
            "is not hmac-sha1",
        ),
        (
            lambda: {"Authorization": 'Signature keyId="test"'},
            "needs keyId, algorithm and signature",
        ),
    ],
)
def test_signature_refusals(
    gateway: str, store: EventStore, headers: Callable[[], dict[str, str]], reason: str
) -> None:
    assert_refused(post(f"{gateway}/espf/events/signed", headers()), reason)
    assert store.count_events() == 0


def test_signature_within_the_allowed_skew_is_accepted(gateway: str) -> None:
    response = post(f"{gateway}/espf/events/signed", signature_header(at=time.time() - 290))
    assert response.status_code == 200


def token(key: str = BEARER_KEYS[0], **claims: object) -> str:
    payload = {"i_env": BEARER_I_ENV, "exp": int(time.time()) + 600, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_bearer_accepted_with_either_rotation_key(gateway: str, store: EventStore) -> None:
    url = f"{gateway}/espf/events/jwt"
    assert post(url, bearer(token(BEARER_KEYS[0])), 1).status_code == 200
    assert post(url, bearer(token(BEARER_KEYS[1])), 2).status_code == 200
    assert {e.i_env for e in store.list_events()} == {BEARER_I_ENV}


def unsigned_token() -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = f'{{"i_env":{BEARER_I_ENV},"exp":{int(time.time()) + 600}}}'
    header = b64(b'{"alg":"none","typ":"JWT"}')
    return f"{header}.{b64(claims.encode())}."


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (lambda: token(exp=int(time.time()) - 10), "expired"),
        (lambda: unsigned_token(), "not signed with HS256"),
        (lambda: token(key="an-entirely-different-signing-key!"), "does not match any"),
        (lambda: token(i_env=99), "is not this source's 3"),
        (lambda: token(exp=None), "no 'exp' claim"),
        (lambda: "not.a.jwt", "invalid"),
    ],
    ids=["expired", "alg-none", "wrong-key", "wrong-i_env", "no-exp", "garbage"],
)
def test_bearer_refusals(gateway: str, store: EventStore, value: object, reason: str) -> None:
    assert callable(value)
    assert_refused(post(f"{gateway}/espf/events/jwt", bearer(value())), reason)
    assert store.count_events() == 0


def test_a_source_accepts_only_its_own_scheme(gateway: str) -> None:
    # Valid Basic credentials of the default source do not open the signed source.
    assert_refused(post(f"{gateway}/espf/events/signed", basic_header()), "is not Signature")


def test_refused_credentials_are_never_stored_or_returned(gateway: str, store: EventStore) -> None:
    response = post(f"{gateway}/espf/events", basic_header(password="hunter2-guess"))
    assert "hunter2" not in response.text
    rejected = store.list_rejected()[0].request
    assert rejected.headers["authorization"] == "Basic [redacted]"
    assert "hunter2" not in str(rejected)
    response = post(f"{gateway}/espf/events/signed", signature_header("test", "wrong-key"))
    stored = store.list_rejected()[0].request.headers["authorization"]
    assert stored.startswith('Signature keyid="test",algorithm="hmac-sha1",signature=[redacted]')


@pytest.mark.parametrize("value", ["s3cr3t-without-a-scheme", "passexample", "a:b c"])
def test_a_credential_sent_without_its_scheme_is_never_repeated(
    gateway: str, store: EventStore, value: str
) -> None:
    secret = value.split(" ")[0]
    response = post(f"{gateway}/espf/events", {"Authorization": value})
    assert_refused(response, "Authorization scheme (not shown) is not Basic")
    assert secret not in response.text
    # What the log line, GET /api/v1/rejected and `opennsps rejected list` show.
    rejected = store.list_rejected()[0].request
    assert secret not in str(rejected)
    # A real scheme name is still named back.
    assert_refused(post(f"{gateway}/espf/events", {"Authorization": "Bearer x"}), "'Bearer'")
