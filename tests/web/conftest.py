"""Fixtures for the web tests: a real server on loopback, real certificates, real bcrypt.

Certificates are minted once per session with ``cryptography`` (EC keys: fast), so TLS tests
use a genuine CA chain, a client certificate the CA signed, and a rogue self-signed one.
"""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from exporter.model import RegionStatus
from exporter.web.landing import LandingConfig
from exporter.web.server import WebServer, WebSources
from exporter.web.webconfig import WebConfig

METRICS = b"# HELP demo_up Whether demo is up.\n# TYPE demo_up gauge\ndemo_up 1\n" * 50


def make_sources(
    *,
    metrics: bytes = METRICS,
    events: Sequence[dict[str, Any]] = (),
    ready: Callable[[], bool] = lambda: True,
    statuses: Sequence[RegionStatus] = (),
) -> WebSources:
    return WebSources(
        metrics=lambda gz: gzip.compress(metrics) if gz else metrics,
        events=lambda: list(events),
        ready=ready,
        statuses=lambda: list(statuses),
    )


@pytest.fixture
def serve_many() -> Iterator[Callable[..., WebServer]]:
    """Start ``WebServer``s on several addresses and/or inherited sockets; stopped at teardown."""
    started: list[WebServer] = []

    def start(listen: str | Sequence[str], **kwargs: Any) -> WebServer:
        kwargs.setdefault("sources", make_sources())
        kwargs.setdefault("landing", LandingConfig(version="9.9.9"))
        server = WebServer(listen, **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def serve(serve_many: Callable[..., WebServer]) -> Callable[..., WebServer]:
    """Start a ``WebServer`` on 127.0.0.1:0 (by default); all are stopped at teardown."""

    def start(
        sources: WebSources | None = None,
        *,
        web_config: WebConfig | None = None,
        telemetry_path: str = "/metrics",
        landing: LandingConfig | None = None,
        listen: str = "127.0.0.1:0",
        clock: Callable[[], float] | None = None,
    ) -> WebServer:
        extra = {"clock": clock} if clock is not None else {}
        return serve_many(
            listen,
            telemetry_path=telemetry_path,
            sources=sources or make_sources(),
            landing=landing or LandingConfig(version="9.9.9"),
            web_config=web_config,
            **extra,
        )

    return start


def bcrypt_hash(password: str, cost: int = 4) -> str:
    """Cost 4 keeps tests fast; the server handles any cost the same way."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path  # signed by ca, SAN DNS:client.example
    client_key: Path
    rogue_cert: Path  # self-signed, not trusted by anyone
    rogue_key: Path

    def client_context(self, *, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        """What a careful HTTPS client does: verify the server against our CA, optionally present a cert."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            context.load_cert_chain(cert, key)
        return context


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    sans: Sequence[x509.GeneralName] = (),
    client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if issuer is not None:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
            builder = builder.add_extension(aki, critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("test CA", ca_key, None, ca=True)
    ca_path, _ = _write(directory, "ca", ca_cert, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_cert = _issue("localhost", server_key, (ca_cert.subject, ca_key), sans=server_sans)
    server_paths = _write(directory, "server", server_cert, server_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _issue(
        "scraper", client_key, (ca_cert.subject, ca_key), sans=[x509.DNSName("client.example")], client=True
    )
    client_paths = _write(directory, "client", client_cert, client_key)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue_cert = _issue("rogue", rogue_key, None, sans=[x509.DNSName("client.example")], client=True)
    rogue_paths = _write(directory, "rogue", rogue_cert, rogue_key)
    return Pki(directory, ca_path, *server_paths, *client_paths, *rogue_paths)


@pytest.fixture
def sources() -> Callable[..., WebSources]:
    """``make_sources`` as a fixture (importlib mode: test modules cannot import conftest)."""
    return make_sources


@pytest.fixture
def hash_password() -> Callable[..., str]:
    return bcrypt_hash
