"""Generic checks over ``yaml.compose`` nodes: typed readers that report every problem with its line.

Why a separate module: none of this knows our schema, and keeping it apart lets ``exporter.config``
read as the schema alone. Readers never construct arbitrary YAML tags, refuse unknown and duplicate
keys, and report problems as ``file:line: key.path: message`` through a ``Report``, which scrubs every
secret value it was told about before any message leaves it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "Context",
    "Reader",
    "Report",
    "compose",
    "format_duration",
    "get_field",
    "join",
    "kind",
    "mapping_fields",
    "parse_duration",
    "read_boolean",
    "read_duration",
    "read_integer",
    "read_path",
    "read_positive_number",
    "read_regex",
    "read_text",
    "read_text_list",
    "tag",
    "unknown_key",
]

_T = TypeVar("_T")
Reader = Callable[[Node, str], "_T | None"]

# ---------------------------------------------------------------------------------------------
# Durations

_UNITS: Final = {
    "y": 365 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
_UNIT_ORDER: Final = tuple(_UNITS)
_DURATION_PART: Final = re.compile(r"(\d+)(ms|[ywdhms])")
_UNIT_HINT: Final = "units: ms, s, m, h, d, w, y; e.g. 500ms, 15s, 5m, 1h, 1m30s"


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus-style duration (``500ms``, ``15s``, ``1m30s``).

    Units go largest first, each at most once, as in Prometheus. A bare number is refused rather
    than guessed: ``15`` could mean seconds or milliseconds, and the wrong guess polls 1000x too often.

    Raises:
        ValueError: with a hint (``"15" has no unit: write 15s``).
    """
    if re.fullmatch(r"\d+(\.\d+)?", text):
        raise ValueError(f'"{text}" has no unit: write "{text}s" for seconds ({_UNIT_HINT})')
    total, pos, last = 0.0, 0, -1
    while pos < len(text) and (match := _DURATION_PART.match(text, pos)):
        rank = _UNIT_ORDER.index(match.group(2))
        if rank <= last:
            raise ValueError(
                f'invalid duration "{text}": units must go largest first, each once ({_UNIT_HINT})'
            )
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos, last = match.end(), rank
    if not text or pos != len(text):
        raise ValueError(f'invalid duration "{text}" ({_UNIT_HINT})')
    return total


def format_duration(seconds: float) -> str:
    """The shortest duration text ``parse_duration`` reads back (for logs and the landing page)."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit in ("h", "m", "s", "ms"):
        size = round(_UNITS[unit] * 1000)
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Problem collection


class Report:
    """Collects problems with their lines; scrubs secrets from the text before anyone sees it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._problems: list[tuple[int, str]] = []
        self._warnings: list[tuple[int, str]] = []
        self.secrets: set[str] = set()

    def problem(self, where: Node | int, path: str, message: str) -> None:
        self._problems.append(self._format(where, path, message))

    def warning(self, where: Node | int, path: str, message: str) -> None:
        self._warnings.append(self._format(where, path, message))

    def has_problems(self) -> bool:
        return bool(self._problems)

    def count(self) -> int:
        return len(self._problems)

    def problems(self) -> list[str]:
        return self._finish(self._problems)

    def warnings(self) -> tuple[str, ...]:
        return tuple(self._finish(self._warnings))

    def _format(self, where: Node | int, path: str, message: str) -> tuple[int, str]:
        line = where if isinstance(where, int) else where.start_mark.line + 1
        prefix = f"{self.source}:{line}: " + (f"{path}: " if path else "")
        return line, prefix + message

    def _finish(self, items: list[tuple[int, str]]) -> list[str]:
        secrets = sorted((s for s in self.secrets if s), key=len, reverse=True)
        out = []
        for _, message in sorted(items, key=lambda item: item[0]):  # stable: same line keeps order
            for secret in secrets:
                message = message.replace(secret, "<redacted>")  # noqa: PLW2901
            out.append(message)
        return out


@dataclass(frozen=True, slots=True)
class Context:
    """What every reader needs: where problems go, where relative paths start, the environment."""

    report: Report
    base_dir: Path
    env: Mapping[str, str]


def compose(text: str, report: Report) -> Node | None:
    """The root node, or None after reporting a syntax error or an empty file."""
    try:
        root: Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        # Only problem/context: str(exc) would quote the offending line, which may hold a secret.
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        detail = ", ".join(part for part in (exc.context, exc.problem) if part)
        report.problem(line, "", f"YAML syntax error at column {column}: {detail}")
        return None
    except yaml.YAMLError as exc:  # ReaderError: control characters and the like, no line known
        position = getattr(exc, "position", "?")
        report.problem(1, "", f"not a readable YAML text (character offset {position})")
        return None
    if root is None:
        report.problem(1, "", "the file is empty (write {} to take every default)")
    return root


# ---------------------------------------------------------------------------------------------
# Typed readers over nodes: each reports its own problems and returns None on failure

_STD = "tag:yaml.org,2002:"
_KINDS: Final = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "null",
    "timestamp": "a timestamp",
    "binary": "binary data",
}


def kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _KINDS.get(node.tag.removeprefix(_STD), f"a value tagged {node.tag}")


