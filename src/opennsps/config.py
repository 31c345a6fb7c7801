"""Configuration: one YAML file plus OPENNSPS_* environment overrides, validated at start-up."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from opennsps.domain.pb_data import PbDataPart
from opennsps.domain.routing import EVENT_PATTERN_TEXT, validate_pattern

ENV_PREFIX = "OPENNSPS_"
URL_PATTERN = r"^https?://"
ENTRY_POINT_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
ENV_CONFIG_PATH = "OPENNSPS_CONFIG"
ENV_NESTING = "__"
# OPENNSPS_* variables that are not configuration overrides: the config file's path, the
# token of `opennsps connector serve`, and the trace ids a script handler receives.
ENV_NOT_OVERRIDES = frozenset(
    {ENV_CONFIG_PATH, "OPENNSPS_CONNECTOR_TOKEN", "OPENNSPS_REQUEST_ID", "OPENNSPS_UNIQUE_ID"}
)
DEFAULT_CONFIG_FILE = "opennsps.yaml"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists each as `key: what is wrong`."""

    def __init__(self, problems: list[str], origin: str) -> None:
        self.problems = problems
        self.origin = origin
        super().__init__(f"invalid configuration ({origin}):\n  " + "\n  ".join(problems))


def _numbers_are_text(schema: dict[str, Any]) -> None:
    """Text fields take numbers too (coerce_numbers_to_str): say so in the JSON Schema."""
    for prop in schema.get("properties", {}).values():
        for branch in [prop, *prop.get("anyOf", [])]:
            if branch.get("type") == "string":
                branch["type"] = ["string", "number"]


class _Section(BaseModel):
    # A password written as 12345 in YAML is still a password.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        coerce_numbers_to_str=True,
        json_schema_extra=_numbers_are_text,
    )


class TlsConfig(_Section):
    """TLS on the gateway's listener (tls.py): PEM files, loaded again when they change."""

    certificate: str = Field(min_length=1, description="PEM certificate (with its chain)")
    key: str = Field(min_length=1, description="PEM private key")
    key_password: SecretStr | None = None
    reload_seconds: float = Field(
        default=60.0, gt=0, le=86_400, description="How often to look for changed files"
    )
    minimum_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"


class ServerConfig(_Section):
    """Where the gateway listens, and the limits of its HTTP server (http_server.py)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=0, le=65535)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_headers: int = Field(default=100, ge=10, le=10_000)
    header_timeout: float = Field(default=10.0, gt=0, le=3600)
    body_timeout: float = Field(default=30.0, gt=0, le=3600)
    keep_alive_timeout: int = Field(default=5, ge=1, le=3600)
    max_connections: int = Field(default=1000, ge=1, le=1_000_000)
    tls: TlsConfig | None = None
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For "
        "names the real client (console login throttling and logs use it)",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address or network") from None
        return values


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class StoreConfig(_Section):
    url: str = "sqlite:///./var/opennsps.db"
    commit_timeout: float = Field(default=10.0, gt=0)
    max_batch: int = Field(default=256, ge=1, le=10_000)
    busy_timeout: float = Field(default=5.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    pool_size: int = Field(default=5, ge=1, le=100)

    @field_validator("url")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+psycopg:")):
            raise ValueError("must be sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE")
        return value


class BasicAuth(_Section):
    scheme: Literal["basic"] = "basic"
    username: str = Field(min_length=1)
    password: SecretStr

    @field_validator("username")
    @classmethod
    def _no_colon(cls, value: str) -> str:
        if ":" in value:
            raise ValueError("must not contain ':' (Basic credentials are 'user:password')")
        return value


class CustomAuth(_Section):
    scheme: Literal["custom"]
    auth_type: str = Field(min_length=1, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
    credentials: SecretStr


class SignatureAuth(_Section):
    scheme: Literal["signature"]
    keys: dict[str, SecretStr] = Field(min_length=1)
    max_clock_skew: float = Field(default=300.0, gt=0)


class BearerAuth(_Section):
    scheme: Literal["bearer"]
    keys: list[SecretStr] = Field(min_length=1)
    leeway: float = Field(default=0.0, ge=0)


AuthConfig = Annotated[
    BasicAuth | CustomAuth | SignatureAuth | BearerAuth, Field(discriminator="scheme")
]


class EspfApiConfig(_Section):
    """PortaBilling's ESPF API (provisioning statuses, groups, scheduled events)."""

    url: str | None = None  # defaults to the PortaBilling url
    login: str = Field(min_length=1)
    password: SecretStr


