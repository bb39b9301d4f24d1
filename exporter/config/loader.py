"""The one YAML reader for every file the exporter reads: composed nodes in, typed values out.

Why compose nodes instead of ``yaml.safe_load``: a loaded dict has forgotten where each value was
written, and an operator running ``--check-config`` wants ``config.yml:12: accounts[0].regions[1]:
malformed region "ap mars"``, for every mistake in one run, not the first one per edit cycle.
Walking ``yaml.compose`` nodes keeps each value's line, lets us refuse unknown and duplicate keys
(as blackbox_exporter's ``KnownFields(true)`` does) and never constructs arbitrary YAML tags.

A schema is a mapping ``key -> Reader``; a reader turns one node into one typed value or raises
``Invalid`` (one problem at that node) or ``Reported`` (a composite value that already reported
its own problems). ``read_section`` walks one YAML mapping against a schema; ``key`` lets a
frozen dataclass carry its keys' readers, so a dataclass field is the whole schema entry.

Rules shared by every file (documented in the README):

- Booleans are YAML 1.2's: ``true``/``false`` (any case) unquoted. YAML 1.1's ``yes``/``no``/``on``/
  ``off``/``y``/``n`` are refused, and so is any quoted value (``"true"`` is a string).
- Durations are Prometheus's: whole numbers with units ``ms s m h d w y``, largest first
  (``1m30s``, ``500ms``); a bare number is refused rather than guessed.
- A key with no value (``key:`` or ``key: null``) means "not set": the default applies.
- No message ever quotes a line of the file: a YAML syntax error names its line and column only,
  and every value registered as secret is scrubbed from all messages as a last guard.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "Context",
    "Invalid",
    "Reader",
    "Report",
    "Reported",
    "Section",
    "boolean",
    "choice",
    "compose",
    "did_you_mean",
    "duration",
    "format_duration",
    "integer",
    "join",
    "key",
    "kind",
    "list_of",
    "model",
    "number",
    "parse_duration",
    "path",
    "read",
    "read_dict",
    "read_section",
    "regex",
    "schema_of",
    "secret_text",
    "text",
]

_T = TypeVar("_T")
Reader = Callable[[Node, str, "Context"], _T]
"""Turns one node (at key path ``path``) into a value, or raises ``Invalid`` / ``Reported``."""

# ---------------------------------------------------------------------------------------------
# Durations: one grammar for every file

_UNITS: Final = {"y": 365 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_UNITS_MS: Final = {**_UNITS, "ms": 0.001}
_UNIT_ORDER: Final = tuple(_UNITS_MS)
_DURATION_PART: Final = re.compile(r"(\d+)(ms|[ywdhms])")
_UNIT_HINT: Final = "units: ms, s, m, h, d, w, y; e.g. 500ms, 15s, 5m, 1h, 1m30s"


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus-style duration (``500ms``, ``15s``, ``1m30s``).

    Units go largest first, each at most once, as in Prometheus. A bare number is refused rather
    than guessed: ``15`` could mean seconds or milliseconds, and the wrong guess polls 1000x too often.

    Raises:
        ValueError: with a hint (``"15" has no unit: write "15s"``).
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
        total += int(match.group(1)) * _UNITS_MS[match.group(2)]
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
        size = round(_UNITS_MS[unit] * 1000)
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Problems


class Invalid(Exception):
    """One problem with the value being read; the caller reports it at that value's line and path."""


class Reported(Exception):
    """A composite value whose problems were already reported; the caller only skips the value."""


