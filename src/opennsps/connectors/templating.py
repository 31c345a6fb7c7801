"""Jinja2 templates for the template connector, in a sandboxed environment.

A string that is exactly one `{{ expression }}` keeps the expression's own type (a number
stays a number in a JSON body); any other string is rendered as text. Templates are
compiled when the handler is loaded, so a syntax error is reported at start-up; compiled
templates are cached by their text, because a handler's definition is validated again
each time it is read from the store (the worker rereads handlers every second).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.DOTALL)

environment = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


@functools.lru_cache(maxsize=4096)
def _template(source: str) -> Template:
    return environment.from_string(source)


@functools.lru_cache(maxsize=4096)
def _expression(source: str, undefined_to_none: bool) -> Any:
    return environment.compile_expression(source, undefined_to_none=undefined_to_none)


class TemplateError(ValueError):
    """A template cannot be compiled or rendered; the message names it."""


class Compiled:
    """A template tree (mapping, list or string leaves) ready to render."""

    def __init__(self, source: Any, where: str) -> None:
        self.where = where
        self._tree = _compile(source, where)

    def render(self, context: Mapping[str, Any]) -> Any:
        return _render(self._tree, context, self.where)


def expression(source: str, where: str) -> Any:
    try:
        return _expression(source, False)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{where}: {exc.message}") from None


def _compile(source: Any, where: str) -> Any:
    if isinstance(source, Mapping):
        return {str(k): _compile(v, f"{where}.{k}") for k, v in source.items()}
    if isinstance(source, list):
        return [_compile(v, f"{where}[{i}]") for i, v in enumerate(source)]
    if isinstance(source, str):
        single = _SINGLE_EXPRESSION.match(source)
        try:
            if single:
                return ("expr", _expression(single["expr"], True))
            return ("text", _template(source))
        except TemplateSyntaxError as exc:
            raise TemplateError(f"{where}: {exc.message}") from None
    return ("value", source)


def _render(node: Any, context: Mapping[str, Any], where: str) -> Any:
    if isinstance(node, dict):
        return {k: _render(v, context, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, context, f"{where}[{i}]") for i, v in enumerate(node)]
    kind, compiled = node
    if kind == "value":
        return compiled
    try:
        return compiled(**context) if kind == "expr" else compiled.render(**context)
    except Exception as exc:  # an undefined name or a failing filter: say where
        raise TemplateError(f"{where}: {exc}") from None