class PortaBillingConfig(_Section):
    """PortaBilling's JSON API for one environment: where enrichment reads from."""

    url: str = Field(pattern=URL_PATTERN)
    login: str = Field(min_length=1)
    password: SecretStr | None = None
    token: SecretStr | None = None
    verify_tls: bool = True
    timeout: float = Field(default=10.0, gt=0)
    max_concurrency: int = Field(default=32, ge=1, le=256)
    attempts: int = Field(default=3, ge=1, le=10)
    cache_ttl: float = Field(default=5.0, ge=0)
    reference_cache_ttl: float = Field(
        default=300.0,
        ge=0,
        description="How long products and access policies (definitions, not subscriber "
        "data; no ESPF event announces their change) are reused",
    )
    espf_api: EspfApiConfig | None = None

    @model_validator(mode="after")
    def _credentials(self) -> PortaBillingConfig:
        if self.password is None and self.token is None:
            raise ValueError("needs 'password' or 'token' for Session/login")
        return self


class SourceConfig(_Section):
    """One PortaBilling environment that posts events to /espf/events/{name}."""

    i_env: int | None = None
    auth: AuthConfig
    portabilling: PortaBillingConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _basic_by_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("auth"), dict):
            auth = dict(data["auth"])
            auth.setdefault("scheme", "basic")
            if isinstance(auth["scheme"], str):
                auth["scheme"] = auth["scheme"].lower()
            data = {**data, "auth": auth}
        return data

    @model_validator(mode="after")
    def _bearer_needs_i_env(self) -> SourceConfig:
        if isinstance(self.auth, BearerAuth) and self.i_env is None:
            raise ValueError("a source with bearer auth needs 'i_env' (the token's i_env claim)")
        return self


class IngressConfig(_Section):
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    rejected_body_bytes: int = Field(default=64 * 1024, ge=0)
    default_source: str = "default"
    sources: dict[str, SourceConfig] = Field(default_factory=dict)

    @field_validator("sources")
    @classmethod
    def _source_names(cls, value: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        for name in value:
            if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"source name {name!r} must be 1-64 letters, digits, '-' or '_'")
        return value


class RetryConfig(_Section):
    """A retry schedule (domain/retry.py); the defaults follow PortaOne's NSPS."""

    fast_attempts: int = Field(default=100, ge=0, le=10_000)
    fast_first_seconds: float = Field(default=60.0, gt=0)
    fast_max_seconds: float = Field(default=600.0, gt=0)
    slow_steps_seconds: list[float] = Field(
        default_factory=lambda: [3600.0, 7200.0, 14400.0, 28800.0, 57600.0, 86400.0],
        min_length=1,
    )
    give_up_after_seconds: float = Field(default=30 * 86400.0, gt=0)
    jitter: float = Field(default=0.2, ge=0, lt=1)


class CircuitConfig(_Section):
    """A handler's circuit breaker (docs/handlers.md): after `open_after_failures`
    consecutive failed attempts over at least `open_after_seconds`, its deliveries wait
    together, and one probe attempt at growing intervals finds out when the connector is
    back."""

    enabled: bool = True
    open_after_failures: int = Field(default=5, ge=1, le=10_000)
    open_after_seconds: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description="...and only once the failures have gone on this long (a few events "
        "failing together is not an outage)",
    )
    probe_first_seconds: float = Field(default=5.0, gt=0, le=86_400)
    probe_max_seconds: float = Field(default=60.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _probe_interval_grows(self) -> CircuitConfig:
        if self.probe_max_seconds < self.probe_first_seconds:
            raise ValueError("probe_max_seconds must be at least probe_first_seconds")
        return self


class RateLimitConfig(_Section):
    """Requests per second to a handler's connector, shared by every process on the store."""

    per_second: float = Field(gt=0, le=100_000)
    burst: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="How many may go at once after a quiet spell (default: a quarter "
        "second's worth, at least 1)",
    )

    @property
    def allowed_burst(self) -> int:
        return self.burst if self.burst is not None else max(1, math.ceil(self.per_second / 4))


class HttpHandlerConfig(_Section):
    url: str = Field(pattern=URL_PATTERN)
    token: SecretStr | None = None
    timeout: float = Field(default=30.0, gt=0, le=3600)
    verify_tls: bool = True


class ScriptHandlerConfig(_Section):
    command: list[str] = Field(min_length=1)
    timeout: float = Field(default=60.0, gt=0, le=3600)
    working_directory: str | None = None


