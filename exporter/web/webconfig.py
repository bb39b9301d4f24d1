"""``--web.config.file``: the exporter-toolkit web configuration, parsed strictly.

The format is the one every Prometheus exporter shares (exporter-toolkit
``docs/web-configuration.md``), so an operator can reuse the file they already have for
node_exporter. Like exporter-toolkit (``getConfig``, ``Validate``, ``validateUsers``) the
whole file is checked before anything listens: unknown keys, bad bcrypt hashes, unreadable
certificates and keys all fail at load, every problem with its file and line.

It is read by the same loader as the exporter's config (``exporter.config.loader``), so the two
files share one set of rules: YAML 1.2 booleans (``true``/``false`` unquoted; ``yes``, ``on`` or
``"true"`` are refused), Prometheus durations (``rate_limit.interval: 1m30s``; Go's fractional
``1.5s`` must be written ``1s500ms``), unknown keys with "did you mean", and no message that
quotes a line of the file (a YAML syntax error names line and column only).

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
from typing import Any, Final

from yaml.nodes import Node

from exporter.config.loader import Context, Invalid, Reader, Report, compose, read, read_dict, read_section
from exporter.config.values import boolean, duration, integer, text

from .tls import CLIENT_AUTH_TYPES, TLS_VERSIONS, TLSSettings, read_tls

__all__ = [
    "CLIENT_AUTH_TYPES",
    "TLS_VERSIONS",
    "RateLimit",
    "TLSSettings",
    "WebConfig",
    "WebConfigError",
    "load_web_config",
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
_BCRYPT: Final = re.compile(r"\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}")


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


def _bcrypt_hash(user: str) -> Reader[bytes]:
    def read_hash(node: Node, path: str, ctx: Context) -> bytes:
        hashed = text(node, path, ctx)
        ctx.report.secrets.add(hashed)  # a pasted plain password must not reach a log
        if _BCRYPT.fullmatch(hashed) is None or not 4 <= int(hashed[-56:-54]) <= 31:
            raise Invalid("not a bcrypt hash (expected $2y$10$ and 53 characters)")
        return hashed.encode("ascii")

    return read_hash


def _users(node: Node, path: str, ctx: Context) -> Mapping[str, bytes]:
    return MappingProxyType(read_dict(node, path, ctx, _bcrypt_hash))


def _header(name: str) -> Reader[str]:
    def read_header(node: Node, path: str, ctx: Context) -> str:
        value = "" if node.tag.endswith(":null") else text(node, path, ctx)
        if name not in _HEADERS:
            raise Invalid(f"HTTP header can not be configured (known: {', '.join(_HEADERS)})")
        if _HEADERS[name] and value not in _HEADERS[name]:
            raise Invalid(f"expected one of {', '.join(_HEADERS[name])}, got {value!r}")
        if "\r" in value or "\n" in value:
            raise Invalid("header values cannot contain line breaks")
        return value

    return read_header


def _headers(node: Node, path: str, ctx: Context) -> Mapping[str, str]:
    return MappingProxyType({k: v for k, v in read_dict(node, path, ctx, _header).items() if v})


_HTTP: Final[Mapping[str, Reader[Any]]] = {"http2": boolean, "headers": _headers}


def _rate_limit(node: Node, path: str, ctx: Context) -> RateLimit | None:
    """``None`` when the interval is 0 or unset: exporter-toolkit then does not limit."""
    section = read_section(
        node, path, ctx, {"interval": duration(positive=False), "burst": integer(minimum=0)}
    )
    interval = section.values.get("interval", 0.0)
    if not section.ok or interval == 0:
        return None
    return RateLimit(interval=interval, burst=section.values.get("burst", 0))


_TOP: Final[Mapping[str, Reader[Any]]] = {
    "tls_server_config": read_tls,
    "http_server_config": lambda node, path, ctx: read_section(node, path, ctx, _HTTP).values,
    "basic_auth_users": _users,
    "rate_limit": _rate_limit,
}


def load_web_config(path: Path) -> WebConfig:
    """Read, parse and fully validate a web config file, loading its certificates.

    Raises:
        WebConfigError: unreadable file or any problem in it, each with file and line.
    """
    try:
        text_ = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not valid UTF-8 (byte offset {exc.start})"
        raise WebConfigError([f"{path}: cannot read: {reason or type(exc).__name__}"]) from None
    return parse_web_config(text_, source=str(path), base_dir=path.parent)


def parse_web_config(text: str, *, source: str, base_dir: Path) -> WebConfig:
    """Parse web config text; relative file names are resolved against ``base_dir``.

    An empty file is plain HTTP without auth, as in exporter-toolkit.

    Raises:
        WebConfigError: every problem found, not only the first.
    """
    report = Report(source)
    root = compose(text, report, empty_ok=True)
    values: dict[str, Any] = {}
    if root is not None:
        ok, section = read(lambda n, p, c: read_section(n, p, c, _TOP), root, "", Context(report, base_dir))
        values = section.values if ok and section is not None else {}
    if report.count():
        raise WebConfigError(report.problems())
    http: Mapping[str, Any] = values.get("http_server_config", {})
    return WebConfig(
        source=source,
        tls=values.get("tls_server_config"),
        headers=http.get("headers", MappingProxyType({})),
        users=values.get("basic_auth_users", MappingProxyType({})),
        rate_limit=values.get("rate_limit"),
        http2=http.get("http2", True),
        notes=tuple(report.notes),
    )
