"""Line-aware YAML reading for the config parser: nodes with line numbers, and typed readers.

Owns: turning config text into `YNode`s (a small tree that remembers the 1-based line of
every value and key), `${VAR}` interpolation, and the `Reader` whose typed accessors raise
`ConfigError` with file, line, dotted field and "expected X, got Y".

Rules:
- Pure: no file or environment access; the environment is a mapping handed in.
- Error messages never quote a value that may be secret: callers mark such values
  `secret=True`, and a value that came from the environment is shown as its `${...}` source
  text, never as what it expanded to.
- YAML syntax errors are reported without pyyaml's source snippet (it may hold a key).
- Duplicate mapping keys are errors (pyyaml would silently keep the last one).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn

import yaml  # type: ignore[import-untyped, unused-ignore]
from yaml.constructor import (  # type: ignore[import-untyped, unused-ignore]
    ConstructorError,
    SafeConstructor,
)

from core.errors import ConfigError

NodeKind = Literal["scalar", "seq", "map"]
_YAML_TAG = "tag:yaml.org,2002:"


@dataclass(frozen=True, slots=True, kw_only=True)
class YNode:
    """One YAML value. Scalars keep their raw text and resolved tag (`str`, `int`, `null`...)."""

    kind: NodeKind
    line: int
    tag: str = ""
    text: str = ""
    items: tuple[YNode, ...] = ()
    entries: tuple[tuple[YNode, YNode], ...] = ()  # (key, value) for mappings

    @property
    def is_null(self) -> bool:
        return self.kind == "scalar" and self.tag == "null"


def compose(text: str, source: str) -> YNode | None:
    """Parse YAML text into a YNode tree (None for an empty document)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        parts = [p for p in (exc.context, exc.problem) if p]
        lines = text.splitlines()
        source_line = lines[line - 1] if line and line <= len(lines) else ""
        if "flow" in " ".join(parts) and "${" in source_line:
            # `[${KEY}]` is a YAML trap: `{` opens a mapping inside a flow collection.
            parts.append('inside [...] or {...} write ${...} values in quotes: "${KEY}"')
        raise ConfigError("invalid YAML: " + "; ".join(parts), file=source, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {type(exc).__name__}", file=source) from None
    return None if node is None else _convert(node, source)


def _convert(node: yaml.Node, source: str) -> YNode:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        tag = node.tag.removeprefix(_YAML_TAG)
        return YNode(kind="scalar", line=line, tag=tag, text=str(node.value))
    if isinstance(node, yaml.SequenceNode):
        return YNode(kind="seq", line=line, items=tuple(_convert(n, source) for n in node.value))
    assert isinstance(node, yaml.MappingNode)
    entries: list[tuple[YNode, YNode]] = []
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = _convert(key_node, source)
        if key.kind != "scalar" or key.tag == "merge":
            raise ConfigError(
                "mapping keys must be plain names (merge keys and complex keys are not supported)",
                file=source,
                line=key.line,
            )
        if key.text in seen:
            raise ConfigError(
                f"duplicate key '{key.text}' (first at line {seen[key.text]})",
                file=source,
                line=key.line,
            )
        seen[key.text] = key.line
        entries.append((key, _convert(value_node, source)))
    return YNode(kind="map", line=line, entries=tuple(entries))


def scalar_value(node: YNode) -> object:
    """The Python value pyyaml's safe loader gives a scalar (int, float, bool, None, str...)."""
    yaml_node = yaml.ScalarNode(_YAML_TAG + node.tag, node.text)
    try:
        return SafeConstructor().construct_object(yaml_node)
    except (ConstructorError, ValueError):
        return node.text


# ---------------------------------------------------------------- interpolation

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


class UnsetVariableError(Exception):
    """A `${VAR}` without a default whose variable is not in the environment."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Expand `${VAR}` and `${VAR:-default}` (default when unset or empty); `$$` is `$`.

    Raises UnsetVariableError for `${VAR}` when VAR is unset, ValueError for a malformed
    `${...}` reference."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name, default = match.group(2), match.group(3)
        value = env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            raise UnsetVariableError(name)
        return value

    result = _VAR.sub(replace, text)
    leftover = _VAR.sub("", text)
    if "${" in leftover:
        raise ValueError("malformed ${...} reference: expected ${NAME} or ${NAME:-default}")
    return result


def references(text: str) -> list[str]:
    """The environment variables a string takes (part of) its value from."""
    return [m.group(2) for m in _VAR.finditer(text) if m.group(2)]


# ---------------------------------------------------------------- typed reading


def _quote(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def describe(node: YNode, *, secret: bool = False) -> str:
    """What was found, for "expected X, got Y" (never a secret's value)."""
    if node.kind == "seq":
        return "a list"
    if node.kind == "map":
        return "a mapping"
    if node.is_null:
        return "nothing (an empty value)"
    if secret:
        return "a string" if node.tag == "str" else f"a {node.tag}"
    if node.tag == "str":
        return _quote(node.text)
    return node.text


@dataclass(frozen=True, slots=True)
class Entries:
    """A checked mapping: its node and its values by key, for one config section."""

    node: YNode
    values: Mapping[str, YNode]

    def get(self, key: str) -> YNode | None:
        node = self.values.get(key)
        return None if node is None or node.is_null else node


class Reader:
    """Typed access to YNodes; each method raises ConfigError naming the field."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env

    def fail(self, node: YNode | None, field: str, message: str) -> NoReturn:
        raise ConfigError(message, file=self.source, line=node.line if node else None, field=field)

    def expected(self, node: YNode, field: str, what: str, *, secret: bool = False) -> NoReturn:
        self.fail(node, field, f"expected {what}, got {self.found(node, secret=secret)}")

    def found(self, node: YNode, *, secret: bool = False) -> str:
        if node.kind == "scalar" and node.tag == "str" and references(node.text):
            return f"{_quote(node.text)} (after ${{...}} expansion)"
        return describe(node, secret=secret)

    def mapping(
        self,
        node: YNode,
        field: str,
        allowed: Sequence[str],
        required: Sequence[str] = (),
    ) -> Entries:
        """A mapping whose keys are all in `allowed`; unknown keys get a did-you-mean."""
        if node.kind != "map":
            self.expected(node, field, "a mapping of keys")
        values: dict[str, YNode] = {}
        for key, value in node.entries:
            if key.text not in allowed:
                close = difflib.get_close_matches(key.text, allowed, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                where = f"{field}.{key.text}" if field else key.text
                self.fail(key, where, f"unknown key '{key.text}'{hint}")
            values[key.text] = value
        for name in required:
            if name not in values or values[name].is_null:
                where = f"{field}.{name}" if field else name
                self.fail(values.get(name, node), where, f"missing required key '{name}'")
        return Entries(node, values)

    def sequence(self, node: YNode, field: str, what: str = "a list") -> tuple[YNode, ...]:
        if node.kind != "seq":
            self.expected(node, field, what)
        return node.items

    def string(self, node: YNode, field: str, *, secret: bool = False) -> str:
        """A scalar's text with ${VAR} expanded; an unset variable is an error here."""
        try:
            return self.string_or_unset(node, field, secret=secret)
        except UnsetVariableError as exc:
            self.fail(
                node,
                field,
                f"environment variable {exc.name} is not set "
                f"(set it, or give a default: ${{{exc.name}:-default}})",
            )

    def string_or_unset(self, node: YNode, field: str, *, secret: bool = False) -> str:
        """Like `string`, but lets UnsetVariableError through (for api keys)."""
        # Any scalar is taken as its source text, so `anthropic-version: 2023-06-01` or
        # `model: 1.5` mean what they say instead of a date or a float.
        if node.kind != "scalar" or node.is_null:
            self.expected(node, field, "a string", secret=secret)
        if node.tag != "str":
            return node.text
        try:
            return interpolate(node.text, self.env)
        except ValueError as exc:
            self.fail(node, field, str(exc))

    def _typed(
        self, node: YNode, field: str, what: str, convert: Callable[[str], object]
    ) -> object:
        """A scalar's typed value; a string from ${VAR} expansion is converted from text."""
        if node.kind != "scalar" or node.is_null:
            self.expected(node, field, what)
        if node.tag == "str" and references(node.text):
            text = self.string(node, field).strip()
            try:
                return convert(text)
            except ValueError:
                self.expected(node, field, what)
        return scalar_value(node)

    def integer(self, node: YNode, field: str, *, minimum: int | None = None) -> int:
        what = "an integer" if minimum is None else f"an integer >= {minimum}"
        value = self._typed(node, field, what, int)
        if isinstance(value, bool) or not isinstance(value, int):
            self.expected(node, field, what)
        if minimum is not None and value < minimum:
            self.expected(node, field, what)
        return value

    def number(self, node: YNode) -> float | None:
        """A YAML int or float as float; None when the node is not a number."""
        if node.kind != "scalar" or node.tag not in ("int", "float"):
            return None
        value = scalar_value(node)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def boolean(self, node: YNode, field: str) -> bool:
        words = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}

        def convert(text: str) -> bool:
            if text.lower() not in words:
                raise ValueError(text)
            return words[text.lower()]

        value = self._typed(node, field, "true or false", convert)
        if not isinstance(value, bool):
            self.expected(node, field, "true or false")
        return value

    def choice(self, node: YNode, field: str, choices: Sequence[str]) -> str:
        text = self.string(node, field) if node.kind == "scalar" and not node.is_null else None
        if text is None or text.strip().lower() not in choices:
            allowed = ", ".join(choices)
            self.expected(node, field, f"one of {allowed}")
        return text.strip().lower()

    def duration(self, node: YNode, field: str, *, allow_zero: bool = False) -> float:
        """Seconds, from a number or text like `30s`, `2m`, `500ms`."""
        seconds = self.number(node)
        if seconds is None and node.kind == "scalar" and not node.is_null:
            seconds = parse_duration(self.string(node, field))
        if seconds is None:
            self.expected(node, field, "a duration like 30 (seconds), '30s', '2m' or '500ms'")
        if seconds < 0 or (seconds == 0 and not allow_zero):
            self.expected(node, field, "a duration >= 0" if allow_zero else "a positive duration")
        return seconds

    def size(self, node: YNode, field: str) -> int:
        """Bytes, from a whole number or text like `10MB`."""
        number = self.number(node)
        if number is not None and number.is_integer() and number >= 1:
            return int(number)
        size = parse_size(self.string(node, field)) if node.kind == "scalar" else None
        if size is None or size < 1:
            self.expected(node, field, "a size like 10485760 or '10MB'")
        return size


# ---------------------------------------------------------------- value grammars
# Text forms of rates, durations and sizes. They return plain numbers (None when the text
# does not match) so core/config.py owns the types and the messages.

_PER = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
}
_COUNTED = {
    **dict.fromkeys(("request", "requests", "req", "reqs", "call", "calls"), "requests"),
    **dict.fromkeys(("token", "tokens", "tok", "toks"), "tokens"),
}
_AMOUNT = r"(?P<amount>\d[\d_,]*(?:\.\d+)?)\s*(?P<k>k)?"
_RATE = re.compile(_AMOUNT + r"\s*(?P<what>[a-z]+)?\s*(?:/|\bper\b)\s*(?P<unit>[a-z]+)")
_RATE_WORD = re.compile(_AMOUNT + r"\s*(?P<word>[rt]p[smhd])")  # 100 rpm, 10 rps, 5k tpm