class PythonHandlerConfig(_Section):
    entry_point: str = Field(pattern=ENTRY_POINT_PATTERN)
    options: dict[str, Any] = Field(default_factory=dict)
    timeout: float = Field(default=30.0, gt=0, le=3600)


class TemplateCallConfig(_Section):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    success: str | None = None
    when: str | None = Field(
        default=None,
        description="An expression over the template's names: the call is used only when it"
        " holds (else the next matching call)",
    )


class TemplateHandlerConfig(_Section):
    """A REST call per event type, described with Jinja2 templates (docs/connectors.md)."""

    base_url: str | None = Field(default=None, pattern=URL_PATTERN)
    calls: dict[Annotated[str, Field(pattern=EVENT_PATTERN_TEXT)], TemplateCallConfig] = Field(
        min_length=1
    )
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    timeout: float = Field(default=30.0, gt=0, le=3600)
    verify_tls: bool = True

    @model_validator(mode="after")
    def _templates_compile(self) -> TemplateHandlerConfig:
        from opennsps.connectors.template import compile_calls
        from opennsps.connectors.templating import TemplateError

        for pattern in self.calls:
            validate_pattern(pattern)
        try:
            compile_calls(self.call_mappings())
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return self

    def call_mappings(self) -> dict[str, dict[str, Any]]:
        return {
            pattern: call.model_dump(exclude_none=True, exclude_unset=False)
            | ({"body": call.body} if "body" in call.model_fields_set else {})
            for pattern, call in self.calls.items()
        }


HANDLER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


HANDLER_TYPES = ("http", "script", "python", "template")


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    return False


def _one_section_per_type(schema: dict[str, Any]) -> None:
    """The rule of _settings_for_type in the JSON Schema, so that API clients (and the
    API's own fuzz test) know it: a handler has the section of its type and no other."""
    _numbers_are_text(schema)

    def section(kind: str) -> dict[str, Any]:
        return {"required": [kind], "properties": {kind: {"type": "object"}}}

    schema["oneOf"] = [
        {
            "allOf": [{"properties": {"type": {"const": kind}}}, section(kind)],
            "not": {"anyOf": [section(other) for other in HANDLER_TYPES if other != kind]},
        }
        for kind in HANDLER_TYPES
    ]


HoldsBack = Literal["until_done", "until_first_attempt", "never"]


class HandlerConfig(_Section):
    """A handler: which events go to which connector, and how (docs/handlers.md)."""

    # Merged with _Section's config (pydantic merges a subclass's model_config).
    model_config = ConfigDict(json_schema_extra=_one_section_per_type)

    id: str = Field(pattern=HANDLER_ID_PATTERN)
    name: str = Field(default="", max_length=200)
    events: list[Annotated[str, Field(pattern=EVENT_PATTERN_TEXT)]] = Field(min_length=1)
    priority: int = Field(default=10, ge=1, le=1000)
    filter: str | None = Field(
        default=None,
        max_length=2000,
        description="A condition over event_type, variables, pb_data and i_account (a "
        "sandboxed Jinja2 expression, e.g. pb_data.account_info.i_product in [3774, 3776]): "
        "when false the delivery is skipped, nothing is sent",
    )
    filter_status: Literal["none", "OK"] = Field(
        default="none",
        description="What a skipped delivery reports to PortaBilling (with status_group)",
    )
    holds_back: HoldsBack = Field(
        default="until_first_attempt",
        description="How long this handler's delivery of an event holds back the handlers"
        " of larger priority numbers: until_done (delivered, rejected or dead), "
        "until_first_attempt (its first attempt has finished), or never",
    )
    status: Literal["enabled", "disabled", "archived"] = "enabled"
    type: Literal["http", "script", "python", "template"]
    http: HttpHandlerConfig | None = None
    script: ScriptHandlerConfig | None = None
    python: PythonHandlerConfig | None = None
    template: TemplateHandlerConfig | None = None
    enrichment: bool = True
    pb_data_parts: list[PbDataPart] | None = Field(
        default=None,
        description="Only these parts of an account event's pb_data (the PortaBilling calls "
        "for the others are not made); default: the connector's own list, else all",
    )
    service_password: bool = Field(
        default=False,
        description="Include the account's service password (h323_password) in pb_data",
    )
    retry: RetryConfig | None = None
    status_group: str | None = Field(default=None, min_length=1, max_length=64)
    max_concurrency: int = Field(default=32, ge=1, le=1000)
    circuit: CircuitConfig = Field(default_factory=CircuitConfig)
    rate_limit: RateLimitConfig | None = None

    @field_validator("events")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return [validate_pattern(pattern) for pattern in value]

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        """The handler store keeps definitions as text, which PostgreSQL cannot hold a NUL
        character in: refused here on both engines alike."""
        if _holds_nul(data):
            raise ValueError("a handler definition may not contain the NUL character (U+0000)")
        return data

    @field_validator("filter")
    @classmethod
    def _filter_compiles(cls, value: str | None) -> str | None:
        from opennsps.connectors.templating import TemplateError, expression

        if value is None or not value.strip():
            return None
        try:
            expression(value, "filter")
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _settings_for_type(self) -> HandlerConfig:
        given = {
            t for t in ("http", "script", "python", "template") if getattr(self, t) is not None
        }
        if self.type not in given:
            raise ValueError(f"a handler of type {self.type!r} needs a '{self.type}' section")
        if given - {self.type}:
            extra = ", ".join(sorted(given - {self.type}))
            raise ValueError(f"a handler of type {self.type!r} takes no '{extra}' section")
        return self


