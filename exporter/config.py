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
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from yaml.nodes import Node, ScalarNode, SequenceNode

from exporter._yamlcheck import Context as _Context
from exporter._yamlcheck import Report as _Report
from exporter._yamlcheck import compose as _compose
from exporter._yamlcheck import format_duration, parse_duration
from exporter._yamlcheck import get_field as _get
from exporter._yamlcheck import join as _join
from exporter._yamlcheck import kind as _kind
from exporter._yamlcheck import mapping_fields as _fields
from exporter._yamlcheck import read_boolean as _boolean
from exporter._yamlcheck import read_duration as _duration
from exporter._yamlcheck import read_integer as _integer
from exporter._yamlcheck import read_path as _path
from exporter._yamlcheck import read_positive_number as _positive_number
from exporter._yamlcheck import read_regex as _regex
from exporter._yamlcheck import read_text as _text
from exporter._yamlcheck import read_text_list as _text_list
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
        raise ConfigError(report.problems())
    return _with_warnings(config, report)


# ---------------------------------------------------------------------------------------------
# The schema: top level, streams, accounts

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
