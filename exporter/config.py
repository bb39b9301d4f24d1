"""YAML configuration -> a frozen ``Config``, or a ``ConfigError`` listing every problem at once.

Why compose nodes instead of ``yaml.safe_load``: a loaded dict has forgotten where each value was
written, and an operator running ``--check-config`` wants ``config.yml:12: accounts[0].regions[1]:
unknown region "ap-mars"``, for every mistake in one run, not the first one per edit cycle. Walking
``yaml.compose`` nodes keeps each value's line, lets us refuse unknown and duplicate keys (as
blackbox_exporter's ``KnownFields(true)`` does) and never constructs arbitrary YAML tags.

Secrets: no message quotes a scalar of a secret key, and as a last guard every secret value seen
(config, files, environment) is scrubbed from the final messages.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, TypeVar
from urllib.parse import urlsplit

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from exporter.credentials import (
    ENV_SECRET_KEY,
    ENV_SESSION_TOKEN,
    ENV_TOKEN_TCCLI,
    Credential,
    CredentialError,
    CredentialSettings,
    Secret,
    credential_from_env,
    resolve_credential,
)

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_REGIONS",
    "KNOWN_REGIONS",
    "AccountConfig",
    "Config",
    "ConfigError",
    "StreamFilter",
    "demo_config",
    "describe_config",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
]

DEFAULT_REGIONS: Final[tuple[str, ...]] = (
    "ap-bangkok",
    "ap-beijing",
    "ap-guangzhou",
    "ap-hongkong",
    "ap-shanghai",
)
# The vendor page also lists these two; accepted when configured, never polled by default (SPEC 2).
KNOWN_REGIONS: Final[tuple[str, ...]] = (*DEFAULT_REGIONS, "ap-seoul", "ap-tokyo")
DEFAULT_ENDPOINT: Final = "https://live.tencentcloudapi.com"

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


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamFilter:
    """Which StreamNames exist for us at all; patterns are compiled once, at load."""

    include: re.Pattern[str] = field(default_factory=lambda: re.compile(".*"))
    exclude: re.Pattern[str] | None = None
    per_stream_metrics: bool = True
    max_per_region: int = 20000

    def admits(self, name: str) -> bool:
        """Full matches only: Prometheus regexes are anchored, and ``live`` must not admit ``live2``."""
        if self.include.fullmatch(name) is None:
            return False
        return self.exclude is None or self.exclude.fullmatch(name) is None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountConfig:
    """One Tencent Cloud (sub-)account: its label, credential, regions and API budget."""

    name: str
    credential: Credential
    regions: tuple[str, ...] = DEFAULT_REGIONS
    rate_limit: float = 20.0
    endpoint: str = DEFAULT_ENDPOINT
    stream_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole validated configuration; ``warnings`` are legal-but-suspicious settings to log."""

    poll_interval: float = 15.0
    request_timeout: float = 5.0
    drop_confirmations: int = 2
    stream_retention: float = 3600.0
    state_file: Path | None = None
    streams: StreamFilter = field(default_factory=StreamFilter)
    accounts: tuple[AccountConfig, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)


class ConfigError(Exception):
    """Every problem in a config file, each ``file:line: key.path: message``; never a secret."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def demo_config(endpoint: str, credential: Credential) -> Config:
    """The ``--demo`` config: short intervals so metrics move within a minute of starting."""
    account = AccountConfig(name="demo", credential=credential, regions=DEFAULT_REGIONS, endpoint=endpoint)
    return Config(
        poll_interval=5.0,
        request_timeout=2.0,
        drop_confirmations=2,
        stream_retention=600.0,
        accounts=(account,),
    )


def describe_config(config: Config) -> str:
    """One line for ``--check-config`` and the startup log: what will be polled, how often; no secret."""
    accounts = "; ".join(
        f"{a.name}: {len(a.regions)} region{'s' if len(a.regions) != 1 else ''}"
        + (f", {len(a.stream_names)} watched streams" if a.stream_names else "")
        + f", {a.rate_limit:g} req/s"
        for a in config.accounts
    )
    return (
        f"{len(config.accounts)} account{'s' if len(config.accounts) != 1 else ''} ({accounts}); "
        f"poll_interval {format_duration(config.poll_interval)}, "
        f"request_timeout {format_duration(config.request_timeout)}, "
        f"drop_confirmations {config.drop_confirmations}, "
        f"stream_retention {format_duration(config.stream_retention)}"
    )


def load_config(path: Path, *, env: Mapping[str, str] = os.environ) -> Config:
    """Read and validate a config file; relative ``*_file`` paths resolve against its directory.

    Raises:
        ConfigError: unreadable file, or every problem found in it.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [f"{path}: cannot read config file: {exc.strerror or type(exc).__name__}"]
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not valid UTF-8 (byte offset {exc.start})"]) from None
    return parse_config(text, source=str(path), base_dir=path.parent, env=env)


