"""``--web.config.file``: the exporter-toolkit web configuration, parsed strictly.

The format is the one every Prometheus exporter shares (exporter-toolkit
``docs/web-configuration.md``), so an operator can reuse the file they already have for
node_exporter. Like exporter-toolkit (``getConfig``, ``Validate``, ``validateUsers``) the
whole file is checked before anything listens: unknown keys, bad bcrypt hashes, unreadable
certificates and keys all fail at load, every problem with its file and line.

Differences forced by Python's ``ssl`` module (each also listed in ``WebConfig.notes`` so
startup can log it):

- ``cipher_suites`` and ``curve_preferences`` are validated as names and then ignored:
  Go's suite and curve identifiers have no reliable OpenSSL spelling; OpenSSL's defaults
  are used (TLS 1.3 suites are not configurable in Go either).
- ``RequestClientCert`` never asks for a certificate: Go requests one and then ignores it,
  which authenticates nothing, so the visible behaviour is the same.
- ``RequireAnyClientCert`` (alias ``RequireClientCert``) needs a client CA here and then
  behaves as ``RequireAndVerifyClientCert``: Python cannot accept an unverified certificate.
- ``http2`` is accepted and ignored: the server speaks HTTP/1.1 only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .tls import CLIENT_AUTH_TYPES, TLS_VERSIONS, TLSSettings, build_tls_settings

__all__ = [
    "CLIENT_AUTH_TYPES",
    "TLS_VERSIONS",
    "RateLimit",
    "TLSSettings",
    "WebConfig",
    "WebConfigError",
    "load_web_config",
    "parse_go_duration",
    "parse_web_config",
]

# exporter-toolkit's extraHTTPHeaders: only these, and for two of them only these values.
_HEADERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "Strict-Transport-Security": (),
        "X-Content-Type-Options": ("nosniff",),
        "X-Frame-Options": ("deny", "sameorigin"),
        "X-XSS-Protection": (),
        "Content-Security-Policy": (),
    }
)
_TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
_HTTP_KEYS = ("http2", "headers")
_RATE_KEYS = ("interval", "burst")
_BCRYPT = re.compile(r"\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TRUE = frozenset({"true", "yes", "on", "y"})
_FALSE = frozenset({"false", "no", "off", "n"})


class WebConfigError(Exception):
    """The web config cannot be used; ``problems`` holds one ``file:line: key: why`` per issue."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """exporter-toolkit ``rate_limit``: one request per ``interval`` seconds, bursts of ``burst``."""

    interval: float
    burst: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WebConfig:
    """A fully validated web config; ``WebConfig()`` is plain HTTP without auth."""

    source: str = ""
    tls: TLSSettings | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # username -> bcrypt hash. Hashes are not passwords, but they are brute-force material.
    users: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    rate_limit: RateLimit | None = None
    http2: bool = True
    notes: tuple[str, ...] = ()


def load_web_config(path: Path) -> WebConfig:
    """Read, parse and fully validate a web config file, loading its certificates.

    Raises:
        WebConfigError: unreadable file or any problem in it, each with file and line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError([f"{path}: cannot read: {exc}"]) from None
    return parse_web_config(text, source=str(path), base_dir=path.parent)


def parse_web_config(text: str, *, source: str, base_dir: Path) -> WebConfig:
    """Parse web config text; relative file names are resolved against ``base_dir``.

    Raises:
        WebConfigError: every problem found, not only the first.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise WebConfigError([f"{source}: invalid YAML: {exc}"]) from None
    reader = _Reader(source, base_dir)
    top = reader.mapping(root, "", _TOP_KEYS)
    users = reader.users(top.get("basic_auth_users"))
    headers, http2 = reader.http(top.get("http_server_config"))
    rate_limit = reader.rate_limit(top.get("rate_limit"))
    tls = reader.tls(top.get("tls_server_config"))
    if reader.problems:
        raise WebConfigError(reader.sorted_problems())
    return WebConfig(
        source=source,
        tls=tls,
        headers=MappingProxyType(headers),
        users=MappingProxyType(users),
        rate_limit=rate_limit,
        http2=http2,
        notes=tuple(reader.notes),
    )


def parse_go_duration(text: str) -> float:
    """Go ``time.ParseDuration`` text (``1m30s``, ``250ms``, ``0``) as seconds."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (use e.g. 500ms, 1s, 1m30s)")
    return total


