"""YAML that remembers where each value was, and typed field access that reports errors.

Plan errors must point at a line. PyYAML's ``SafeLoader`` drops node marks once values are
built, so this loader builds mappings and sequences that keep the 1-based line of every
item, refuses duplicate keys (plain YAML silently keeps the last), and a ``Reader`` reads
typed fields from them, raising ``PlanError`` with file, line, plan and field path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any, NoReturn

import yaml

KEY = re.compile(r"^[a-z][a-z0-9_]*$")
ABSENT: Any = object()


class PlanError(Exception):
    """A plan that cannot be loaded: where, which plan, which field and why."""

    def __init__(self, source: str, line: int, plan: str, field: str, reason: str) -> None:
        self.source, self.line, self.plan, self.field, self.reason = (
            source,
            line,
            plan,
            field,
            reason,
        )
        super().__init__(f"{source}:{line}: plan '{plan}': {field}: {reason}")


# -- YAML that remembers where each value was -------------------------------------------


class Map(dict[Any, Any]):
    line: int = 1
    lines: dict[Any, int]


class Seq(list[Any]):
    line: int = 1
    lines: list[int]


class _Duplicate(Exception):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line = key, line


class _MarkedLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings and sequences carry 1-based line numbers per item."""


def _construct_map(loader: _MarkedLoader, node: yaml.MappingNode) -> Any:
    data = Map()
    data.line, data.lines = node.start_mark.line + 1, {}
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool | date) and key is not None:
            raise _Duplicate(key, key_node.start_mark.line + 1)
        if key in data:
            raise _Duplicate(key, key_node.start_mark.line + 1)
        data[key] = loader.construct_object(value_node, deep=True)
        data.lines[key] = value_node.start_mark.line + 1


def _construct_seq(loader: _MarkedLoader, node: yaml.SequenceNode) -> Any:
    data = Seq()
    data.line, data.lines = node.start_mark.line + 1, []
    yield data
    for child in node.value:
        data.append(loader.construct_object(child, deep=True))
        data.lines.append(child.start_mark.line + 1)


def _construct_timestamp(loader: _MarkedLoader, node: yaml.ScalarNode) -> Any:
    """A date YAML cannot build (2026-13-01) stays text, so validation can name its line."""
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_MarkedLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
_MarkedLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_MarkedLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


# -- reading fields -------------------------------------------------------------------


def field_path(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


class Reader:
    """Typed access to marked YAML; records each field's line for lint errors."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.plan = "?"
        self.lines: dict[str, int] = {}

    def fail(self, line: int, field: str, reason: str) -> NoReturn:
        raise PlanError(self.source, line, self.plan, field or "(plan)", reason)

    def line_of(self, field: str) -> int:
        """The line of ``field``, else of its nearest recorded parent."""
        while field:
            if field in self.lines:
                return self.lines[field]
            parent = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", field)
            if parent == field:
                break
            field = parent
        return 1

    def mapping(
        self, value: Any, line: int, field: str, required: Iterable[str], optional: Iterable[str]
    ) -> Map:
        if not isinstance(value, Map):
            self.fail(line, field, f"expected a mapping, got {shown(value)}")
        required, allowed = tuple(required), (*required, *optional)
        for key in value:
            if key not in allowed:
                self.fail(
                    value.lines[key],
                    field_path(field, str(key)),
                    f"unknown key (allowed: {', '.join(allowed)})",
                )
        for key in required:
            if key not in value:
                self.fail(value.line, field_path(field, key), "required field is missing")
        self.lines[field] = value.line
        return value

    def raw(self, m: Map, key: str, field: str, default: Any = ABSENT) -> tuple[Any, int, str]:
        path = field_path(field, key)
        if key not in m:
            return default, m.line, path
        self.lines[path] = m.lines[key]
        return m[key], m.lines[key], path

    def text(self, m: Map, key: str, field: str, default: Any = ABSENT) -> str:
        value, line, path = self.raw(m, key, field, default)
        if not isinstance(value, str) or not value.strip():
            self.fail(line, path, f"expected non-empty text, got {shown(value)}")
        return value

    def key(self, m: Map, key: str, field: str) -> str:
        value, line, path = self.raw(m, key, field)
        if not isinstance(value, str) or not KEY.match(value):
            self.fail(line, path, f"expected a snake_case key, got {value!r}")
        return value

    def integer(
        self,
        m: Map,
        key: str,
        field: str,
        low: int,
        high: int | None = None,
        default: Any = ABSENT,
    ) -> int:
        value, line, path = self.raw(m, key, field, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(line, path, f"expected a whole number, got {shown(value)}")
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            self.fail(line, path, f"must be {bound}, got {value}")
        return value

    def number(self, m: Map, key: str, field: str) -> float:
        value, line, path = self.raw(m, key, field)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self.fail(line, path, f"expected a number >= 0, got {shown(value)}")
        return float(value)

    def flag(self, m: Map, key: str, field: str) -> bool:
        value, line, path = self.raw(m, key, field, False)
        if not isinstance(value, bool):
            self.fail(line, path, f"expected true or false, got {shown(value)}")
        return value

    def seq(self, m: Map, key: str, field: str, default: Any = ABSENT) -> Seq:
        value, line, path = self.raw(m, key, field, default)
        if not isinstance(value, Seq):
            self.fail(line, path, f"expected a list, got {shown(value)}")
        return value

    def keys(self, m: Map, key: str, field: str, default: Any = ABSENT) -> tuple[str, ...]:
        items = self.seq(m, key, field, default)
        path = field_path(field, key)
        for i, item in enumerate(items):
            if not isinstance(item, str) or not KEY.match(item):
                self.fail(
                    items.lines[i], field_path(path, i), f"expected a snake_case key, got {item!r}"
                )
        return tuple(items)


def shown(value: Any) -> str:
    if value is ABSENT:
        return "nothing"
    if isinstance(value, Map):
        return "a mapping"
    if isinstance(value, Seq):
        return "a list"
    return repr(value)


def empty_seq() -> Seq:
    empty = Seq()
    empty.lines = []
    return empty


def parse(text: str, reader: Reader) -> Any:
    """The YAML document in ``text`` as marked values; syntax errors become ``PlanError``."""
    match = re.search(r"^key:\s*([A-Za-z0-9_]+)\s*$", text, re.MULTILINE)
    if match:
        reader.plan = match.group(1)
    try:
        root = yaml.load(text, Loader=_MarkedLoader)
    except _Duplicate as error:
        reader.fail(error.line, str(error.key), "duplicate key")
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        reader.fail(line, "(yaml)", f"invalid YAML: {error.problem or error}")
    except yaml.YAMLError as error:
        reader.fail(1, "(yaml)", f"invalid YAML: {error}")
    if root is None:
        reader.fail(1, "(plan)", "the file is empty")
    return root
