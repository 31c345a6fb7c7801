"""Handlers as people see them (secrets masked), and a changed handler sent back with
those masks in it: a masked value left as shown keeps the stored secret, so editing a
handler's name in the console does not replace its token with "[redacted]"."""

from __future__ import annotations

import re
from typing import Any

from opennsps.config import HandlerConfig
from opennsps.ingress.redaction import REDACTED
from opennsps.pipeline.dispatch import redact

SECRET_OPTION = re.compile(r"(password|token|secret|key)$", re.IGNORECASE)


def masked_options(value: Any) -> Any:
    """A plug-in's options with every value under a secret-looking key masked, and any
    credentials in a URL (a database URL) too."""
    if isinstance(value, dict):
        return {
            k: REDACTED if SECRET_OPTION.search(str(k)) and v else masked_options(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [masked_options(v) for v in value]
    if isinstance(value, str):
        return redact(value, ())
    return value


def masked_definition(definition: HandlerConfig) -> dict[str, Any]:
    shown: dict[str, Any] = definition.model_dump(mode="json")
    if shown.get("http") and shown["http"].get("token") is not None:
        shown["http"]["token"] = REDACTED
    if shown.get("template"):
        shown["template"]["secrets"] = dict.fromkeys(shown["template"]["secrets"], REDACTED)
    if shown.get("python"):
        shown["python"]["options"] = masked_options(shown["python"]["options"])
    return shown


def _kept(new: Any, old: Any) -> Any:
    """`new`, where every part equal to the masked form of the same part of `old` is `old`."""
    if isinstance(new, dict) and isinstance(old, dict):
        kept = {}
        for k, v in new.items():
            if k not in old:
                kept[k] = v
            elif SECRET_OPTION.search(str(k)) and v == REDACTED:
                kept[k] = old[k]
            else:
                kept[k] = _kept(v, old[k])
        return kept
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        return [_kept(v, o) for v, o in zip(new, old, strict=True)]
    if isinstance(new, str) and isinstance(old, str) and new != old and new == redact(old, ()):
        return old  # a URL whose credentials were masked
    return new


def with_stored_secrets(new: HandlerConfig, old: HandlerConfig) -> HandlerConfig:
    """The new definition with the stored secrets where it carries their masks."""
    if new.type != old.type:
        return new
    data = new.model_dump(mode="python")
    stored = old.model_dump(mode="python")
    token = new.http.token if new.http is not None else None
    if token is not None and token.get_secret_value() == REDACTED and old.http is not None:
        data["http"]["token"] = old.http.token
    if new.template is not None and old.template is not None:
        data["template"]["secrets"] = {
            name: old.template.secrets[name]
            if value.get_secret_value() == REDACTED and name in old.template.secrets
            else value
            for name, value in new.template.secrets.items()
        }
    if new.python is not None and old.python is not None:
        data["python"]["options"] = _kept(data["python"]["options"], stored["python"]["options"])
    return HandlerConfig.model_validate(data)