def parse_rate(text: str) -> tuple[float, float, str | None] | None:
    """`100 requests/min` -> (100, 60, "requests"); `10/s` -> (10, 1, None); else None."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return (float(text), 60.0, None)  # a bare number is per minute
    match = _RATE.fullmatch(text)
    if match:
        counted: str | None = None
        if match["what"]:
            if match["what"] not in _COUNTED:
                return None
            counted = _COUNTED[match["what"]]
        per = _PER.get(match["unit"])
    else:
        match = _RATE_WORD.fullmatch(text)
        if not match:
            return None
        counted = "requests" if match["word"][0] == "r" else "tokens"
        per = _PER[match["word"][2]]
    if per is None:
        return None
    amount = float(match["amount"].replace("_", "").replace(",", ""))
    return (amount * (1000 if match["k"] else 1), per, counted)


_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>[a-z]*)")
_DURATION_UNITS = {"": 1.0, "ms": 0.001, **_PER}


def parse_duration(text: str) -> float | None:
    """`30s` -> 30.0, `2m` -> 120.0, `500ms` -> 0.5, `1.5` -> 1.5; else None."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match or match["unit"] not in _DURATION_UNITS:
        return None
    return float(match["n"]) * _DURATION_UNITS[match["unit"]]


_SIZE = re.compile(r"(?P<n>\d+)\s*(?P<unit>[kmg]?i?b?)")
_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int | None:
    """`10MB` -> 10485760 (binary multiples; KB, KiB and K mean the same); else None."""
    match = _SIZE.fullmatch(text.strip().lower())
    if not match or match["unit"] == "ib" or match["unit"] == "i":
        return None
    return int(match["n"]) * _SIZE_UNITS.get(match["unit"][:1], 1)
