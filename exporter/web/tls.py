"""``tls_server_config``: the ``ssl.SSLContext`` a web config asks for, built and checked at load.

Split from ``webconfig`` so the YAML walk and the TLS policy can each be read alone; the
differences from exporter-toolkit that Python's ``ssl`` forces are listed in ``webconfig``'s
docstring. Problems and notes go to the ``NodeReader`` passed in, so they keep the same file,
line and wording as every other web config problem.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from yaml.nodes import Node

__all__ = [
    "CLIENT_AUTH_TYPES",
    "TLS_VERSIONS",
    "NodeReader",
    "TLSSettings",
    "build_tls_settings",
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
_TLS_KEYS = (
    "cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
    "client_allowed_sans", "min_version", "max_version", "cipher_suites", "prefer_server_cipher_suites",
    "curve_preferences",
)  # fmt: skip


class NodeReader(Protocol):
    """What TLS building needs from the web config reader: typed values and a place for problems."""

    problems: list[str]
    notes: list[str]

    def problem(self, node: Node | None, path: str, message: str) -> None: ...

    def mapping(self, node: Node | None, path: str, known: tuple[str, ...] | None) -> dict[str, Node]: ...

    def string(self, node: Node | None, path: str) -> str: ...

    def boolean(self, node: Node | None, path: str, default: bool) -> bool: ...

    def strings(self, node: Node | None, path: str) -> tuple[str, ...] | None: ...

    def path(self, node: Node | None, path: str) -> Path | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSSettings:
    """A ready server-side TLS context plus what the handshake alone cannot enforce."""

    context: ssl.SSLContext = field(repr=False, compare=False)
    client_auth_type: str = "NoClientCert"
    # Checked after the handshake; ``None`` means any (verified) client certificate is fine.
    client_allowed_sans: frozenset[str] | None = None


def build_tls_settings(reader: NodeReader, node: Node | None) -> TLSSettings | None:
    """``tls_server_config`` as a ready context; ``None`` when unset or when a problem was recorded."""
    keys = reader.mapping(node, "tls_server_config", _TLS_KEYS)
    return _TLSBuilder(reader, keys, node).build()


class _TLSBuilder:
    """Turns the ``tls_server_config`` keys into an ``ssl.SSLContext`` or problems."""

    def __init__(self, reader: NodeReader, keys: dict[str, Node], node: Node | None) -> None:
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