class _Reader:
    """Walks composed YAML nodes so every problem can name its key path and line."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir
        self.problems: list[str] = []
        self._lines: list[int] = []
        self.notes: list[str] = []

    def problem(self, node: Node | None, path: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        where = f" {path}:" if path else ""
        self._lines.append(line)
        self.problems.append(f"{self.source}{f':{line}' if line else ''}:{where} {message}")

    def sorted_problems(self) -> list[str]:
        """In file order, as an operator reads the file (the walk goes section by section)."""
        return [p for _, p in sorted(zip(self._lines, self.problems, strict=True), key=lambda lp: lp[0])]

    def mapping(self, node: Node | None, path: str, known: tuple[str, ...] | None) -> dict[str, Node]:
        """Keys to value nodes; unknown (when ``known`` is given) and duplicate keys are problems."""
        if node is None or _is_null(node):
            return {}
        if not isinstance(node, MappingNode):
            self.problem(node, path, "expected a mapping")
            return {}
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, path, "keys must be plain strings")
                continue
            key = key_node.value
            full = f"{path}.{key}" if path else key
            if known is not None and key not in known:
                self.problem(key_node, full, f"unknown key (known: {', '.join(known)})")
            elif key in out:
                self.problem(key_node, full, "duplicate key")
            else:
                out[key] = value_node
        return out

    def string(self, node: Node | None, path: str) -> str:
        """A scalar as text (Go decodes ``123`` into a string field too); null is empty."""
        if node is None or _is_null(node):
            return ""
        if not isinstance(node, ScalarNode):
            self.problem(node, path, "expected a string")
            return ""
        return str(node.value)

    def boolean(self, node: Node | None, path: str, default: bool) -> bool:
        text = self.string(node, path).lower()
        if not text:
            return default
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        self.problem(node, path, f"expected true or false, got {text!r}")
        return default

    def strings(self, node: Node | None, path: str) -> tuple[str, ...] | None:
        if node is None or _is_null(node):
            return None
        if not isinstance(node, SequenceNode):
            self.problem(node, path, "expected a list of strings")
            return None
        return tuple(self.string(item, f"{path}[{i}]") for i, item in enumerate(node.value))

    def users(self, node: Node | None) -> dict[str, bytes]:
        users: dict[str, bytes] = {}
        for name, value in self.mapping(node, "basic_auth_users", None).items():
            path = f"basic_auth_users.{name}"
            hashed = self.string(value, path)
            if _BCRYPT.fullmatch(hashed) is None or not 4 <= int(hashed[-56:-54]) <= 31:
                # Never echo the value: a pasted plain password must not reach a log.
                self.problem(value, path, "not a bcrypt hash (expected $2y$10$ and 53 characters)")
                continue
            users[name] = hashed.encode("ascii")
        return users

    def http(self, node: Node | None) -> tuple[dict[str, str], bool]:
        keys = self.mapping(node, "http_server_config", _HTTP_KEYS)
        http2 = self.boolean(keys.get("http2"), "http_server_config.http2", True)
        headers: dict[str, str] = {}
        for name, value_node in self.mapping(keys.get("headers"), "http_server_config.headers", None).items():
            path = f"http_server_config.headers.{name}"
            value = self.string(value_node, path)
            if name not in _HEADERS:
                known = ", ".join(_HEADERS)
                self.problem(value_node, path, f"HTTP header can not be configured (known: {known})")
            elif _HEADERS[name] and value not in _HEADERS[name]:
                self.problem(value_node, path, f"expected one of {', '.join(_HEADERS[name])}, got {value!r}")
            elif "\r" in value or "\n" in value:
                self.problem(value_node, path, "header values cannot contain line breaks")
            elif value:
                headers[name] = value
        return headers, http2

    def rate_limit(self, node: Node | None) -> RateLimit | None:
        keys = self.mapping(node, "rate_limit", _RATE_KEYS)
        interval_text = self.string(keys.get("interval"), "rate_limit.interval") or "0"
        burst_text = self.string(keys.get("burst"), "rate_limit.burst") or "0"
        try:
            interval = parse_go_duration(interval_text)
        except ValueError as exc:
            self.problem(keys.get("interval"), "rate_limit.interval", str(exc))
            return None
        if not burst_text.isdigit():
            message = f"expected a whole number, got {burst_text!r}"
            self.problem(keys.get("burst"), "rate_limit.burst", message)
            return None
        if interval == 0:
            return None
        return RateLimit(interval=interval, burst=int(burst_text))

    def path(self, node: Node | None, path: str) -> Path | None:
        text = self.string(node, path)
        if not text:
            return None
        candidate = Path(text)
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def tls(self, node: Node | None) -> TLSSettings | None:
        return build_tls_settings(self, node)


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"