class Report:
    """Collects problems, warnings and notes with their lines; scrubs secrets before anyone sees them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._problems: list[tuple[int, str]] = []
        self._warnings: list[tuple[int, str]] = []
        self.notes: list[str] = []
        self.secrets: set[str] = set()

    def problem(self, where: Node | int, path: str, message: str) -> None:
        self._problems.append(self._format(where, path, message))

    def warning(self, where: Node | int, path: str, message: str) -> None:
        self._warnings.append(self._format(where, path, message))

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
    """What every reader needs: where problems go, where relative paths start."""

    report: Report
    base_dir: Path


def compose(text: str, report: Report, *, empty_ok: bool = False) -> Node | None:
    """The root node, or None after reporting a syntax error (or an empty file unless ``empty_ok``)."""
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
    if root is None and not empty_ok:
        report.problem(1, "", "the file is empty (write {} to take every default)")
    return root


# ---------------------------------------------------------------------------------------------
# Node helpers

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
    """What a node is, in words, for "expected X, got Y" (never its content)."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _KINDS.get(node.tag.removeprefix(_STD), f"a value tagged {node.tag}")


def _tag(node: Node) -> str | None:
    """Short standard tag of a scalar (``int``, ``str``...); None for collections and custom tags."""
    if isinstance(node, ScalarNode) and node.tag.startswith(_STD):
        return node.tag.removeprefix(_STD)
    return None


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def did_you_mean(value: str, known: Sequence[str], what: str = "key") -> str:
    """``unknown key (did you mean "x"?)``, or the list of known values when nothing is close."""
    close = difflib.get_close_matches(value, known, n=1)
    if close:
        return f'unknown {what} (did you mean "{close[0]}"?)'
    return f"unknown {what} (known: " + ", ".join(known) + ")"


def read(reader: Reader[_T], node: Node, path: str, ctx: Context) -> tuple[bool, _T | None]:
    """Run a reader, reporting what it raises; ``(False, None)`` when the value is unusable."""
    try:
        return True, reader(node, path, ctx)
    except Invalid as exc:
        ctx.report.problem(node, path, str(exc))
    except Reported:
        pass
    return False, None


# ---------------------------------------------------------------------------------------------
# Mappings


@dataclass(slots=True)
class Section:
    """One YAML mapping read against a schema: the values that read cleanly and where each key was."""

    node: Node
    path: str
    ctx: Context
    values: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    _before: int = 0

    @property
    def ok(self) -> bool:
        """No problem was reported inside this mapping (its keys, values or checks) so far."""
        return self.ctx.report.count() == self._before

    def at(self, key: str | None) -> Node:
        return self.nodes.get(key, self.node) if key else self.node

    def where(self, key: str | None) -> str:
        return join(self.path, key) if key else self.path

    def problem(self, key: str | None, message: str) -> None:
        """A problem at ``key``'s value (or the mapping itself when the key is not written)."""
        self.ctx.report.problem(self.at(key), self.where(key), message)

    def warning(self, key: str | None, message: str) -> None:
        self.ctx.report.warning(self.at(key), self.where(key), message)


def _pairs(node: MappingNode, path: str, ctx: Context) -> list[tuple[str, Node, Node]] | None:
    """``(key, key node, value node)`` after ``<<`` merges; explicit keys override merged ones."""
    own = sum(1 for key, _ in node.value if key.tag != _STD + "merge")
    try:
        SafeConstructor().flatten_mapping(node)
    except ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else node.start_mark.line + 1
        ctx.report.problem(line, path, f"bad merge: {exc.problem}")
        return None
    merged = len(node.value) - own  # the first `merged` pairs came from merges
    out: list[tuple[str, Node, Node]] = []
    lines: dict[str, int] = {}
    for index, (key_node, value) in enumerate(node.value):
        if _tag(key_node) is None:
            ctx.report.problem(key_node, path, f"keys must be strings, got {kind(key_node)}")
            continue
        key = str(key_node.value)
        if index >= merged:
            if key in lines:
                ctx.report.problem(
                    key_node, join(path, key[:60]), f"duplicate key (first set on line {lines[key]})"
                )
                continue
            lines[key] = key_node.start_mark.line + 1
        out.append((key, key_node, value))
    return out


