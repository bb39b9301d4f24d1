"""The exporter's config file -> a frozen ``Config``, or a ``ConfigError`` listing every problem.

Each dataclass below is the schema of its section: a field declared with
``field(metadata=key(reader))`` is a config key with that default, read by that reader (see
``loader``). Cross-key rules live in one ``_check_*`` function per section. ``accounts`` entries
are in ``accounts.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from yaml.nodes import MappingNode, Node, SequenceNode

from exporter.config.accounts import DEFAULT_REGIONS, AccountConfig, read_accounts
from exporter.config.loader import (
    Context,
    Invalid,
    Report,
    Reported,
    Section,
    compose,
    key,
    kind,
    model,
    read,
    read_section,
)
from exporter.config.values import boolean, duration, format_duration, integer, list_of, path, regex, text
from exporter.credentials import (
    ENV_SECRET_KEY,
    ENV_SESSION_TOKEN,
    ENV_TOKEN_TCCLI,
    Credential,
    CredentialSettings,
)

__all__ = [
    "Config",
    "ConfigError",
    "ExpectedStreams",
    "StreamFilter",
    "demo_config",
    "describe_config",
    "load_config",
    "parse_config",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectedStreams:
    """Streams that should be on air (``streams.expected``): exact names and full-match patterns."""

    names: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = ()

    def matches(self, name: str) -> bool:
        """Full matches only, like ``streams.include``."""
        return name in self.names or any(p.fullmatch(name) is not None for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.names or self.patterns)


def _expected_entry(node: Node, path: str, ctx: Context) -> str | re.Pattern[str]:
    """An exact name, or ``{regex: ...}``."""
    if isinstance(node, MappingNode):
        section = read_section(node, path, ctx, {"regex": regex})
        if "regex" not in section.nodes:
            section.problem("regex", "required (an entry is a stream name or {regex: ...})")
        if not section.ok:
            raise Reported
        pattern: re.Pattern[str] = section.values["regex"]
        return pattern
    if isinstance(node, SequenceNode):
        raise Invalid(f"expected a stream name or {{regex: ...}}, got {kind(node)}")
    name = text(node, path, ctx)
    if not name:
        raise Invalid("is an empty stream name")
    return name


def _expected(node: Node, path: str, ctx: Context) -> ExpectedStreams:
    entries = list_of(_expected_entry)(node, path, ctx)
    return ExpectedStreams(
        names=frozenset(e for e in entries if isinstance(e, str)),
        patterns=tuple(e for e in entries if not isinstance(e, str)),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamFilter:
    """Which StreamNames exist for us at all; patterns are compiled once, at load."""

    include: re.Pattern[str] = field(default_factory=lambda: re.compile(".*"), metadata=key(regex))
    exclude: re.Pattern[str] | None = field(default=None, metadata=key(regex))
    per_stream_metrics: bool = field(default=True, metadata=key(boolean))
    max_per_region: int = field(
        default=20000, metadata=key(integer(minimum=1, hint=" (per_stream_metrics: false turns series off)"))
    )
    expected: ExpectedStreams = field(default_factory=ExpectedStreams, metadata=key(_expected))

    def admits(self, name: str) -> bool:
        """Full matches only: Prometheus regexes are anchored, and ``live`` must not admit ``live2``."""
        if self.include.fullmatch(name) is None:
            return False
        return self.exclude is None or self.exclude.fullmatch(name) is None


def _check_streams(section: Section) -> None:
    values = section.values
    if "include" in values and values["include"].pattern == "":
        section.problem("include", 'is empty, which admits no stream (".*" admits all)')
    if "exclude" in values and values["exclude"].pattern == "":
        values["exclude"] = None  # "" excludes nothing
    if not section.ok:
        return
    streams = StreamFilter(**values)
    for name in sorted(streams.expected.names):
        if not streams.admits(name):
            section.problem(
                "expected", f'"{name}" is excluded by streams.include/exclude: it could never be seen'
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole validated configuration; ``warnings`` are legal-but-suspicious settings to log."""

    poll_interval: float = field(default=15.0, metadata=key(duration(positive=True)))
    request_timeout: float = field(default=5.0, metadata=key(duration(positive=True)))
    drop_confirmations: int = field(default=2, metadata=key(integer(minimum=1)))
    # By-name queries per region per cycle to confirm a vanished stream at once (0: full lists only).
    drop_confirm_queries: int = field(default=20, metadata=key(integer(minimum=0)))
    stream_retention: float = field(default=3600.0, metadata=key(duration(positive=False)))
    state_file: Path | None = field(default=None, metadata=key(path))
    streams: StreamFilter = field(
        default_factory=StreamFilter, metadata=key(model(StreamFilter, check=_check_streams))
    )
    accounts: tuple[AccountConfig, ...] = field(default=(), metadata=key(read_accounts))
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)


