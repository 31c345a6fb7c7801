"""The packages as an operator installs them: the wheel built from this tree, installed
in a fresh virtualenv, knows its version, serves, and carries no sandbox; the sandbox
extra is its own wheel that adds the stand-ins and the demo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.pipeline.harness import gateway_config, wait_for
from tests.support import REPO, GatewayProcess, basic_header, event_body, free_port, uv_command

pytestmark = pytest.mark.slow


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


@dataclass(frozen=True)
class Installed:
    dist: Path
    venv: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Both distributions built from this tree; the gateway's wheel alone installed in a
    fresh virtualenv (as a production install is)."""
    root = tmp_path_factory.mktemp("packaging")
    dist = root / "dist"
    run(uv_command(), "build", "--all-packages", "--out-dir", str(dist))
    venv = root / "venv"
    run(uv_command(), "venv", "--python", sys.executable, str(venv))
    wheel = dist / f"opennsps-{version()}-py3-none-any.whl"
    run(uv_command(), "pip", "install", "--python", str(venv / "bin" / "python"), str(wheel))
    return Installed(dist, venv)


def serving_config(directory: Path) -> Path:
    config = gateway_config(f"sqlite:///{directory / 'store.db'}", "http://127.0.0.1:9", [])
    config["logging"] = {"level": "warning"}
    config["server"] = {"port": free_port()}
    path = directory / "opennsps.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_built_wheel_installs_in_a_fresh_virtualenv_and_serves(
    installed: Installed, tmp_path: Path
) -> None:
    assert (installed.dist / f"opennsps-{version()}.tar.gz").exists()
    opennsps, python = installed.bin("opennsps"), installed.bin("python")
    assert run(opennsps, "--version").stdout.strip() == f"opennsps {version()}"

    # No sandbox in a production install: its commands say how to get it.
    missing = run(opennsps, "sandbox", "serve", ok=False)
    assert missing.returncode == 2 and "opennsps[sandbox]" in missing.stderr
    assert run(opennsps, "demo", "--once", ok=False).returncode == 2
    assert run(python, "-c", "import opennsps.sandbox", ok=False).returncode != 0

    path = serving_config(tmp_path)
    gateway = GatewayProcess(path, tmp_path / "gateway.log", command=[opennsps])
    try:
        answer = httpx.post(
            f"{gateway.url}/espf/events", json=event_body(7), headers=basic_header(), timeout=10
        )
        assert answer.status_code == 200, answer.text
    finally:
        gateway.stop()


def test_the_sandbox_extra_adds_the_stand_ins(installed: Installed, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(uv_command(), "venv", "--python", sys.executable, str(venv))
    python = str(venv / "bin" / "python")
    run(
        uv_command(),
        "pip",
        "install",
        "--python",
        python,
        "--find-links",
        str(installed.dist),
        f"opennsps[sandbox]=={version()}",
    )
    assert "PortaBilling" in run(str(venv / "bin" / "opennsps"), "sandbox", "--help").stdout
    run(python, "-c", "import opennsps.sandbox.app, opennsps.demo")


def dockerfile_instruction(name: str) -> list[str]:
    """The JSON-array arguments of the runtime stage's ENTRYPOINT, CMD or HEALTHCHECK CMD."""
    text = (REPO / "deploy" / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    found = re.findall(rf"^{name}\s+(?:--\S+\s+)*(?:CMD\s+)?(\[.*\])\s*$", text, re.M)
    assert found, f"no {name} in the Dockerfile"
    arguments: list[str] = json.loads(found[-1])
    return arguments


def test_the_dockerfile_passes_hadolint() -> None:
    checked = run(
        str(Path(sys.executable).parent / "hadolint"), "deploy/docker/Dockerfile", ok=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_images_entrypoint_and_health_check_work_as_installed(
    installed: Installed, tmp_path: Path
) -> None:
    """The image's exact command (ENTRYPOINT + CMD, its OPENNSPS_CONFIG), run from the
    installed package, serves; its HEALTHCHECK command says so, and says when it stops."""
    command = [*dockerfile_instruction("ENTRYPOINT"), *dockerfile_instruction("CMD")]
    health = dockerfile_instruction("HEALTHCHECK")
    assert command[0] == health[0] == "opennsps"
    path = serving_config(tmp_path)
    env = {
        **os.environ,
        "OPENNSPS_CONFIG": str(path),
        "PATH": f"{installed.venv}/bin:/usr/bin:/bin",
    }
    env.pop("VIRTUAL_ENV", None)
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=log)
        try:
            wait_for(
                lambda: (
                    subprocess.run(health, env=env, capture_output=True, timeout=30).returncode == 0
                ),
                timeout=60,
                what="the health check to pass",
            )
        finally:
            server.terminate()
            server.wait(30)
    stopped = subprocess.run(health, env=env, capture_output=True, text=True, timeout=30)
    assert stopped.returncode == 1 and "ready" not in stopped.stdout


def test_the_systemd_unit_verifies(installed: Installed, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed (Debian package systemd)")
    unit = (REPO / "deploy" / "systemd" / "opennsps.service").read_text()
    config = serving_config(tmp_path)
    # Where this machine has what the unit expects in /opt/opennsps and /etc/opennsps.
    unit = unit.replace("/opt/opennsps", str(installed.venv))
    unit = unit.replace("/etc/opennsps/opennsps.yaml", str(config))
    path = tmp_path / "opennsps.service"
    path.write_text(unit)
    verified = run("systemd-analyze", "verify", str(path), ok=False)
    complaints = [
        line
        for line in (verified.stdout + verified.stderr).splitlines()
        if "opennsps.service" in line
    ]
    assert verified.returncode == 0 and not complaints, verified.stdout + verified.stderr
    # Its pre-start check runs as written
    run(installed.bin("opennsps"), "config", "check", str(config))


def test_the_compose_file_and_its_gateway_configuration_are_valid(installed: Installed) -> None:
    compose = REPO / "deploy" / "compose"
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed: `make test` installs the Debian package")
    env = {**os.environ, "OPENNSPS_SECRET": "0123456789abcdef0123456789abcdef"}

    def compose_config(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker-compose", "-f", "compose.yaml", "config", *args],
            cwd=compose,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    checked = compose_config("-q")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    services = yaml.safe_load(compose_config().stdout)["services"]
    assert {"postgres", "gateway-1", "gateway-2", "sandbox", "balancer"} <= set(services)
    gateway_env = services["gateway-1"]["environment"]
    # The gateways' configuration as the containers see it, checked by the installed CLI.
    done = subprocess.run(
        [installed.bin("opennsps"), "config", "check", str(compose / "opennsps.yaml")],
        env={**os.environ, **{k: str(v) for k, v in gateway_env.items()}},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