def read_section(node: Node, path: str, ctx: Context, schema: Mapping[str, Reader[Any]]) -> Section:
    """Read a mapping against ``schema``: unknown and duplicate keys are problems, null means unset.

    Raises:
        Invalid: the node is not a mapping.
    """
    if not isinstance(node, MappingNode):
        raise Invalid(f"expected a mapping, got {kind(node)}")
    section = Section(node, path, ctx, _before=ctx.report.count())
    for key, key_node, value in _pairs(node, path, ctx) or ():
        if key not in schema:
            ctx.report.problem(key_node, join(path, key[:60]), did_you_mean(key, tuple(schema)))
            continue
        section.values.pop(key, None)  # a merged value overridden by an explicit key
        section.nodes.pop(key, None)
        if _tag(value) == "null":
            continue
        section.nodes[key] = value
        ok, result = read(schema[key], value, join(path, key), ctx)
        if ok:
            section.values[key] = result
    return section


def read_dict(node: Node, path: str, ctx: Context, value: Callable[[str], Reader[_T]]) -> dict[str, _T]:
    """A mapping with free keys (user names, header names); ``value(key)`` reads each value.

    Raises:
        Invalid: not a mapping. Reported: some entry had a problem.
    """
    if not isinstance(node, MappingNode):
        raise Invalid(f"expected a mapping, got {kind(node)}")
    before = ctx.report.count()
    out: dict[str, _T] = {}
    for key, _, item in _pairs(node, path, ctx) or ():
        ok, result = read(value(key), item, join(path, key), ctx)
        if ok and result is not None:
            out[key] = result
    if ctx.report.count() != before:
        raise Reported
    return out


# ---------------------------------------------------------------------------------------------
# Dataclasses as schemas

_READ = "config.read"


def key(read: Reader[Any]) -> dict[str, Any]:
    """``field(metadata=key(reader))``: the dataclass field is a config key read by ``reader``.

    The field's default is the key's default; a field without one is a required key. A dataclass
    declared this way is its file section's whole schema: adding a key is adding a field.
    """
    return {_READ: read}


def schema_of(cls: type[Any]) -> dict[str, Reader[Any]]:
    """Key -> reader for every field of ``cls`` declared with ``key``, in declaration order."""
    return {f.name: f.metadata[_READ] for f in dataclasses.fields(cls) if _READ in f.metadata}


def model(
    cls: type[_T],
    *,
    check: Callable[[Section], None] | None = None,
    extra: Mapping[str, Reader[Any]] | None = None,
) -> Reader[_T]:
    """A reader that builds ``cls`` from a mapping read against ``schema_of(cls)`` (plus ``extra``).

    ``check`` sees the section after every key was read: it reports cross-key problems and turns
    ``extra`` keys into field values (popping them from ``section.values``).
    """
    schema = {**schema_of(cls), **(extra or {})}
    required = [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if _READ in f.metadata
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]

    def read_model(node: Node, path: str, ctx: Context) -> _T:
        section = read_section(node, path, ctx, schema)
        for name in required:
            if name not in section.nodes:
                section.problem(name, "required")
        if check is not None:
            check(section)
        if not section.ok:
            raise Reported
        return cls(**section.values)

    return read_model


# ---------------------------------------------------------------------------------------------
# Scalar readers (each a Reader, or a function returning one)


def text(node: Node, path: str, ctx: Context) -> str:
    """A scalar as written: ``name: 0123`` is the string "0123", not the integer 83."""
    if _tag(node) not in ("str", "int", "float", "bool", "timestamp"):
        raise Invalid(f"expected a string, got {kind(node)}")
    return str(node.value)


def secret_text(node: Node, path: str, ctx: Context) -> str:
    """Like ``text``, and the value is scrubbed from every message of this file."""
    value = text(node, path, ctx)
    ctx.report.secrets.add(value)
    return value


def integer(*, minimum: int, hint: str = "") -> Reader[int]:
    def read_integer(node: Node, path: str, ctx: Context) -> int:
        if not isinstance(node, ScalarNode) or _tag(node) != "int":
            raise Invalid(f"expected an integer, got {kind(node)}")
        value = int(SafeConstructor().construct_yaml_int(node))
        if value < minimum:
            raise Invalid(f"must be at least {minimum}, got {value}{hint}")
        return value

    return read_integer


