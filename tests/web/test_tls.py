"""TLS from a web config, against real HTTPS clients that verify the server's certificate."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import httpx
import pytest

from exporter.web.webconfig import WebConfig, load_web_config


def web_config(tmp_path: Path, pki, extra: str = "") -> WebConfig:
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n{extra}"
    )
    return load_web_config(path)


def mtls(tmp_path: Path, pki, auth: str = "RequireAndVerifyClientCert", extra: str = "") -> WebConfig:
    return web_config(tmp_path, pki, f"  client_auth_type: {auth}\n  client_ca_file: {pki.ca}\n{extra}")


class TestServerTls:
    def test_https_verified_against_our_ca(self, serve, tmp_path, pki):
        server = serve(web_config=web_config(tmp_path, pki))
        assert server.url.startswith("https://127.0.0.1:")
        with httpx.Client(verify=pki.client_context()) as client:
            r = client.get(f"{server.url}/metrics")
        assert r.status_code == 200 and r.content.startswith(b"# HELP demo_up")

    def test_client_without_our_ca_refuses_the_server(self, serve, tmp_path, pki):
        server = serve(web_config=web_config(tmp_path, pki))
        with httpx.Client(verify=ssl.create_default_context()) as client, pytest.raises(httpx.ConnectError):
            client.get(f"{server.url}/healthz")

    def test_plain_http_to_tls_port_fails_and_server_lives_on(self, serve, tmp_path, pki):
        server = serve(web_config=web_config(tmp_path, pki))
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{server.port}/healthz")
        with httpx.Client(verify=pki.client_context()) as client:
            assert client.get(f"{server.url}/healthz").status_code == 200

    def test_silent_client_does_not_block_others(self, serve, tmp_path, pki):
        """A connection that never starts its handshake must not stall the accept loop."""
        server = serve(web_config=web_config(tmp_path, pki))
        with (
            socket.create_connection(("127.0.0.1", server.port)),
            httpx.Client(verify=pki.client_context(), timeout=5) as client,
        ):
            assert client.get(f"{server.url}/healthz").status_code == 200

    def test_min_version_is_enforced(self, serve, tmp_path, pki):
        server = serve(web_config=web_config(tmp_path, pki, "  min_version: TLS13\n"))
        old = pki.client_context()
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with httpx.Client(verify=old) as client, pytest.raises(httpx.ConnectError):
            client.get(f"{server.url}/healthz")
        with httpx.Client(verify=pki.client_context()) as client:
            assert client.get(f"{server.url}/healthz").status_code == 200

    def test_tls_and_basic_auth_together(self, serve, tmp_path, pki, hash_password):
        config = web_config(tmp_path, pki, f"basic_auth_users:\n  prometheus: {hash_password('pw')}\n")
        server = serve(web_config=config)
        with httpx.Client(verify=pki.client_context()) as client:
            assert client.get(f"{server.url}/metrics").status_code == 401
            assert client.get(f"{server.url}/metrics", auth=("prometheus", "pw")).status_code == 200

    def test_reload_from_plain_to_tls(self, serve, tmp_path, pki):
        server = serve()
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        server.reload_web_config(web_config(tmp_path, pki))
        assert server.url.startswith("https://")
        with httpx.Client(verify=pki.client_context()) as client:
            assert client.get(f"{server.url}/healthz").status_code == 200


class TestClientCertificates:
    def test_required_cert_missing_is_rejected(self, serve, tmp_path, pki):
        server = serve(web_config=mtls(tmp_path, pki))
        with httpx.Client(verify=pki.client_context()) as client, pytest.raises(httpx.TransportError):
            client.get(f"{server.url}/healthz")

    def test_required_cert_present_is_accepted(self, serve, tmp_path, pki):
        server = serve(web_config=mtls(tmp_path, pki))
        context = pki.client_context(cert=pki.client_cert, key=pki.client_key)
        with httpx.Client(verify=context) as client:
            assert client.get(f"{server.url}/metrics").status_code == 200

    def test_untrusted_client_cert_is_rejected(self, serve, tmp_path, pki):
        server = serve(web_config=mtls(tmp_path, pki))
        context = pki.client_context(cert=pki.rogue_cert, key=pki.rogue_key)
        with httpx.Client(verify=context) as client, pytest.raises(httpx.TransportError):
            client.get(f"{server.url}/healthz")

    def test_verify_if_given_allows_no_cert_but_not_a_bad_one(self, serve, tmp_path, pki):
        server = serve(web_config=mtls(tmp_path, pki, auth="VerifyClientCertIfGiven"))
        with httpx.Client(verify=pki.client_context()) as client:
            assert client.get(f"{server.url}/healthz").status_code == 200
        rogue = pki.client_context(cert=pki.rogue_cert, key=pki.rogue_key)
        with httpx.Client(verify=rogue) as client, pytest.raises(httpx.TransportError):
            client.get(f"{server.url}/healthz")

    @pytest.mark.parametrize(
        ("sans", "allowed"), [("[client.example, other]", True), ("[someone.else]", False)]
    )
    def test_client_allowed_sans(self, serve, tmp_path, pki, sans, allowed):
        server = serve(web_config=mtls(tmp_path, pki, extra=f"  client_allowed_sans: {sans}\n"))
        context = pki.client_context(cert=pki.client_cert, key=pki.client_key)
        with httpx.Client(verify=context) as client:
            if allowed:
                assert client.get(f"{server.url}/healthz").status_code == 200
            else:
                with pytest.raises(httpx.TransportError):
                    client.get(f"{server.url}/healthz")
