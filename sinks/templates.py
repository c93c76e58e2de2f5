"""Jinja2 templates for webhook requests, rendered in a sandbox from the alert body.

Templates come from the config file, and render data that partly comes from events (model
versions, feature names), so they run in Jinja2's `ImmutableSandboxedEnvironment`: no access to
Python internals (`__class__`, `__globals__`), no mutating the alert, ranges capped. Undefined
names fail loudly (`StrictUndefined`) instead of rendering as empty text, and `tojson` writes
JSON-safe values, so a body can be checked as JSON before it is sent.

Every failure is a `TemplateProblem` carrying the template line, so `validate-config` can point
at the line in the config file and the outbox can record why a delivery could not be built.
"""

from __future__ import annotations

import functools
import json
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

_TEMPLATE_FILENAME = "<template>"  # what Jinja2 names frames of templates built from strings


class TemplateProblem(ValueError):
    """A template that does not parse, render, or render into a usable request.

    `template_line` is 1-based within the template (None when unknown); `subpath` continues
    the config path below the option being validated (e.g. `("drift.resolved",
    "body_template")` under `per_event_type`). Messages never quote the template or its
    output: both may hold secrets substituted from `${ENV}`.
    """

    def __init__(self, message: str, *, template_line: int | None = None,
                 subpath: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.template_line = template_line
        self.subpath = subpath

    def under(self, *subpath: str) -> TemplateProblem:
        """The same problem, placed below `subpath` in the config."""
        return TemplateProblem(self.message, template_line=self.template_line,
                               subpath=(*subpath, *self.subpath))


def tojson(value: Any) -> str:
    """The value as compact JSON text: strings quoted and escaped, NaN and infinity refused."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()  # raises UndefinedError naming what is missing
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise jinja2.TemplateRuntimeError(f"tojson: {exc}") from None


@functools.cache
def template_environment() -> ImmutableSandboxedEnvironment:
    """The one sandbox every webhook template is compiled in (built on first use).

    No loader: `{% include %}` and `{% extends %}` fail, a template is self-contained.
    Autoescaping is off because the output is JSON or a URL path, not HTML: use `tojson`.
    """
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                        keep_trailing_newline=True)
    env.filters["tojson"] = tojson
    return env


def _line_of(exc: BaseException) -> int | None:
    """The template line a render error was raised at (Jinja2 rewrites its traceback so
    template frames carry template line numbers)."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
             if frame.filename == _TEMPLATE_FILENAME]
    return lines[-1] if lines else None


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> jinja2.Template:
    """Compiled once per text: config checks, reloads and the sink share it (a compiled
    template is immutable and safe to render from any thread)."""
    return template_environment().from_string(source)


@dataclass(frozen=True)
class RequestTemplate:
    """One compiled template; `option` names it in messages (`body_template`, ...)."""

    option: str
    compiled: jinja2.Template

    @classmethod
    def compile(cls, source: str, option: str) -> RequestTemplate:
        """Parse `source`; a syntax error is a `TemplateProblem` with its line."""
        try:
            compiled = _compiled(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(f"does not parse at template line {exc.lineno}: "
                                  f"{exc.message}", template_line=exc.lineno) from None
        return cls(option, compiled)

    def render(self, alert: Mapping[str, Any]) -> str:
        """Render with `alert` bound to the alert body; any failure is a `TemplateProblem`."""
        try:
            return self.compiled.render(alert=alert)
        except Exception as exc:  # UndefinedError, SecurityError, TypeError in a filter, ...
            line = _line_of(exc)
            where = f" at template line {line}" if line is not None else ""
            kind = "refused by the sandbox" if isinstance(
                exc, jinja2.sandbox.SecurityError) else "failed"
            raise TemplateProblem(f"rendering a {alert.get('type', 'driftd')} alert {kind}"
                                  f"{where}: {type(exc).__name__}: {exc}",
                                  template_line=line) from None