def _check_config(section: Section) -> None:
    values = section.values
    if "accounts" not in section.nodes:
        # No accounts key: one account "default", credentials found at startup as the SDKs find them.
        values["accounts"] = (AccountConfig(name="default"),)
    defaults = Config()
    # None: written but invalid (already reported), so nothing to compare against.
    poll = values.get("poll_interval") if "poll_interval" in section.nodes else defaults.poll_interval
    timeout = (
        values.get("request_timeout") if "request_timeout" in section.nodes else defaults.request_timeout
    )
    if poll is not None and timeout is not None:
        _check_timeout(section, poll, timeout)
    accounts_node = section.nodes.get("accounts")
    expected = values.get("streams", defaults.streams).expected.names
    for index, account in enumerate(values.get("accounts", ())):
        where = accounts_node.value[index] if isinstance(accounts_node, SequenceNode) else section.node
        _check_budget(section.ctx, account, where, f"accounts[{index}]", poll or defaults.poll_interval)
        unwatched = sorted(expected - set(account.stream_names)) if account.stream_names else []
        if unwatched:
            names_node = next((v for k, v in where.value if k.value == "stream_names"), where)
            section.ctx.report.warning(
                names_node,
                f"accounts[{index}].stream_names",
                "expected streams not in this watch list are never queried and stay offline here: "
                + ", ".join(unwatched[:5])
                + (f" and {len(unwatched) - 5} more" if len(unwatched) > 5 else ""),
            )


def _check_timeout(section: Section, poll: float, timeout: float) -> None:
    """A timeout longer than the interval lets one slow reply push back every later poll."""
    nodes = section.nodes
    at = nodes.get("request_timeout") or nodes.get("poll_interval") or section.node
    what = "request_timeout" if "request_timeout" in nodes else "the default request_timeout"
    compared = f"{what} {format_duration(timeout)} vs poll_interval {format_duration(poll)}"
    if timeout > poll:
        section.ctx.report.problem(at, "request_timeout", f"must not exceed poll_interval ({compared})")
    elif timeout == poll:
        message = f"equals poll_interval ({compared}); a slow reply delays the next poll"
        section.ctx.report.warning(at, "request_timeout", message)


def _check_budget(ctx: Context, account: AccountConfig, node: Node, path: str, poll: float) -> None:
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


_read_config = model(Config, check=_check_config)


class ConfigError(Exception):
    """Every problem in a config file, each ``file:line: key.path: message``; never a secret."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


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
        text_ = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not valid UTF-8 (byte offset {exc.start})"]) from None
    return parse_config(text_, source=str(path), base_dir=path.parent, env=env)


def parse_config(text: str, *, source: str, base_dir: Path, env: Mapping[str, str] = os.environ) -> Config:
    """Validate config text; ``source`` prefixes messages, ``base_dir`` anchors relative paths.

    The environment is not read for credentials (that happens at startup, per account); its
    secret values are only scrubbed from messages, in case one was pasted into the file.

    Raises:
        ConfigError: with all problems found, sorted by line.
    """
    report = Report(source)
    report.secrets.update(
        v for k in (ENV_SECRET_KEY, ENV_SESSION_TOKEN, ENV_TOKEN_TCCLI) if (v := env.get(k))
    )
    root = compose(text, report)
    config = None
    if root is not None:
        _, config = read(_read_config, root, "", Context(report, base_dir))
    if config is None or report.count():
        raise ConfigError(report.problems())
    return replace(config, warnings=report.warnings())


def demo_config(endpoint: str, credential: Credential) -> Config:
    """The ``--demo`` config: short intervals so metrics move within a minute of starting."""
    settings = CredentialSettings(
        source="static",
        secret_id=credential.secret_id,
        secret_key=credential.secret_key,
        session_token=credential.token,
    )
    account = AccountConfig(name="demo", credentials=settings, regions=DEFAULT_REGIONS, endpoint=endpoint)
    return Config(poll_interval=5.0, request_timeout=2.0, stream_retention=600.0, accounts=(account,))


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
