"""Building the connector a handler's definition describes."""

from __future__ import annotations

from opennsps.config import HandlerConfig
from opennsps.connectors.base import Connector
from opennsps.connectors.http import HttpConnector, HttpConnectorSettings
from opennsps.connectors.plugin import PluginConnector, load_plugin
from opennsps.connectors.script import ScriptConnector, ScriptConnectorSettings
from opennsps.connectors.template import TemplateConnector


def build_connector(handler: HandlerConfig) -> Connector:
    """Raises PluginLoadError (or ValueError) when the definition cannot be used."""
    if handler.type == "http":
        assert handler.http is not None
        http = handler.http
        return HttpConnector(
            HttpConnectorSettings(
                url=http.url,
                token=http.token.get_secret_value() if http.token else None,
                timeout=http.timeout,
                verify_tls=http.verify_tls,
            ),
            max_connections=handler.max_concurrency,
        )
    if handler.type == "script":
        assert handler.script is not None
        script = handler.script
        return ScriptConnector(
            ScriptConnectorSettings(
                command=tuple(script.command),
                timeout=script.timeout,
                working_directory=script.working_directory,
            )
        )
    if handler.type == "template":
        assert handler.template is not None
        template = handler.template
        return TemplateConnector(
            template.call_mappings(),
            base_url=template.base_url,
            secrets={k: v.get_secret_value() for k, v in template.secrets.items()},
            timeout=template.timeout,
            verify_tls=template.verify_tls,
        )
    assert handler.python is not None
    python = handler.python
    return PluginConnector(load_plugin(python.entry_point, python.options), python.timeout)
