"""Configuration: YAML + environment, and errors that name the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from opennsps.cli import app as cli
from opennsps.config import BasicAuth, ConfigError, SignatureAuth, load_settings

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opennsps.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ=env or {})
    return caught.value.problems


def test_the_example_file_is_valid() -> None:
    settings = load_settings(REPO / "opennsps.example.yaml", environ={})
    assert settings.server.port == 8700
    assert settings.store.url == "sqlite:///./var/opennsps.db"
    assert isinstance(settings.ingress.sources["default"].auth, BasicAuth)


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.server.host == "127.0.0.1" and settings.ingress.sources == {}


def test_environment_overrides_nested_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ingress:\n  sources:\n    prod:\n      auth: {username: espf, password: from-file}\n",
    )
    env = {
        "OPENNSPS_SERVER__PORT": "9000",
        "OPENNSPS_INGRESS__SOURCES__PROD__AUTH__PASSWORD": "12345",
        "OPENNSPS_STORE__URL": "postgresql://u:pw@db/opennsps",
        "OPENNSPS_CONFIG": "ignored-as-a-key",
        # Not overrides: a connector service's token and a script handler's trace ids.
        "OPENNSPS_CONNECTOR_TOKEN": "connector-token-0123456789",
        "OPENNSPS_REQUEST_ID": "463ac35c9f6413ad48485a3953bb6124",
        "OPENNSPS_UNIQUE_ID": "r-1",
    }
    settings = load_settings(path, environ=env)
    assert settings.server.port == 9000
    auth = settings.ingress.sources["prod"].auth
    assert isinstance(auth, BasicAuth) and auth.password.get_secret_value() == "12345"
    assert settings.store.url == "postgresql://u:pw@db/opennsps"


def test_errors_name_the_key_and_the_problem(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
server: {port: 99999}
store: {url: "mysql://x", commit_timeout: 0}
logging: {level: loud}
ingress:
  sources:
    prod:
      auth: {scheme: basic, username: espf}
    lab:
      auth: {scheme: bearer, keys: [k]}
    odd:
      auth: {scheme: kerberos}
  colour: blue
""",
    )
    text = "\n".join(found)
    assert "server.port: Input should be less than or equal to 65535 (got 99999)" in text
    assert "store.url: Value error, must be sqlite:///PATH or postgresql://" in text
    assert "store.commit_timeout: Input should be greater than 0" in text
    assert "logging.level: Input should be 'debug', 'info', 'warning' or 'error'" in text
    assert "ingress.sources.prod.auth.password: is required" in text
    assert "ingress.sources.lab: Value error, a source with bearer auth needs 'i_env'" in text
    assert (
        "ingress.sources.odd.auth: scheme must be one of basic, custom, signature, bearer" in text
    )
    assert "ingress.colour: unknown key" in text


def test_secrets_are_not_echoed_in_errors(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "ingress:\n  sources:\n    s:\n      auth: {scheme: custom, auth_type: 'bad type', "
        "credentials: [topsecret]}\n",
    )
    assert found and "topsecret" not in "\n".join(found)


def test_yaml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "server:\n  port: [8700\n")
    assert found[0].startswith("not valid YAML at line")


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "absent.yaml", environ={})
    assert "cannot read the file" in caught.value.problems[0]


def test_signature_keys_and_default_scheme(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ingress:\n  sources:\n    a: {auth: {username: u, password: p}}\n"
        "    b: {auth: {scheme: Signature, keys: {test: k1, next: k2}}}\n",
    )
    settings = load_settings(path, environ={})
    assert isinstance(settings.ingress.sources["a"].auth, BasicAuth)
    signature = settings.ingress.sources["b"].auth
    assert isinstance(signature, SignatureAuth) and set(signature.keys) == {"test", "next"}
    assert signature.max_clock_skew == 300


def test_config_check_command(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(cli, ["config", "check", str(REPO / "opennsps.example.yaml"), "--show"])
    assert good.exit_code == 0, good.output
    assert "OK (1 ESPF source(s))" in good.output
    assert "change-me" not in good.output and "**********" in good.output
    # The example's placeholders are named, so that none reaches production unnoticed.
    assert "warning: ingress.sources.default.auth.password still has the example's" in (good.output)
    assert "api.tokens.0.token" in good.output
    bad = runner.invoke(cli, ["config", "check", str(write(tmp_path, "server: {port: -1}\n"))])
    assert bad.exit_code == 2
    assert "server.port" in bad.output
    # Errors are printed verbatim (a value in brackets is not taken for Rich markup), and
    # a pattern is said in words.
    handler = "handlers:\n  - {id: 'CRM!', events: ['[bold]x'], type: http, http: {url: ftp://x}}\n"
    worded = runner.invoke(cli, ["config", "check", str(write(tmp_path, handler))])
    assert worded.exit_code == 2
    assert "handlers.0.id: use 1 to 64 lower-case letters, digits" in worded.output
    assert "[bold]x" in worded.output
    assert "handlers.0.http.url: a URL starting with http:// or https://" in worded.output
    assert "should match" not in worded.output


def test_numeric_looking_secrets_from_yaml_stay_text(tmp_path: Path) -> None:
    path = write(tmp_path, "ingress:\n  sources:\n    a: {auth: {username: u, password: 12345}}\n")
    auth = load_settings(path, environ={}).ingress.sources["a"].auth
    assert isinstance(auth, BasicAuth) and auth.password.get_secret_value() == "12345"


def test_lists_from_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path, "ingress:\n  sources:\n    a: {i_env: 3, auth: {scheme: bearer, keys: [x]}}\n"
    )
    env = {"OPENNSPS_INGRESS__SOURCES__A__AUTH__KEYS": "[k1, k2]"}
    auth = load_settings(path, environ=env).ingress.sources["a"].auth
    assert [k.get_secret_value() for k in auth.keys] == ["k1", "k2"]  # type: ignore[union-attr]


def test_config_check_loads_plugins_and_serve_refuses_placeholder_secrets(tmp_path: Path) -> None:
    runner = CliRunner()
    handlers = (
        "handlers:\n"
        "  - {id: hss, events: ['*'], type: python,\n"
        "     python: {entry_point: 'opennsps.connectors.hss:HssConnector', options: {url: x}}}\n"
        "  - {id: gone, events: ['*'], type: python, python: {entry_point: 'no.such:Thing'}}\n"
    )
    checked = runner.invoke(cli, ["config", "check", str(write(tmp_path, handlers))])
    assert checked.exit_code == 2
    assert "handlers.hss.python: opennsps.connectors.hss:HssConnector options: profiles:" in (
        checked.output
    )
    assert "handlers.gone.python: cannot load no.such:Thing" in checked.output
    placeholder = write(
        tmp_path, "api: {tokens: [{name: a, token: change-me-please-0000, role: admin}]}\n"
    )
    refused = runner.invoke(cli, ["serve", "-c", str(placeholder), "--port", "0"])
    assert refused.exit_code == 2 and "api.tokens.0.token" in refused.output
    assert "--insecure-defaults" in refused.output
