"""``tls_server_config``: the ``ssl.SSLContext`` a web config asks for, built and checked at load.

Split from ``webconfig`` so the YAML walk and the TLS policy can each be read alone; the
differences from exporter-toolkit that Python's ``ssl`` forces are listed in ``webconfig``'s
docstring. The keys are read by the shared config loader; problems and notes go to its report, so
they keep the same file, line and wording as every other config problem.
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
from typing import Any, Final

from yaml.nodes import Node

from exporter.config.loader import Context, Reader, Reported, Section, read_section
from exporter.config.values import boolean, choice, list_of, path, secret_text, text

__all__ = [
    "CLIENT_AUTH_TYPES",
    "TLS_VERSIONS",
    "TLSSettings",
    "read_tls",
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
_CURVES = ("CurveP256", "CurveP384", "CurveP521", "X25519", "X25519MLKEM768")


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSSettings:
    """A ready server-side TLS context plus what the handshake alone cannot enforce."""

    context: ssl.SSLContext = field(repr=False, compare=False)
    client_auth_type: str = "NoClientCert"
    # Checked after the handshake; ``None`` means any (verified) client certificate is fine.
    client_allowed_sans: frozenset[str] | None = None


_TLS_KEYS: Final[Mapping[str, Reader[Any]]] = {
    "cert": text,
    "key": secret_text,
    "client_ca": text,
    "cert_file": path,
    "key_file": path,
    "client_auth_type": choice(CLIENT_AUTH_TYPES, "client_auth_type"),
    "client_ca_file": path,
    "client_allowed_sans": list_of(text, unique=False),
    "min_version": choice(tuple(TLS_VERSIONS), "TLS version"),
    "max_version": choice(tuple(TLS_VERSIONS), "TLS version"),
    "cipher_suites": list_of(text, unique=False),
    "prefer_server_cipher_suites": boolean,
    "curve_preferences": list_of(choice(_CURVES, "curve"), unique=False),
}


def read_tls(node: Node, key_path: str, ctx: Context) -> TLSSettings | None:
    """``tls_server_config`` as a ready context; ``None`` when no TLS field is set.

    Raises:
        Invalid: not a mapping. Reported: a problem was recorded.
    """
    section = read_section(node, key_path, ctx, _TLS_KEYS)
    settings = _TLSBuilder(section).build()
    if not section.ok:
        raise Reported
    return settings


class _TLSBuilder:
    """Turns the ``tls_server_config`` values into an ``ssl.SSLContext`` or problems."""

    def __init__(self, section: Section) -> None:
        self.section = section
        self.values = section.values
        self.notes = section.ctx.report.notes

    def text(self, key: str) -> str:
        value: str = self.values.get(key, "")
        return value

    def problem(self, key: str, message: str) -> None:
        self.section.problem(key, message)

    def build(self) -> TLSSettings | None:
        cert_file = self.values.get("cert_file")
        key_file = self.values.get("key_file")
        ca_file = self.values.get("client_ca_file")
        cert, key, ca = self.text("cert"), self.text("key"), self.text("client_ca")
        auth = self.text("client_auth_type")
        if not (cert_file or key_file or ca_file or cert or key or ca or auth):
            return None  # exporter-toolkit: no TLS field set means plain HTTP
        self.check_pairs(cert_file, cert, key_file, key)
        auth = auth or "NoClientCert"
        versions = self.versions()
        sans = self.values.get("client_allowed_sans")
        self.ignored_lists()
        prefer = self.values.get("prefer_server_cipher_suites", True)
        has_ca = bool(ca_file or ca)
        self.check_auth(auth, has_ca=has_ca, sans=sans)
        if not self.section.ok or versions is None:
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
            if key in self.section.nodes and key not in self.values:
                return None  # unknown name, already reported
            chosen.append(TLS_VERSIONS[self.text(key) or default])
        if chosen[0] > chosen[1]:
            self.problem("min_version", "min_version is above max_version")
            return None
        return chosen[0], chosen[1]

    def ignored_lists(self) -> None:
        for key in ("cipher_suites", "curve_preferences"):
            if self.values.get(key):
                self.notes.append(f"tls_server_config.{key} is ignored: OpenSSL's defaults are used")

    def check_auth(self, auth: str, *, has_ca: bool, sans: tuple[str, ...] | None) -> None:
        if "client_auth_type" in self.section.nodes and "client_auth_type" not in self.values:
            return  # unknown type, already reported
        if has_ca and auth == "NoClientCert":
            self.problem("client_auth_type", "client CA's have been configured without a Client Auth Policy")
        if auth in ("RequireAnyClientCert", "RequireClientCert"):
            if not has_ca:
                self.problem(
                    "client_auth_type",
                    f"{auth} needs client_ca_file here: Python's ssl verifies every client certificate",
                )
            self.notes.append(f"client_auth_type {auth} behaves as RequireAndVerifyClientCert")
        if auth == "RequestClientCert":
            self.notes.append("client_auth_type RequestClientCert does not ask for a client certificate")
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
