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

import contextlib
import os
import re
import ssl
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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

TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = MappingProxyType(
    {
        "TLS10": ssl.TLSVersion.TLSv1,
        "TLS11": ssl.TLSVersion.TLSv1_1,
        "TLS12": ssl.TLSVersion.TLSv1_2,
        "TLS13": ssl.TLSVersion.TLSv1_3,
    }
)
CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "RequireClientCert",  # exporter-toolkit keeps this spelling for backwards compatibility
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
_REQUIRE_CERT = ("RequireAnyClientCert", "RequireClientCert", "RequireAndVerifyClientCert")
_CURVES = frozenset({"CurveP256", "CurveP384", "CurveP521", "X25519", "X25519MLKEM768"})
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
_TLS_KEYS = (
    "cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
    "client_allowed_sans", "min_version", "max_version", "cipher_suites", "prefer_server_cipher_suites",
    "curve_preferences",
)  # fmt: skip
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
class TLSSettings:
    """A ready server-side TLS context plus what the handshake alone cannot enforce."""

    context: ssl.SSLContext = field(repr=False, compare=False)
    client_auth_type: str = "NoClientCert"
    # Checked after the handshake; ``None`` means any (verified) client certificate is fine.
    client_allowed_sans: frozenset[str] | None = None


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
        keys = self.mapping(node, "tls_server_config", _TLS_KEYS)
        return _TLSBuilder(self, keys, node).build()