def parse_config(text: str, *, source: str, base_dir: Path, env: Mapping[str, str] = os.environ) -> Config:
    """Validate config text; ``source`` prefixes messages, ``base_dir`` anchors relative paths.

    Raises:
        ConfigError: with all problems found, sorted by line.
    """
    report = _Report(source)
    report.secrets.update(
        v for k in (ENV_SECRET_KEY, ENV_SESSION_TOKEN, ENV_TOKEN_TCCLI) if (v := env.get(k))
    )
    root = _compose(text, report)
    config = _config(root, _Context(report, base_dir, env)) if root is not None else None
    if config is None or report.has_problems():
        raise report.error()
    return _with_warnings(config, report)


# ---------------------------------------------------------------------------------------------
# Problem collection


class _Report:
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

    def error(self) -> ConfigError:
        return ConfigError(self._finish(self._problems))

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
class _Context:
    report: _Report
    base_dir: Path
    env: Mapping[str, str]


def _compose(text: str, report: _Report) -> Node | None:
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


def _kind(node: Node) -> str:
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


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fields(node: Node, path: str, known: Sequence[str], ctx: _Context) -> dict[str, Node] | None:
    """Key -> value node of a mapping; unknown and duplicate keys are problems, null means unset."""
    r = ctx.report
    if not isinstance(node, MappingNode):
        r.problem(node, path, f"expected a mapping, got {_kind(node)}")
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
        if _tag(key_node) is None:
            r.problem(key_node, path, f"keys must be strings, got {_kind(key_node)}")
            continue
        key = str(key_node.value)
        if key not in known:
            r.problem(key_node, _join(path, key[:60]), _unknown_key(key, known))
            continue
        if index >= merged:
            if key in lines:
                r.problem(key_node, _join(path, key), f"duplicate key (first set on line {lines[key]})")
                continue
            lines[key] = key_node.start_mark.line + 1
        fields.pop(key, None)
        if _tag(value) != "null":
            fields[key] = value
    return fields