def number(node: Node, path: str, ctx: Context) -> float:
    """A finite number greater than 0 (rates)."""
    if not isinstance(node, ScalarNode) or _tag(node) not in ("int", "float"):
        raise Invalid(f"expected a number, got {kind(node)}")
    value = float(SafeConstructor().construct_yaml_float(node))
    if not (value > 0 and math.isfinite(value)):
        raise Invalid(f"must be a finite number greater than 0, got {node.value}")
    return value


_YAML11_BOOLEANS: Final = frozenset({"yes", "no", "on", "off", "y", "n"})


def boolean(node: Node, path: str, ctx: Context) -> bool:
    """YAML 1.2 booleans only: unquoted ``true`` or ``false``; ``yes``, ``on`` and ``"true"`` are refused."""
    if isinstance(node, ScalarNode) and node.style is None and node.value.lower() in ("true", "false"):
        return bool(node.value.lower() == "true")
    if isinstance(node, ScalarNode) and node.style is None and node.value.lower() in _YAML11_BOOLEANS:
        raise Invalid(
            f'expected true or false, got "{node.value}" (YAML 1.1 spellings are not booleans here)'
        )
    raise Invalid(f"expected true or false, got {kind(node)}")


def duration(*, positive: bool, maximum: float | None = None) -> Reader[float]:
    def read_duration(node: Node, path: str, ctx: Context) -> float:
        if _tag(node) not in ("str", "int", "float"):
            raise Invalid(f"expected a duration such as 15s, got {kind(node)}")
        try:
            value = parse_duration(str(node.value))
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        if positive and value <= 0:
            raise Invalid(f'must be greater than 0, got "{node.value}"')
        if maximum is not None and value > maximum:
            raise Invalid(f'must be at most {format_duration(maximum)}, got "{node.value}"')
        return value

    return read_duration


def regex(node: Node, path: str, ctx: Context) -> re.Pattern[str]:
    source = text(node, path, ctx)
    try:
        return re.compile(source)
    except re.error as exc:
        raise Invalid(f"invalid regex {source!r}: {exc.msg} at position {exc.pos}") from None


def path(node: Node, key_path: str, ctx: Context) -> Path:
    """A file path; a relative one resolves against the file's directory (as exporter-toolkit does)."""
    value = text(node, key_path, ctx)
    if not value.strip():
        raise Invalid("is an empty path")
    return ctx.base_dir / value  # an absolute text stays absolute


def choice(options: Sequence[str], what: str = "value") -> Reader[str]:
    """One of ``options`` exactly; anything else is a problem with a "did you mean"."""

    def read_choice(node: Node, path: str, ctx: Context) -> str:
        value = text(node, path, ctx)
        if value not in options:
            raise Invalid(did_you_mean(value, options, f'{what} "{value[:60]}"'))
        return value

    return read_choice


def list_of(item: Reader[_T], *, unique: bool = True) -> Reader[tuple[_T, ...]]:
    """A list read item by item; with ``unique``, a repeated item is a problem naming the first line."""

    def read_list(node: Node, path: str, ctx: Context) -> tuple[_T, ...]:
        if not isinstance(node, SequenceNode):
            raise Invalid(f"expected a list, got {kind(node)}")
        before = ctx.report.count()
        items: list[_T] = []
        first_line: dict[Any, int] = {}
        for index, child in enumerate(node.value):
            child_path = f"{path}[{index}]"
            ok, value = read(item, child, child_path, ctx)
            if not ok:
                continue
            if unique and isinstance(value, str | int):
                if value in first_line:
                    ctx.report.problem(
                        child, child_path, f'duplicate "{value}" (first on line {first_line[value]})'
                    )
                    continue
                first_line[value] = child.start_mark.line + 1
            items.append(value)  # type: ignore[arg-type]
        if ctx.report.count() != before:
            raise Reported
        return tuple(items)

    return read_list
