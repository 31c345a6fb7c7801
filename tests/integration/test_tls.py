"""TLS on the ingress: ESPF's Basic credentials never travel in clear text. A real
`opennsps serve` with a certificate made by openssl; a renewed certificate is picked up
without a restart; a key that does not match is refused with a clear error."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from opennsps.cli import app as cli
from tests.pipeline.harness import gateway_config, wait_for
from tests.support import GatewayProcess, basic_header, event_body

pytestmark = pytest.mark.slow


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, written by openssl."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            f"/CN={name}",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def served_certificate(port: int) -> str:
    return ssl.get_server_certificate(("127.0.0.1", port), timeout=5)


def same_pem(a: str, b: str) -> bool:
    return ssl.PEM_cert_to_DER_cert(a) == ssl.PEM_cert_to_DER_cert(b)


def write_config(tmp_path: Path, tls: dict[str, object], name: str = "opennsps") -> Path:
    config = gateway_config(f"sqlite:///{tmp_path / 'store.db'}", "http://127.0.0.1:9", [])
    config["server"] = {"tls": tls}
    config["logging"] = {"level": "info"}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_ingress_speaks_tls_and_picks_up_a_renewed_certificate(tmp_path: Path) -> None:
    first_cert, first_key = make_certificate(tmp_path, "first")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    cert.write_bytes(first_cert.read_bytes())
    key.write_bytes(first_key.read_bytes())
    config = write_config(
        tmp_path, {"certificate": str(cert), "key": str(key), "reload_seconds": 0.2}
    )
    gateway = GatewayProcess(config, tmp_path / "gateway.log", tls_certificate=first_cert)
    try:
        assert gateway.url.startswith("https://")
        answer = httpx.post(
            f"{gateway.url}/espf/events",
            json=event_body(1),
            headers=basic_header(),
            verify=gateway.verify,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        # Plain HTTP to the TLS port gets no answer.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{gateway.port}/health", timeout=5)
        assert same_pem(served_certificate(gateway.port), first_cert.read_text())

        # Renewal: the files are replaced (as certbot or a secret mount does); new
        # connections get the new certificate, with no restart.
        second_cert, second_key = make_certificate(tmp_path, "second")
        for source, target in ((second_key, key), (second_cert, cert)):
            staged = target.with_suffix(".new")
            staged.write_bytes(source.read_bytes())
            os.replace(staged, target)
        wait_for(
            lambda: same_pem(served_certificate(gateway.port), second_cert.read_text()),
            what="the renewed certificate served",
        )
        renewed = ssl.create_default_context(cafile=str(second_cert))
        assert httpx.get(f"{gateway.url}/health", verify=renewed, timeout=10).status_code == 200
        assert gateway.process.poll() is None
    finally:
        gateway.stop()
    assert "TLS certificate reloaded" in (tmp_path / "gateway.log").read_text()


def test_a_key_that_does_not_match_its_certificate_is_refused(tmp_path: Path) -> None:
    cert, _ = make_certificate(tmp_path, "one")
    _, other_key = make_certificate(tmp_path, "two")
    config = write_config(tmp_path, {"certificate": str(cert), "key": str(other_key)})
    checked = CliRunner().invoke(cli, ["config", "check", str(config)])
    assert checked.exit_code == 2
    assert "cannot be used together" in checked.output
    missing = write_config(
        tmp_path, {"certificate": str(tmp_path / "nope.crt"), "key": "k"}, "missing"
    )
    checked = CliRunner().invoke(cli, ["config", "check", str(missing)])
    assert checked.exit_code == 2 and "nope.crt" in checked.output
    served = subprocess.run(
        ["opennsps", "serve", "-c", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert served.returncode == 2
    assert "cannot be used together" in served.stderr + served.stdout
