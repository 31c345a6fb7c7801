"""How the HSS connector's PyHSS client reads each kind of PyHSS answer.

The real PyHSS answers most of these in tests/connectors/test_hss_real_pyhss.py and
test_pyhss_contract.py. Here a server on 127.0.0.1 answers with PyHSS's exact bodies for
the cases that cannot run here: PyHSS on MySQL/MariaDB (its driver, mysqlclient, is built
against MariaDB's client library, which these machines do not have), and error texts
whose SQL part must not reach an operator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opennsps.connector.errors import Rejected, ServiceError, Unavailable
from opennsps.connectors.hss.client import Duplicate, PyHssClient
from tests.support import running

MYSQL_DUPLICATE = (
    'A database integrity error occurred: (MySQLdb.IntegrityError) (1062, "Duplicate entry '
    "'001010000000001' for key 'imsi'\")\n[SQL: INSERT INTO subscriber ...]"
)
SQLITE_DUPLICATE = (
    "A database integrity error occurred: (sqlite3.IntegrityError) UNIQUE constraint failed: "
    "subscriber.imsi\n[SQL: INSERT INTO subscriber (imsi, ...) VALUES (?, ...)]\n"
    "[parameters: ('001010000000001', 'secret-looking-value')]"
)
LOCKED = (
    "A database operational error occurred: (sqlite3.OperationalError) database is locked\n"
    "[SQL: UPDATE subscriber SET enabled=? WHERE subscriber.subscriber_id = ?]"
)
# One event loop for the module: the client keeps its HTTP connections across calls.
LOOP = asyncio.Runner()
NOT_NULL = (
    "A database integrity error occurred: (sqlite3.IntegrityError) NOT NULL constraint "
    "failed: subscriber.apn_list\n[SQL: INSERT INTO subscriber ...]"
)


@pytest.fixture
def answers() -> Iterator[tuple[PyHssClient, dict[tuple[str, str], tuple[int, Any]]]]:
    canned: dict[tuple[str, str], tuple[int, Any]] = {}

    async def endpoint(request: Request) -> Response:
        status, body = canned.get((request.method, request.url.path), (200, None))
        return Response(orjson.dumps(body), status, media_type="application/json")

    methods = ["GET", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])
    with running(app) as url:
        yield PyHssClient(url, provisioning_key="k", timeout=5), canned


def failed(reason: str) -> dict[str, str]:
    return {"result": "Failed", "reason": reason}


def raised(call: Any) -> BaseException:
    async def run() -> None:
        await call

    with pytest.raises(Exception) as caught:
        LOOP.run(run())
    return caught.value


BODY = {"imsi": "001010000000001", "auc_id": 1, "default_apn": 1, "apn_list": "1"}


def test_a_duplicate_is_recognised_in_sqlite_and_mysql_wording(answers: Any) -> None:
    client, canned = answers
    for reason in (SQLITE_DUPLICATE, MYSQL_DUPLICATE):
        canned["PUT", "/subscriber/"] = (400, failed(reason))
        assert isinstance(raised(client.create_subscriber(BODY)), Duplicate)


def test_a_null_creation_is_a_duplicate_only_when_the_imsi_exists(answers: Any) -> None:
    client, canned = answers
    error = raised(client.create_subscriber(BODY))
    assert isinstance(error, ServiceError) and not isinstance(error, Duplicate)
    assert "PUT /subscriber/" in str(error) and "with null" in str(error)
    canned["GET", "/subscriber/imsi/001010000000001"] = (200, {"subscriber_id": 4, **BODY})
    assert isinstance(raised(client.create_subscriber(BODY)), Duplicate)


def test_an_operational_error_is_temporary_and_its_sql_is_not_repeated(answers: Any) -> None:
    client, canned = answers
    canned["PATCH", "/subscriber/4"] = (400, failed(LOCKED))
    error = raised(client.update_subscriber(4, {"enabled": False}))
    assert isinstance(error, Unavailable) and error.retryable
    assert "database is locked" in str(error) and "[SQL:" not in str(error)


def test_other_refusals_and_faults(answers: Any) -> None:
    client, canned = answers
    canned["PUT", "/subscriber/"] = (400, failed(NOT_NULL))
    refused = raised(client.create_subscriber(BODY))
    assert isinstance(refused, Rejected) and "subscriber.apn_list" in str(refused)
    assert "[SQL:" not in str(refused)
    canned["PUT", "/subscriber/"] = (500, failed("An internal server error occurred: boom"))
    fault = raised(client.create_subscriber(BODY))
    assert isinstance(fault, ServiceError) and fault.retryable


def test_a_null_update_says_whether_the_subscriber_vanished(answers: Any) -> None:
    client, canned = answers
    vanished = raised(client.update_subscriber(4, {"enabled": False}))
    assert isinstance(vanished, ServiceError) and "removed meanwhile" in str(vanished)
    canned["GET", "/subscriber/4"] = (200, {"subscriber_id": 4, **BODY})
    failed_inside = raised(client.update_subscriber(4, {"enabled": False}))
    assert "PATCH /subscriber/4 (enabled) with null" in str(failed_inside)
