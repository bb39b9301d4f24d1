"""Readers of single values, shared by every config file: text, numbers, booleans, durations...

One rule per kind of value, for every file (documented in the README):

- Booleans are YAML 1.2's: ``true``/``false`` (any case) unquoted. YAML 1.1's ``yes``/``no``/``on``/
  ``off``/``y``/``n`` are refused, and so is any quoted value (``"true"`` is a string): a quoted
  "yes" meaning true in one file and an error in another was how the two old readers disagreed.
- Durations are Prometheus's: whole numbers with units ``ms s m h d w y``, largest first
  (``1m30s``, ``500ms``); a bare number is refused rather than guessed.
- Text is the scalar as written: ``name: 0123`` is the string "0123", not the integer 83.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from yaml.constructor import SafeConstructor
from yaml.nodes import Node, ScalarNode, SequenceNode

from exporter.config.loader import Context, Invalid, Reader, Reported, did_you_mean, kind, read, tag

__all__ = [
    "boolean",
    "choice",
    "duration",
    "format_duration",
    "integer",
    "list_of",
    "number",
    "parse_duration",
    "path",
    "regex",
    "secret_text",
    "text",
]

_T = TypeVar("_T")

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
# Scalar readers (each a Reader, or a function returning one)


def text(node: Node, path: str, ctx: Context) -> str:
    """A scalar as written: ``name: 0123`` is the string "0123", not the integer 83."""
    if tag(node) not in ("str", "int", "float", "bool", "timestamp"):
        raise Invalid(f"expected a string, got {kind(node)}")
    return str(node.value)


def secret_text(node: Node, path: str, ctx: Context) -> str:
    """Like ``text``, and the value is scrubbed from every message of this file."""
    value = text(node, path, ctx)
    ctx.report.secrets.add(value)
    return value


def integer(*, minimum: int, hint: str = "") -> Reader[int]:
    def read_integer(node: Node, path: str, ctx: Context) -> int:
        if not isinstance(node, ScalarNode) or tag(node) != "int":
            raise Invalid(f"expected an integer, got {kind(node)}")
        value = int(SafeConstructor().construct_yaml_int(node))
        if value < minimum:
            raise Invalid(f"must be at least {minimum}, got {value}{hint}")
        return value

    return read_integer


def number(node: Node, path: str, ctx: Context) -> float:
    """A finite number greater than 0 (rates)."""
    if not isinstance(node, ScalarNode) or tag(node) not in ("int", "float"):
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
        if tag(node) not in ("str", "int", "float"):
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