def _unknown_key(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f'unknown key (did you mean "{close[0]}"?)'
    return "unknown key (known: " + ", ".join(known) + ")"


def _text(node: Node, path: str, ctx: _Context, *, secret: bool = False) -> str | None:
    """A scalar as written: ``name: 0123`` is the string "0123", not the integer 83."""
    if _tag(node) not in ("str", "int", "float", "bool", "timestamp"):
        r = ctx.report
        r.problem(node, path, f"expected a string, got {_kind(node)}")
        return None
    value = str(node.value)
    if secret:
        ctx.report.secrets.add(value)
    return value


def _integer(node: Node, path: str, ctx: _Context, *, minimum: int, hint: str = "") -> int | None:
    if not isinstance(node, ScalarNode) or _tag(node) != "int":
        ctx.report.problem(node, path, f"expected an integer, got {_kind(node)}")
        return None
    value = int(SafeConstructor().construct_yaml_int(node))
    if value < minimum:
        ctx.report.problem(node, path, f"must be at least {minimum}, got {value}{hint}")
        return None
    return value


def _positive_number(node: Node, path: str, ctx: _Context) -> float | None:
    if not isinstance(node, ScalarNode) or _tag(node) not in ("int", "float"):
        ctx.report.problem(node, path, f"expected a number, got {_kind(node)}")
        return None
    value = float(SafeConstructor().construct_yaml_float(node))
    if not (value > 0 and math.isfinite(value)):
        ctx.report.problem(node, path, f"must be a finite number greater than 0, got {node.value}")
        return None
    return value


def _boolean(node: Node, path: str, ctx: _Context) -> bool | None:
    if not isinstance(node, ScalarNode) or _tag(node) != "bool":
        ctx.report.problem(node, path, f"expected true or false, got {_kind(node)}")
        return None
    return bool(SafeConstructor().construct_yaml_bool(node))


def _duration(node: Node, path: str, ctx: _Context, *, positive: bool) -> float | None:
    if _tag(node) not in ("str", "int", "float"):
        ctx.report.problem(node, path, f"expected a duration such as 15s, got {_kind(node)}")
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


def _regex(node: Node, path: str, ctx: _Context) -> re.Pattern[str] | None:
    source = _text(node, path, ctx)
    if source is None:
        return None
    try:
        return re.compile(source)
    except re.error as exc:
        ctx.report.problem(node, path, f"invalid regex {source!r}: {exc.msg} at position {exc.pos}")
        return None


def _text_list(
    node: Node, path: str, ctx: _Context, check: Callable[[str, Node, str], bool]
) -> list[str] | None:
    """A list of distinct strings, each passed through ``check`` (which reports its own problems)."""
    r = ctx.report
    if not isinstance(node, SequenceNode):
        r.problem(node, path, f"expected a list, got {_kind(node)}")
        return None
    before = r.count()
    items: list[str] = []
    first_line: dict[str, int] = {}
    for index, item in enumerate(node.value):
        item_path = f"{path}[{index}]"
        value = _text(item, item_path, ctx)
        if value is None or not check(value, item, item_path):
            continue
        if value in first_line:
            r.problem(item, item_path, f'duplicate "{value}" (first on line {first_line[value]})')
            continue
        first_line[value] = item.start_mark.line + 1
        items.append(value)
    return items if r.count() == before else None


# ---------------------------------------------------------------------------------------------
# The schema: top level, streams, accounts

_T = TypeVar("_T")
_TOP_KEYS: Final = (
    "poll_interval",
    "request_timeout",
    "drop_confirmations",
    "stream_retention",
    "state_file",
    "streams",
    "accounts",
)
_STREAM_KEYS: Final = ("include", "exclude", "per_stream_metrics", "max_per_region")
_ACCOUNT_KEYS: Final = (
    "name",
    "secret_id",
    "secret_key",
    "secret_key_file",
    "session_token",
    "session_token_file",
    "regions",
    "rate_limit",
    "endpoint",
    "stream_names",
)
_NO_NAMES: Final[tuple[str, ...]] = ()
_Reader = Callable[[Node, str], "_T | None"]


def _get(fields: Mapping[str, Node], key: str, path: str, read: _Reader[_T], default: _T) -> _T | None:
    node = fields.get(key)
    return default if node is None else read(node, _join(path, key))


def _config(root: Node, ctx: _Context) -> Config | None:
    f = _fields(root, "", _TOP_KEYS, ctx)
    if f is None:
        return None
    d = Config()
    poll = _get(f, "poll_interval", "", lambda n, p: _duration(n, p, ctx, positive=True), d.poll_interval)
    timeout = _get(
        f, "request_timeout", "", lambda n, p: _duration(n, p, ctx, positive=True), d.request_timeout
    )
    confirmations = _get(
        f, "drop_confirmations", "", lambda n, p: _integer(n, p, ctx, minimum=1), d.drop_confirmations
    )
    retention = _get(
        f, "stream_retention", "", lambda n, p: _duration(n, p, ctx, positive=False), d.stream_retention
    )
    state_file = _get(f, "state_file", "", lambda n, p: _path(n, p, ctx), None)
    streams = _streams(f.get("streams"), ctx)
    if poll is not None and timeout is not None:
        _check_timeout(f, root, poll, timeout, ctx)
    accounts = _accounts(root, f.get("accounts"), ctx, poll or d.poll_interval)
    if (
        ctx.report.has_problems()
        or poll is None
        or timeout is None
        or confirmations is None
        or retention is None
        or streams is None
        or accounts is None
    ):
        return None
    return Config(
        poll_interval=poll,
        request_timeout=timeout,
        drop_confirmations=confirmations,
        stream_retention=retention,
        state_file=state_file,
        streams=streams,
        accounts=accounts,
    )


def _check_timeout(f: Mapping[str, Node], root: Node, poll: float, timeout: float, ctx: _Context) -> None:
    """A timeout longer than the interval lets one slow reply push back every later poll."""
    node = f.get("request_timeout") or f.get("poll_interval") or root
    what = "request_timeout" if "request_timeout" in f else "the default request_timeout"
    compared = f"{what} {format_duration(timeout)} vs poll_interval {format_duration(poll)}"
    if timeout > poll:
        ctx.report.problem(node, "request_timeout", f"must not exceed poll_interval ({compared})")
    elif timeout == poll:
        ctx.report.warning(
            node, "request_timeout", f"equals poll_interval ({compared}); a slow reply delays the next poll"
        )


def _path(node: Node, path: str, ctx: _Context) -> Path | None:
    text = _text(node, path, ctx)
    if text is None:
        return None
    if not text.strip():
        ctx.report.problem(node, path, "is an empty path")
        return None
    return ctx.base_dir / text  # an absolute text stays absolute


def _streams(node: Node | None, ctx: _Context) -> StreamFilter | None:
    d = StreamFilter()
    if node is None:
        return d
    f = _fields(node, "streams", _STREAM_KEYS, ctx)
    if f is None:
        return None
    include = _get(f, "include", "streams", lambda n, p: _regex(n, p, ctx), d.include)
    if include is not None and include.pattern == "":
        ctx.report.problem(
            f["include"], "streams.include", 'is empty, which admits no stream (".*" admits all)'
        )
        include = None
    exclude = _get(f, "exclude", "streams", lambda n, p: _regex(n, p, ctx), d.exclude)
    per_stream = _get(
        f, "per_stream_metrics", "streams", lambda n, p: _boolean(n, p, ctx), d.per_stream_metrics
    )
    cap = _get(
        f,
        "max_per_region",
        "streams",
        lambda n, p: _integer(n, p, ctx, minimum=1, hint=" (per_stream_metrics: false turns series off)"),
        d.max_per_region,
    )
    if include is None or per_stream is None or cap is None or ("exclude" in f and exclude is None):
        return None
    return StreamFilter(
        include=include,
        exclude=exclude if exclude is not None and exclude.pattern else None,
        per_stream_metrics=per_stream,
        max_per_region=cap,
    )


def _accounts(root: Node, node: Node | None, ctx: _Context, poll: float) -> tuple[AccountConfig, ...] | None:
    r = ctx.report
    if node is None:
        return _default_account(root, ctx)
    if not isinstance(node, SequenceNode):
        r.problem(node, "accounts", f"expected a list, got {_kind(node)}")
        return None
    if not node.value:
        r.problem(
            node, "accounts", "is empty; list at least one account, or omit accounts to use the environment"
        )
        return None
    names: dict[str, int] = {}
    accounts = [_account(item, f"accounts[{i}]", ctx, poll, names) for i, item in enumerate(node.value)]
    if any(a is None for a in accounts):
        return None
    return tuple(a for a in accounts if a is not None)


def _default_account(root: Node, ctx: _Context) -> tuple[AccountConfig, ...] | None:
    """No ``accounts`` key: one account "default", credentials as the official SDKs find them."""
    try:
        credential = credential_from_env(ctx.env)
    except CredentialError as exc:
        for p in exc.problems:
            ctx.report.problem(
                root, "accounts", f'not set, so account "default" uses the environment: {p.message}'
            )
        return None
    return (AccountConfig(name="default", credential=credential),)


def _account(
    node: Node, path: str, ctx: _Context, poll: float, names: dict[str, int]
) -> AccountConfig | None:
    r = ctx.report
    before = r.count()
    f = _fields(node, path, _ACCOUNT_KEYS, ctx)
    if f is None:
        return None
    # A misspelt key (secret_kye) already says what is wrong; "no SecretKey" on top would be noise.
    keys_ok = r.count() == before
    r.secrets.update(
        str(f[k].value) for k in ("secret_key", "session_token") if isinstance(f.get(k), ScalarNode)
    )
    name = _account_name(f, node, path, ctx, names)
    regions = _get(f, "regions", path, lambda n, p: _regions(n, p, ctx), DEFAULT_REGIONS)
    rate = _get(f, "rate_limit", path, lambda n, p: _positive_number(n, p, ctx), 20.0)
    endpoint = _get(f, "endpoint", path, lambda n, p: _endpoint(n, p, ctx), DEFAULT_ENDPOINT)
    watched = _get(f, "stream_names", path, lambda n, p: _stream_names(n, p, ctx), _NO_NAMES)
    credential = _credential(f, node, path, ctx) if keys_ok else None
    if r.count() != before or None in (name, regions, rate, endpoint, watched, credential):
        return None
    assert name is not None and regions is not None and rate is not None  # for mypy; checked above
    assert endpoint is not None and watched is not None and credential is not None
    account = AccountConfig(
        name=name,
        credential=credential,
        regions=regions,
        rate_limit=rate,
        endpoint=endpoint,
        stream_names=watched,
    )
    _check_budget(account, node, path, poll, ctx)
    return account


def _account_name(
    f: Mapping[str, Node], node: Node, path: str, ctx: _Context, names: dict[str, int]
) -> str | None:
    name_node = f.get("name")
    if name_node is None:
        ctx.report.problem(node, _join(path, "name"), "required (it becomes the account label)")
        return None
    name = _text(name_node, _join(path, "name"), ctx)
    if name is None:
        return None
    line = name_node.start_mark.line + 1
    if not name.strip():
        ctx.report.problem(name_node, _join(path, "name"), "must not be empty")
        return None
    if name in names:
        ctx.report.problem(
            name_node, _join(path, "name"), f'duplicate account name "{name}" (first on line {names[name]})'
        )
        return None
    names[name] = line
    return name


def _regions(node: Node, path: str, ctx: _Context) -> tuple[str, ...] | None:
    def known(value: str, item: Node, item_path: str) -> bool:
        if value in KNOWN_REGIONS:
            return True
        close = difflib.get_close_matches(value.lower(), KNOWN_REGIONS, n=1)
        hint = f'did you mean "{close[0]}"? ' if close else ""
        ctx.report.problem(
            item, item_path, f'unknown region "{value}" ({hint}known: {", ".join(KNOWN_REGIONS)})'
        )
        return False

    regions = _text_list(node, path, ctx, known)
    if regions is not None and not regions:
        ctx.report.problem(node, path, "is empty; list at least one region, or omit it for the default five")
        return None
    return tuple(regions) if regions is not None else None


def _stream_names(node: Node, path: str, ctx: _Context) -> tuple[str, ...] | None:
    def non_empty(value: str, item: Node, item_path: str) -> bool:
        if value:
            return True
        ctx.report.problem(item, item_path, "is an empty stream name")
        return False

    names = _text_list(node, path, ctx, non_empty)
    return tuple(names) if names is not None else None


def _endpoint(node: Node, path: str, ctx: _Context) -> str | None:
    text = _text(node, path, ctx)
    if text is None:
        return None
    problem = _endpoint_problem(text)
    if problem is not None:
        ctx.report.problem(node, path, problem)
        return None
    return text.rstrip("/")


def _endpoint_problem(text: str) -> str | None:
    parts = urlsplit(text)
    shown = "" if "@" in text else f' (got "{text}")'  # user:password@ would be a credential
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL such as {DEFAULT_ENDPOINT}{shown}"
    if parts.username is not None or parts.password is not None:
        return "must not contain user:password; credentials belong in secret_id and secret_key"
    try:
        parts.port  # noqa: B018  (property raises on a bad port)
    except ValueError:
        return f"has an invalid port{shown}"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"must be scheme://host[:port] only: the API is served at /{shown}"
    return None


def _credential(f: Mapping[str, Node], node: Node, path: str, ctx: _Context) -> Credential | None:
    r = ctx.report
    before = r.count()

    def text(n: Node, p: str) -> str | None:
        return _text(n, p, ctx)

    def secret(n: Node, p: str) -> Secret | None:
        value = _text(n, p, ctx, secret=True)
        return Secret(value) if value is not None else None

    def file(n: Node, p: str) -> Path | None:
        return _path(n, p, ctx)

    settings = CredentialSettings(
        secret_id=_get(f, "secret_id", path, text, None),
        secret_key=_get(f, "secret_key", path, secret, None),
        secret_key_file=_get(f, "secret_key_file", path, file, None),
        session_token=_get(f, "session_token", path, secret, None),
        session_token_file=_get(f, "session_token_file", path, file, None),
    )
    if r.count() != before:
        return None  # a mistyped key would otherwise also read as "missing"
    try:
        credential = resolve_credential(settings, ctx.env)
    except CredentialError as exc:
        for p in exc.problems:
            where = f.get(p.key, node) if p.key else node
            r.problem(where, _join(path, p.key) if p.key else path, p.message)
        return None
    r.secrets.update(credential.secret_values())
    return credential


def _check_budget(account: AccountConfig, node: Node, path: str, poll: float, ctx: _Context) -> None:
    """Warn when the schedule cannot fit the budget: the scheduler will stretch it (SPEC section 8)."""
    per_cycle = len(account.regions) * max(1, len(account.stream_names))
    needed = per_cycle / poll
    if needed > account.rate_limit:
        cycle = format_duration(per_cycle / account.rate_limit)
        ctx.report.warning(
            node,
            path,
            f"{per_cycle} requests every {format_duration(poll)} need {needed:.1f}/s, above rate_limit "
            f"{account.rate_limit:g}; each poll cycle will stretch to about {cycle}",
        )


def _with_warnings(config: Config, report: _Report) -> Config:
    return replace(config, warnings=report.warnings())
