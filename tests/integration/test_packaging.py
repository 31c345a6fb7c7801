"""The packages as an operator installs them: the wheel built from this tree, installed
in a fresh virtualenv, knows its version, serves, and carries no sandbox; the sandbox
extra is its own wheel that adds the stand-ins and the demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml

from tests.pipeline.harness import gateway_config
from tests.support import REPO, GatewayProcess, basic_header, event_body

pytestmark = pytest.mark.slow


def uv() -> str:
    found = REPO / ".tools" / "bin" / "uv"
    if found.exists():
        return str(found)
    located = shutil.which("uv")
    if located is None:
        pytest.fail("uv is not installed: `make test` bootstraps it into .tools/")
    return located


def run(*command: str, cwd: Path = REPO, ok: bool = True) -> subprocess.CompletedProcess[str]:
    # Outside the development virtualenv: nothing of it may leak into the fresh one.
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=600, env=env, check=False
    )
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def version() -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return str(project["version"])


def test_the_versions_of_both_distributions_agree() -> None:
    main = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    sandbox_file = REPO / "packaging" / "opennsps-sandbox" / "pyproject.toml"
    sandbox = tomllib.loads(sandbox_file.read_text())["project"]
    assert sandbox["version"] == main["version"]
    assert sandbox["dependencies"] == [f"opennsps=={main['version']}"]
    assert main["optional-dependencies"]["sandbox"] == [f"opennsps-sandbox=={main['version']}"]
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## {main['version']} " in changelog


def test_the_built_wheel_installs_in_a_fresh_virtualenv_and_serves(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(uv(), "build", "--all-packages", "--out-dir", str(dist))
    wheel = dist / f"opennsps-{version()}-py3-none-any.whl"
    sandbox_wheel = dist / f"opennsps_sandbox-{version()}-py3-none-any.whl"
    assert wheel.exists() and sandbox_wheel.exists()
    assert (dist / f"opennsps-{version()}.tar.gz").exists()

    venv = tmp_path / "venv"
    run(uv(), "venv", "--python", sys.executable, str(venv))
    python = str(venv / "bin" / "python")
    run(uv(), "pip", "install", "--python", python, str(wheel))
    opennsps = str(venv / "bin" / "opennsps")
    assert run(opennsps, "--version").stdout.strip() == f"opennsps {version()}"

    # No sandbox in a production install: its commands say how to get it.
    missing = run(opennsps, "sandbox", "serve", ok=False)
    assert missing.returncode == 2 and "opennsps[sandbox]" in missing.stderr
    assert run(opennsps, "demo", "--once", ok=False).returncode == 2
    assert run(python, "-c", "import opennsps.sandbox", ok=False).returncode != 0

    config = gateway_config(f"sqlite:///{tmp_path / 'store.db'}", "http://127.0.0.1:9", [])
    config["logging"] = {"level": "warning"}
    path = tmp_path / "opennsps.yaml"
    path.write_text(yaml.safe_dump(config))
    gateway = GatewayProcess(path, tmp_path / "gateway.log", command=[opennsps])
    try:
        answer = httpx.post(
            f"{gateway.url}/espf/events", json=event_body(7), headers=basic_header(), timeout=10
        )
        assert answer.status_code == 200, answer.text
    finally:
        gateway.stop()

    # The extra: the sandbox wheel adds the stand-ins to the same package.
    run(uv(), "pip", "install", "--python", python, "--find-links", str(dist), str(sandbox_wheel))
    assert "PortaBilling" in run(opennsps, "sandbox", "--help").stdout
    run(python, "-c", "import opennsps.sandbox.app, opennsps.demo")