def tag(node: Node) -> str | None:
    """Short standard tag of a scalar (``int``, ``str``...); None for collections and custom tags."""
    if isinstance(node, ScalarNode) and node.tag.startswith(_STD):
        return node.tag.removeprefix(_STD)
    return None


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def mapping_fields(node: Node, path: str, known: Sequence[str], ctx: Context) -> dict[str, Node] | None:
    """Key -> value node of a mapping; unknown and duplicate keys are problems, null means unset."""
    r = ctx.report
    if not isinstance(node, MappingNode):
        r.problem(node, path, f"expected a mapping, got {kind(node)}")
        return None
    own = sum(1 for key, _ in node.value if key.tag != _STD + "merge")
    try:
        SafeConstructor().flatten_mapping(node)  # `<<: *defaults` merges, explicit keys override
    except ConstructorError as exc:
        r.problem(exc.problem_mark.line + 1 if exc.problem_mark else node, path, f"bad merge: {exc.problem}")
        return None
    merged = len(node.value) - own  # the first `merged` pairs came from merges
    fields: dict[str, Node] = {}
    lines: dict[str, int] = {}
    for index, (key_node, value) in enumerate(node.value):
        if tag(key_node) is None:
            r.problem(key_node, path, f"keys must be strings, got {kind(key_node)}")
            continue
        key = str(key_node.value)
        if key not in known:
            r.problem(key_node, join(path, key[:60]), unknown_key(key, known))
            continue
        if index >= merged:
            if key in lines:
                r.problem(key_node, join(path, key), f"duplicate key (first set on line {lines[key]})")
                continue
            lines[key] = key_node.start_mark.line + 1
        fields.pop(key, None)
        if tag(value) != "null":
            fields[key] = value
    return fields


def unknown_key(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f'unknown key (did you mean "{close[0]}"?)'
    return "unknown key (known: " + ", ".join(known) + ")"


def read_text(node: Node, path: str, ctx: Context, *, secret: bool = False) -> str | None:
    """A scalar as written: ``name: 0123`` is the string "0123", not the integer 83."""
    if tag(node) not in ("str", "int", "float", "bool", "timestamp"):
        r = ctx.report
        r.problem(node, path, f"expected a string, got {kind(node)}")
        return None
    value = str(node.value)
    if secret:
        ctx.report.secrets.add(value)
    return value


def read_integer(node: Node, path: str, ctx: Context, *, minimum: int, hint: str = "") -> int | None:
    if not isinstance(node, ScalarNode) or tag(node) != "int":
        ctx.report.problem(node, path, f"expected an integer, got {kind(node)}")
        return None
    value = int(SafeConstructor().construct_yaml_int(node))
    if value < minimum:
        ctx.report.problem(node, path, f"must be at least {minimum}, got {value}{hint}")
        return None
    return value


def read_positive_number(node: Node, path: str, ctx: Context) -> float | None:
    if not isinstance(node, ScalarNode) or tag(node) not in ("int", "float"):
        ctx.report.problem(node, path, f"expected a number, got {kind(node)}")
        return None
    value = float(SafeConstructor().construct_yaml_float(node))
    if not (value > 0 and math.isfinite(value)):
        ctx.report.problem(node, path, f"must be a finite number greater than 0, got {node.value}")
        return None
    return value


def read_boolean(node: Node, path: str, ctx: Context) -> bool | None:
    if not isinstance(node, ScalarNode) or tag(node) != "bool":
        ctx.report.problem(node, path, f"expected true or false, got {kind(node)}")
        return None
    return bool(SafeConstructor().construct_yaml_bool(node))


def read_duration(node: Node, path: str, ctx: Context, *, positive: bool) -> float | None:
    if tag(node) not in ("str", "int", "float"):
        ctx.report.problem(node, path, f"expected a duration such as 15s, got {kind(node)}")
        return None
    try:
        value = parse_duration(str(node.value))
    except ValueError as exc:
        ctx.report.problem(node, path, str(exc))
        return None
    if positive and value <= 0:
        ctx.report.problem(node, path, f'must be greater than 0, got "{node.value}"')
        return None
    return value


def read_regex(node: Node, path: str, ctx: Context) -> re.Pattern[str] | None:
    source = read_text(node, path, ctx)
    if source is None:
        return None
    try:
        return re.compile(source)
    except re.error as exc:
        ctx.report.problem(node, path, f"invalid regex {source!r}: {exc.msg} at position {exc.pos}")
        return None


def read_text_list(
    node: Node, path: str, ctx: Context, check: Callable[[str, Node, str], bool]
) -> list[str] | None:
    """A list of distinct strings, each passed through ``check`` (which reports its own problems)."""
    r = ctx.report
    if not isinstance(node, SequenceNode):
        r.problem(node, path, f"expected a list, got {kind(node)}")
        return None
    before = r.count()
    items: list[str] = []
    first_line: dict[str, int] = {}
    for index, item in enumerate(node.value):
        item_path = f"{path}[{index}]"
        value = read_text(item, item_path, ctx)
        if value is None or not check(value, item, item_path):
            continue
        if value in first_line:
            r.problem(item, item_path, f'duplicate "{value}" (first on line {first_line[value]})')
            continue
        first_line[value] = item.start_mark.line + 1
        items.append(value)
    return items if r.count() == before else None


def read_path(node: Node, path: str, ctx: Context) -> Path | None:
    text = read_text(node, path, ctx)
    if text is None:
        return None
    if not text.strip():
        ctx.report.problem(node, path, "is an empty path")
        return None
    return ctx.base_dir / text  # an absolute text stays absolute


def get_field(fields: Mapping[str, Node], key: str, path: str, read: Reader[_T], default: _T) -> _T | None:
    node = fields.get(key)
    return default if node is None else read(node, join(path, key))
