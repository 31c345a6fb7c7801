"""The gateway's HTTP server (`opennsps serve`) against hostile connections, over raw
sockets on 127.0.0.1: oversized or too many headers, connections that send nothing, send
their headers or body too slowly, or are not HTTP; none may hold memory or a connection
for ever, every refusal is an ErrorResponse, and ESPF's posts keep working meanwhile."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from tests.support import BASIC_PASSWORD, GatewayProcess, basic_header, event_body

pytestmark = pytest.mark.slow
LIMITS = {
    "max_header_bytes": 16384,
    "max_headers": 50,
    "header_timeout": 1.0,
    "body_timeout": 1.0,
    "keep_alive_timeout": 1,
}
CLOSED_WITHIN = 15.0  # generous: the limits are 1 s; a busy machine may be slow


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    config = tmp_path / "opennsps.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'opennsps.db'}"},
                "server": LIMITS,
                "ingress": {
                    "sources": {
                        "default": {"auth": {"username": "username", "password": BASIC_PASSWORD}}
                    }
                },
            }
        )
    )
    process = GatewayProcess(config, tmp_path / "gateway.log")
    try:
        yield process
    finally:
        process.stop()


def connect(gateway: GatewayProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=CLOSED_WITHIN)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded in time)."""
    received = b""
    deadline = time.monotonic() + CLOSED_WITHIN
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server kept the connection open; got {received[:200]!r}")


def error_of(answer: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(body)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def espf_post_works(gateway: GatewayProcess, i_event: int) -> None:
    answer = httpx.post(
        f"{gateway.url}/espf/events", json=event_body(i_event), headers=basic_header(), timeout=30
    )
    assert answer.status_code == 200, answer.text


def test_headers_over_the_limits_are_refused_without_holding_memory(
    gateway: GatewayProcess,
) -> None:
    before = rss_kib(gateway.process.pid)
    for _ in range(8):  # as in the attack: eight connections, megabytes of headers each
        sock = connect(gateway)
        sock.sendall(b"POST /espf/events HTTP/1.1\r\nHost: x\r\n")
        try:
            for k in range(6 * 1024):  # 6 MiB in 1 KiB headers, unless refused first
                sock.sendall(f"X-Pad-{k}: {'a' * 1000}\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_all(sock)
        sock.close()
        if answer:
            status, body = error_of(answer)
            assert status == 431 and body["type"] == "validation_error", body
    assert rss_kib(gateway.process.pid) - before < 50 * 1024  # it grew by 430 MiB before
    sock = connect(gateway)
    many = "".join(f"X-H{k}: v\r\n" for k in range(60))
    sock.sendall(f"GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    status, body = error_of(read_all(sock))
    assert status == 431 and body["error"] == "too_many_headers"
    espf_post_works(gateway, 1)


def test_silent_slow_and_stalled_connections_are_closed(gateway: GatewayProcess) -> None:
    silent = [connect(gateway) for _ in range(50)]  # never send a byte
    slow_headers = connect(gateway)
    slow_headers.sendall(b"POST /espf/events HTTP/1.1\r\nHost: x\r\n")  # and no more
    short_body = connect(gateway)
    body = orjson.dumps(event_body(2))
    auth = basic_header()["Authorization"]
    short_body.sendall(
        b"POST /espf/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: {auth}\r\nContent-Length: {len(body) + 100}\r\n\r\n".encode()
        + body
    )
    espf_post_works(gateway, 3)  # meanwhile ESPF is served
    for sock in silent:
        assert read_all(sock) == b""  # closed without a word
    status, answer = error_of(read_all(slow_headers))
    assert status == 408 and answer["error"] == "request_timeout"
    read_all(short_body)  # closed: the body never completed
    # An idle keep-alive connection is closed too, after its request was answered.
    idle = connect(gateway)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200 OK" in read_all(idle)
    espf_post_works(gateway, 4)
    with httpx.Client(base_url=gateway.url, headers=basic_header()) as client:
        stored = client.get("/health").status_code
    assert stored == 200


def test_malformed_http_gets_an_error_response(gateway: GatewayProcess) -> None:
    sock = connect(gateway)
    sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    status, body = error_of(read_all(sock))
    assert status == 400 and set(body) >= {"message", "error", "type"}