class PipelineConfig(_Section):
    """The worker that delivers events to handlers."""

    enabled: bool = True
    max_in_flight: int = Field(default=64, ge=1, le=10_000)
    claim_batch: int = Field(default=32, ge=1, le=1000)
    poll_interval: float = Field(default=0.2, gt=0, le=60)
    lease_seconds: float = Field(default=60.0, ge=5)
    shutdown_grace: float = Field(default=10.0, ge=0)
    retry: RetryConfig = Field(default_factory=RetryConfig)


class RetentionConfig(_Section):
    days: float = Field(default=90.0, gt=0)
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    interval_seconds: float = Field(default=3600.0, gt=0)


class ApiToken(_Section):
    name: str = Field(min_length=1, max_length=64)
    token: SecretStr
    role: Literal["admin", "operator", "viewer"]

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value


class ApiConfig(_Section):
    """The management REST API (/api/v1) and who may use it."""

    tokens: list[ApiToken] = Field(default_factory=list)


class ConsoleConfig(_Section):
    """The web console at /console and its sessions (docs/console.md)."""

    enabled: bool = True
    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="A session ends this long after login"
    )
    idle_minutes: float = Field(
        default=30.0, gt=0, le=24 * 60, description="A session unused this long ends"
    )
    secure_cookie: bool = Field(
        default=False, description="Send the session cookie over HTTPS only (behind TLS)"
    )


class TracingConfig(_Section):
    """OpenTelemetry traces (tracing.py; needs the `otel` extra), exported over OTLP/HTTP."""

    enabled: bool = False
    endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        pattern=URL_PATTERN,
        description="The OTLP/HTTP traces endpoint of a collector",
    )
    service_name: str = Field(default="opennsps", min_length=1, max_length=100)
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    export_delay_seconds: float = Field(
        default=5.0, gt=0, le=300, description="Spans are sent in batches at most this late"
    )


