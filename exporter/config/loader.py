"""The one YAML reader for every file the exporter reads: composed nodes in, typed values out.

Why compose nodes instead of ``yaml.safe_load``: a loaded dict has forgotten where each value was
written, and an operator running ``--check-config`` wants ``config.yml:12: accounts[0].regions[1]:
malformed region "ap mars"``, for every mistake in one run, not the first one per edit cycle.
Walking ``yaml.compose`` nodes keeps each value's line, lets us refuse unknown and duplicate keys
(as blackbox_exporter's ``KnownFields(true)`` does) and never constructs arbitrary YAML tags.

A schema is a mapping ``key -> Reader``; a reader turns one node into one typed value or raises
``Invalid`` (one problem at that node) or ``Reported`` (a composite value that already reported
its own problems). ``read_section`` walks one YAML mapping against a schema; ``key``
(``field(metadata=key(reader))``) lets a frozen dataclass carry its keys' readers, so a dataclass
field is the whole schema entry of its key, and ``model`` reads such a dataclass. The readers of
single values (and the rules for booleans and durations) are in ``values``.

Rules shared by every file: a key with no value (``key:`` or ``key: null``) means "not set" and
the default applies; no message ever quotes a line of the file (a YAML syntax error names its
line and column only), and every value registered as secret is scrubbed from all messages as a
last guard.
"""

from __future__ import annotations

import dataclasses
import difflib
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
    "compose",
    "did_you_mean",
    "join",
    "key",
    "kind",
    "model",
    "read",
    "read_dict",
    "read_section",
    "schema_of",
    "tag",
]

_T = TypeVar("_T")
Reader = Callable[[Node, str, "Context"], _T]
"""Turns one node (at key path ``path``) into a value, or raises ``Invalid`` / ``Reported``."""

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


def tag(node: Node) -> str | None:
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
        if tag(key_node) is None:
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
        if tag(value) == "null":
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