class _TLSBuilder:
    """Turns the ``tls_server_config`` keys into an ``ssl.SSLContext`` or problems."""

    def __init__(self, reader: _Reader, keys: dict[str, Node], node: Node | None) -> None:
        self.r = reader
        self.keys = keys
        self.node = node

    def text(self, key: str) -> str:
        return self.r.string(self.keys.get(key), f"tls_server_config.{key}")

    def at(self, key: str) -> Node | None:
        return self.keys.get(key, self.node)

    def problem(self, key: str, message: str) -> None:
        self.r.problem(self.at(key), f"tls_server_config.{key}", message)

    def build(self) -> TLSSettings | None:
        cert_file = self.r.path(self.keys.get("cert_file"), "tls_server_config.cert_file")
        key_file = self.r.path(self.keys.get("key_file"), "tls_server_config.key_file")
        ca_file = self.r.path(self.keys.get("client_ca_file"), "tls_server_config.client_ca_file")
        cert, key, ca = self.text("cert"), self.text("key"), self.text("client_ca")
        auth = self.text("client_auth_type")
        if not (cert_file or key_file or ca_file or cert or key or ca or auth):
            return None  # exporter-toolkit: no TLS field set means plain HTTP
        problems_before = len(self.r.problems)
        self.check_pairs(cert_file, cert, key_file, key)
        auth = auth or "NoClientCert"
        if auth not in CLIENT_AUTH_TYPES:
            self.problem("client_auth_type", f"unknown {auth!r} (known: {', '.join(CLIENT_AUTH_TYPES)})")
        versions = self.versions()
        sans = self.r.strings(self.keys.get("client_allowed_sans"), "tls_server_config.client_allowed_sans")
        self.ignored_lists()
        prefer_key = "prefer_server_cipher_suites"
        prefer = self.r.boolean(self.keys.get(prefer_key), f"tls_server_config.{prefer_key}", True)
        has_ca = bool(ca_file or ca)
        self.check_auth(auth, has_ca=has_ca, sans=sans)
        if len(self.r.problems) > problems_before or versions is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            # TLS10/TLS11 are deprecated in ssl; the operator asked for them explicitly.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version, context.maximum_version = versions
        if prefer:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        if not self.load_chain(context, cert_file, cert, key_file, key):
            return None
        if not self.load_client_ca(context, auth, ca_file, ca):
            return None
        return TLSSettings(
            context=context,
            client_auth_type=auth,
            client_allowed_sans=frozenset(sans) if sans is not None else None,
        )

    def check_pairs(self, cert_file: Path | None, cert: str, key_file: Path | None, key: str) -> None:
        for name, file_, inline in (("cert", cert_file, cert), ("key", key_file, key)):
            if file_ and inline:
                self.problem(f"{name}_file", f"set either {name} or {name}_file, not both")
            elif not (file_ or inline):
                self.problem(name + "_file", f"missing one of {name} or {name}_file")

    def versions(self) -> tuple[ssl.TLSVersion, ssl.TLSVersion] | None:
        chosen = []
        for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
            name = self.text(key) or default
            if name not in TLS_VERSIONS:
                self.problem(key, f"unknown TLS version {name!r} (known: {', '.join(TLS_VERSIONS)})")
                return None
            chosen.append(TLS_VERSIONS[name])
        if chosen[0] > chosen[1]:
            self.problem("min_version", "min_version is above max_version")
            return None
        return chosen[0], chosen[1]

    def ignored_lists(self) -> None:
        suites = self.r.strings(self.keys.get("cipher_suites"), "tls_server_config.cipher_suites")
        if suites:
            self.r.notes.append("tls_server_config.cipher_suites is ignored: OpenSSL's defaults are used")
        curves = self.r.strings(self.keys.get("curve_preferences"), "tls_server_config.curve_preferences")
        for curve in curves or ():
            if curve not in _CURVES:
                known = ", ".join(sorted(_CURVES))
                self.problem("curve_preferences", f"unknown curve {curve!r} (known: {known})")
        if curves:
            self.r.notes.append("tls_server_config.curve_preferences is ignored: OpenSSL's defaults are used")

    def check_auth(self, auth: str, *, has_ca: bool, sans: tuple[str, ...] | None) -> None:
        if has_ca and auth == "NoClientCert":
            self.problem("client_auth_type", "client CA's have been configured without a Client Auth Policy")
        if auth in ("RequireAnyClientCert", "RequireClientCert"):
            if not has_ca:
                self.problem(
                    "client_auth_type",
                    f"{auth} needs client_ca_file here: Python's ssl verifies every client certificate",
                )
            self.r.notes.append(f"client_auth_type {auth} behaves as RequireAndVerifyClientCert")
        if auth == "RequestClientCert":
            self.r.notes.append("client_auth_type RequestClientCert does not ask for a client certificate")
        if sans is not None and auth not in _REQUIRE_CERT:
            self.problem(
                "client_allowed_sans",
                "requires client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert",
            )

    def load_chain(
        self, context: ssl.SSLContext, cert_file: Path | None, cert: str, key_file: Path | None, key: str
    ) -> bool:
        readable = True
        for name, file_ in (("cert_file", cert_file), ("key_file", key_file)):
            try:
                if file_ is not None:
                    file_.open("rb").close()
            except OSError as exc:
                self.problem(name, f"cannot read {file_}: {exc.strerror or exc}")
                readable = False
        if not readable:
            return False
        try:
            with _pem_path(cert_file, cert) as cert_path, _pem_path(key_file, key) as key_path:
                context.load_cert_chain(cert_path, key_path, password=_no_password)
        except (OSError, ssl.SSLError, ValueError) as exc:
            # The reason names the file and OpenSSL's complaint, never the key material.
            what = "cert_file" if cert_file else "cert"
            self.problem(what, f"cannot load certificate and key: {_reason(exc)}")
            return False
        return True

    def load_client_ca(self, context: ssl.SSLContext, auth: str, ca_file: Path | None, ca: str) -> bool:
        key = "client_ca_file" if ca_file else "client_ca"
        try:
            if ca_file:
                context.load_verify_locations(cafile=ca_file)
            elif ca:
                context.load_verify_locations(cadata=ca)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.problem(key, f"cannot load client CA: {_reason(exc)}")
            return False
        if (ca_file or ca) and context.cert_store_stats()["x509"] == 0:
            self.problem(key, "no certificates found in client CA")
            return False
        if auth in _REQUIRE_CERT:
            context.verify_mode = ssl.CERT_REQUIRED
        elif auth == "VerifyClientCertIfGiven":
            context.verify_mode = ssl.CERT_OPTIONAL
        if context.verify_mode != ssl.CERT_NONE and not (ca_file or ca):
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        return True


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _no_password() -> bytes:
    """Stops OpenSSL from prompting on the terminal for an encrypted key."""
    raise ValueError("encrypted private keys are not supported")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def _pem_path(file_: Path | None, inline: str) -> Iterator[Path]:
    """A path for ``load_cert_chain``, which only reads files; inline PEM goes to a private temp file."""
    if file_ is not None:
        yield file_
        return
    with tempfile.TemporaryDirectory(prefix="webconfig-") as tmp:
        target = Path(tmp) / "pem"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(inline)
        yield target
