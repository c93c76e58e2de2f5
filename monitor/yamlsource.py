"""YAML loading that remembers where each value came from, and `${ENV}` interpolation.

Errors in driftd's config name the path *and* the line, so the loader keeps a map from
each key path to its line in the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Path = tuple[str | int, ...]


@dataclass
class SourceMap:
    """Line numbers (1-based) of each key path in a YAML document."""

    file: str
    lines: dict[Path, int] = field(default_factory=dict)
    # where line 1 of a string value's text is, for values whose lines map one to one onto
    # the file's: literal blocks (`key: |`) and one-line scalars. Errors inside a value (a
    # template) can then name the file's line.
    text_starts: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def line_in_value(self, path: Path, value_line: int) -> int | None:
        """The file line of line `value_line` (1-based) of the string at `path`, if known."""
        start = self.text_starts.get(path)
        return None if start is None else start + value_line - 1


class YamlError(ValueError):
    """The file is not YAML or not a mapping at the top."""


def _walk(node: yaml.Node, path: Path, lines: dict[Path, int],
          text_starts: dict[Path, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        if node.style == "|":  # the text starts on the line after the `|` indicator
            text_starts[path] = node.start_mark.line + 2
        elif node.start_mark.line == node.end_mark.line:
            text_starts[path] = node.start_mark.line + 1
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines, text_starts)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, text_starts)


# A config has hundreds of values; aliases (`*name`) may repeat a part, but a document whose
# aliases expand to more than this many values is refused before anything walks it.
MAX_EXPANDED_NODES = 100_000


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int],
                   file: str) -> int:
    """How many values `node` stands for with every alias expanded (memoized by node, so the
    cost is the number of distinct nodes); refuses recursive aliases and alias bombs."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise YamlError(f"{file}: an alias refers to a node that contains it (recursive "
                        "anchors are not allowed)")
    open_nodes.add(key)
    size = 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, sizes, open_nodes, file)
            size += _expanded_size(v, sizes, open_nodes, file)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            size += _expanded_size(item, sizes, open_nodes, file)
    open_nodes.discard(key)
    if size > MAX_EXPANDED_NODES:
        raise YamlError(f"{file}: line {node.start_mark.line + 1}: aliases (*name) expand "
                        f"this document to more than {MAX_EXPANDED_NODES:,} values; refusing "
                        "it (a YAML alias bomb?)")
    sizes[key] = size
    return size


def load_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse YAML text, returning the data and a key-path → line map. A document whose
    aliases expand beyond MAX_EXPANDED_NODES values is refused before it is walked."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _expanded_size(node, {}, set(), file)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise YamlError(f"{file}: not valid YAML: {exc}") from exc
    source = SourceMap(file)
    if node is not None:
        _walk(node, (), source.lines, source.text_starts)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise YamlError(f"{file}: the top level must be a mapping of sections "
                        "(store:, models:, ...)")
    return data, source


@dataclass(frozen=True)
class EnvError:
    path: Path
    variable: str


def interpolate_env(
    data: Any, env: Mapping[str, str] | None = None, path: Path = ()
) -> tuple[Any, list[EnvError]]:
    """Replace `${VAR}` / `${VAR:-default}` in every string; collect unset variables by path."""
    env = os.environ if env is None else env
    errors: list[EnvError] = []
    if isinstance(data, str):

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            errors.append(EnvError(path, name))
            return ""

        return _ENV.sub(repl, data), errors
    if isinstance(data, Mapping):
        out = {}
        for key, value in data.items():
            out[key], errs = interpolate_env(value, env, (*path, str(key)))
            errors.extend(errs)
        return out, errors
    if isinstance(data, list):
        items = []
        for i, value in enumerate(data):
            item, errs = interpolate_env(value, env, (*path, i))
            items.append(item)
            errors.extend(errs)
        return items, errors
    return data, errors