class Settings(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    ingress: IngressConfig = Field(default_factory=IngressConfig)
    handlers: list[HandlerConfig] = Field(default_factory=list)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)

    @field_validator("handlers")
    @classmethod
    def _unique_handler_ids(cls, value: list[HandlerConfig]) -> list[HandlerConfig]:
        seen: set[str] = set()
        for handler in value:
            if handler.id in seen:
                raise ValueError(f"handler id {handler.id!r} is declared twice")
            seen.add(handler.id)
        return value


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the YAML file (if any), apply OPENNSPS_* overrides and validate.

    With no path, OPENNSPS_CONFIG names the file, else ./opennsps.yaml when it exists,
    else the built-in defaults apply.
    """
    env = os.environ if environ is None else environ
    chosen = path if path is not None else env.get(ENV_CONFIG_PATH)
    if chosen is None and Path(DEFAULT_CONFIG_FILE).is_file():
        chosen = DEFAULT_CONFIG_FILE
    origin = str(chosen) if chosen is not None else "built-in defaults"
    data = _read_yaml(Path(chosen)) if chosen is not None else {}
    overrides = _environment_overrides(env)
    for keys, value in overrides:
        _set_nested(data, keys, value, origin)
    if overrides:
        origin += " + environment"
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc), origin) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror}"], str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"not valid YAML{where}: {problem}"], str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(["the top level must be a mapping of sections"], str(path))
    return data


def _environment_overrides(env: Mapping[str, str]) -> list[tuple[list[str], Any]]:
    found = []
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_OVERRIDES:
            continue
        keys = [part.lower() for part in name[len(ENV_PREFIX) :].split(ENV_NESTING)]
        if not all(keys):
            continue
        # Text stays text (validation converts numbers and booleans where a key wants one);
        # only a YAML flow list or mapping is parsed, e.g. OPENNSPS_..._KEYS='[k1, k2]'.
        value: Any = raw
        if raw.lstrip().startswith(("{", "[")):
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
        found.append((keys, value))
    return found


def _set_nested(data: dict[str, Any], keys: list[str], value: Any, origin: str) -> None:
    node = data
    for depth, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            where = ".".join(keys[: depth + 1])
            raise ConfigError([f"{where}: is not a section, cannot override {keys}"], origin)
        node = child
    node[keys[-1]] = value


def plain_message(error: Mapping[str, Any]) -> str:
    """A validation error in words an operator acts on (no regular expressions)."""
    kind = error.get("type")
    if kind == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        if pattern in PATTERN_WORDS:
            return PATTERN_WORDS[pattern]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; docs/configuration.md lists every key)"
    if kind == "union_tag_invalid":
        return "scheme must be one of basic, custom, signature, bearer"
    if kind == "missing":
        return "is required"
    return str(error.get("msg", "is not valid"))


def describe_errors(exc: ValidationError) -> list[str]:
    """Each problem as `key: what is wrong (got value)`, in plain words, secrets never shown
    (configuration files, plug-in options)."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        # Drop the discriminator tag pydantic inserts into the location of an auth block.
        if "auth" in loc:
            at = loc.index("auth")
            if at + 1 < len(loc) and loc[at + 1] in {"basic", "custom", "signature", "bearer"}:
                del loc[at + 1]
        key = ".".join(loc) or "(top level)"
        message = plain_message(error)
        shown = "" if error["type"] in {"missing", "extra_forbidden"} else _shown(error)
        problems.append(f"{key}: {message}{shown}")
    return problems


def _shown(error: Any) -> str:
    value = error.get("input")
    if isinstance(value, dict | list) or value is None:
        return ""
    if any(
        word in ".".join(map(str, error["loc"]))
        for word in ("password", "credentials", "key", "token", "secret")
    ):
        return ""
    return f" (got {value!r})"


def describe_settings(settings: Settings) -> dict[str, Any]:
    """The effective settings with every secret masked, for `config check` and logs."""
    dumped: dict[str, Any] = settings.model_dump(mode="json")
    dumped["store"]["url"] = redact_url(settings.store.url)
    return dumped


def redact_url(url: str) -> str:
    """A database URL with its password replaced, safe to print."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


#: What each pattern a value must match means, said as an operator would.
PATTERN_WORDS = {
    HANDLER_ID_PATTERN: "use 1 to 64 lower-case letters, digits, '-' and '_', starting with a"
    " letter or digit (e.g. hss-main)",
    EVENT_PATTERN_TEXT: "an event type or pattern: letters, digits and / * . _ - only"
    " (e.g. Subscriber/Created or SIM/*)",
    URL_PATTERN: "a URL starting with http:// or https://",
    ENTRY_POINT_PATTERN: "module:Factory, e.g. opennsps.connectors.hss:HssConnector",
}


#: Secrets that are placeholders of the example configuration, not secrets.
EXAMPLE_SECRET_PREFIX = "change-me"  # noqa: S105 (a placeholder to detect, not a secret)


def example_secrets(settings: BaseModel, path: str = "") -> list[str]:
    """Where a secret still has the example configuration's placeholder value."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        where = f"{path}.{name}" if path else name
        found.extend(_example_secrets_in(value, where))
    return found


def _example_secrets_in(value: Any, where: str) -> list[str]:
    if isinstance(value, SecretStr):
        text = value.get_secret_value().strip().lower()
        return [where] if text.startswith(EXAMPLE_SECRET_PREFIX) else []
    if isinstance(value, BaseModel):
        return example_secrets(value, where)
    if isinstance(value, Mapping):
        return [w for k, v in value.items() for w in _example_secrets_in(v, f"{where}.{k}")]
    if isinstance(value, list | tuple):
        return [w for i, v in enumerate(value) for w in _example_secrets_in(v, f"{where}.{i}")]
    return []
