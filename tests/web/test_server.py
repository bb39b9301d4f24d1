"""The HTTP surface over real HTTP (SPEC section 7): routes, methods, gzip, readiness, errors."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from exporter.web.server import (
    METRICS_CONTENT_TYPE,
    ListenAddress,
    WebServer,
    WebSources,
    gzip_accepted,
    parse_listen_address,
)

PLAIN = b"demo_up 1\n" * 200


def raw_get(url: str, accept_encoding: str) -> Any:  # an httpx.Response with .raw_body
    """GET without httpx's transparent decoding, so we see exactly what went over the wire."""
    headers = {"Accept-Encoding": accept_encoding}
    with httpx.Client() as client, client.stream("GET", url, headers=headers) as r:
        r.raw_body = b"".join(r.iter_raw())  # type: ignore[attr-defined]
        return r


class TestRoutes:
    def test_healthz_is_ok(self, serve):
        server = serve()
        r = httpx.get(f"{server.url}/healthz")
        assert (r.status_code, r.text) == (200, "OK")

    def test_metrics_plain(self, serve, sources):
        server = serve(sources(metrics=PLAIN))
        r = raw_get(f"{server.url}/metrics", "identity")
        assert r.status_code == 200
        assert r.headers["Content-Type"] == METRICS_CONTENT_TYPE
        assert "Content-Encoding" not in r.headers
        assert r.headers["Vary"] == "Accept-Encoding"
        assert r.raw_body == PLAIN
        assert int(r.headers["Content-Length"]) == len(PLAIN)

    def test_query_string_is_ignored(self, serve):
        server = serve()
        assert httpx.get(f"{server.url}/metrics?debug=1").status_code == 200

    def test_absolute_form_request_target(self, serve):
        server = serve()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET http://example/healthz HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n")
            reply = b"".join(iter(lambda: sock.recv(4096), b""))
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"\r\n\r\nOK")

    def test_events_json_shape(self, serve, sources):
        events = [
            {"time": "2026-11-27T07:00:00Z", "account": "prod", "region": "ap-guangzhou", "stream": "room1",
             "kind": "switchover", "reason": "failover", "from": "seq-a", "to": "seq-b"},
            {"time": "2026-11-27T06:59:00Z", "account": "prod", "region": "ap-guangzhou", "stream": "室内",
             "kind": "stream_start"},
        ]  # fmt: skip
        server = serve(sources(events=events))
        r = httpx.get(f"{server.url}/events")
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json() == {"events": events}

    def test_events_empty(self, serve):
        server = serve()
        assert json.loads(httpx.get(f"{server.url}/events").content) == {"events": []}

    def test_landing_page(self, serve):
        server = serve()
        r = httpx.get(f"{server.url}/")
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "9.9.9" in r.text
        for link in ('href="/metrics"', 'href="/events"', 'href="/healthz"', 'href="/readyz"'):
            assert link in r.text

    @pytest.mark.parametrize(
        "path", ["/nope", "/metrics/", "/Metrics", "/healthz/x", "/index.html", "/metrics%2F"]
    )
    def test_unknown_paths_are_404(self, serve, path):
        server = serve()
        assert httpx.get(f"{server.url}{path}").status_code == 404

    def test_custom_telemetry_path(self, serve):
        server = serve(telemetry_path="/custom/metrics")
        assert httpx.get(f"{server.url}/custom/metrics").status_code == 200
        assert httpx.get(f"{server.url}/metrics").status_code == 404
        assert 'href="/custom/metrics"' in httpx.get(f"{server.url}/").text

    def test_telemetry_path_must_be_absolute(self, sources):
        with pytest.raises(ValueError, match="must start with '/'"):
            WebServer("127.0.0.1:0", telemetry_path="metrics", sources=sources(), landing=None)  # type: ignore[arg-type]


class TestMethods:
    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FOO"])
    @pytest.mark.parametrize("path", ["/metrics", "/healthz", "/nope"])
    def test_other_methods_are_405(self, serve, method, path):
        server = serve()
        r = httpx.request(method, f"{server.url}{path}", content=b"x=1")
        assert r.status_code == 405
        assert r.headers["Allow"] == "GET, HEAD"

    @pytest.mark.parametrize("path", ["/metrics", "/", "/events", "/healthz", "/readyz"])
    def test_head_has_headers_and_no_body(self, serve, path):
        server = serve()
        with httpx.Client() as client:
            get = client.get(f"{server.url}{path}", headers={"Accept-Encoding": "identity"})
            head = client.head(f"{server.url}{path}", headers={"Accept-Encoding": "identity"})
        assert head.status_code == get.status_code == 200
        assert head.content == b""
        assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.content))
        assert head.headers["Content-Type"] == get.headers["Content-Type"]

    def test_keep_alive_survives_a_request_with_a_body(self, serve):
        server = serve()
        with httpx.Client() as client:
            assert client.post(f"{server.url}/metrics", content=b"a" * 10_000).status_code == 405
            assert client.get(f"{server.url}/healthz").status_code == 200
            assert client.get(f"{server.url}/healthz").status_code == 200


class TestGzip:
    @pytest.mark.parametrize(
        ("accept", "gzipped"),
        [
            ("gzip", True),
            ("gzip, deflate, br", True),  # what Prometheus and browsers send
            ("GZIP", True),  # codings are case-insensitive
            ("x-gzip", True),
            ("deflate, gzip;q=0.5", True),
            ("gzip;q=0", False),  # explicitly refused
            ("gzip; q=0.000", False),
            ("gzip;q=0, *", False),  # the explicit entry wins over the wildcard
            ("*", True),
            ("*;q=0", False),
            ("identity", False),
            ("", False),
            ("gzip;q=nonsense", False),  # malformed q: refuse rather than guess
            ("gzip;q=2", False),  # out of range: malformed
            ("br;q=1, gzip;q=0.001", True),
        ],
    )
    def test_negotiation_over_http(self, serve, sources, accept, gzipped):
        server = serve(sources(metrics=PLAIN))
        r = raw_get(f"{server.url}/metrics", accept)
        assert r.status_code == 200
        assert r.headers["Vary"] == "Accept-Encoding"
        if gzipped:
            assert r.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(r.raw_body) == PLAIN
            assert int(r.headers["Content-Length"]) == len(r.raw_body)
        else:
            assert "Content-Encoding" not in r.headers
            assert r.raw_body == PLAIN

    def test_gzip_body_goes_out_byte_for_byte(self, serve):
        """The server never re-encodes: the source's cached gzip bytes are what the client gets."""
        body = {True: gzip.compress(b"a 1\n") + gzip.compress(b"b 2\n"), False: b"a 1\nb 2\n"}
        server = serve(WebSources(metrics=body.__getitem__, events=list, ready=lambda: True, statuses=list))
        r = raw_get(f"{server.url}/metrics", "gzip")
        assert r.raw_body == body[True]
        assert gzip.decompress(r.raw_body) == body[False]

    def test_a_body_in_parts_goes_out_in_order_with_one_length(self, serve):
        """Sources may return buffers (no join of a 100 MB cached body per scrape)."""
        parts = (b"a 1\n", memoryview(b"xxb 2\n")[2:], b"c 3\n")
        server = serve(WebSources(metrics=lambda _: parts, events=list, ready=lambda: True, statuses=list))
        r = raw_get(f"{server.url}/metrics", "identity")
        assert r.raw_body == b"a 1\nb 2\nc 3\n"
        assert int(r.headers["Content-Length"]) == len(r.raw_body)

    def test_missing_header_means_plain(self):
        assert gzip_accepted("") is False


class TestReadiness:
    def test_readyz_flips_when_sources_become_ready(self, serve, sources):
        ready = threading.Event()
        server = serve(sources(ready=ready.is_set))
        r = httpx.get(f"{server.url}/readyz")
        assert r.status_code == 503
        assert "not ready" in r.text
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # alive while not ready
        ready.set()
        assert httpx.get(f"{server.url}/readyz").status_code == 200


class TestFailures:
    def test_source_error_is_a_short_500_and_logged(self, serve):
        def boom(_gz: bool) -> bytes:
            raise RuntimeError("token=SECRET-VALUE-123 exploded")

        server = serve(WebSources(metrics=boom, events=list, ready=lambda: True, statuses=list))
        with capture_logs() as logs:
            r = httpx.get(f"{server.url}/metrics")
        assert r.status_code == 500
        assert r.text == "internal server error\n"
        assert "SECRET" not in r.text and "Traceback" not in r.text
        assert any(entry["event"] == "web_handler_failed" and entry["path"] == "/metrics" for entry in logs)
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # the server lives on

    def test_access_log_is_debug_only(self, serve):
        server = serve()
        with capture_logs() as logs:
            httpx.get(f"{server.url}/healthz")
            # The access line is written after the reply went out: the client can be faster.
            deadline = time.monotonic() + 5
            while not any(entry["event"] == "http_request" for entry in logs) and time.monotonic() < deadline:
                time.sleep(0.01)
        requests = [entry for entry in logs if entry["event"] == "http_request"]
        assert requests and all(entry["log_level"] == "debug" for entry in requests)

    def test_stderr_stays_quiet_on_a_hang_up(self, serve, capfd):
        server = serve()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # hang up mid-request
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert "Traceback" not in capfd.readouterr().err


class TestLifecycle:
    def test_serves_while_an_asyncio_loop_is_blocked(self, serve):
        """The poll loop can be busy (here: blocked outright) and scrapes still get answers."""
        server = serve()

        async def busy_loop() -> int:
            return httpx.get(f"{server.url}/metrics").status_code  # blocks this loop

        assert asyncio.run(busy_loop()) == 200

    def test_stop_releases_the_port_and_closes_idle_connections(self, serve, sources):
        server = serve()
        port = server.port
        client = httpx.Client()
        assert client.get(f"{server.url}/healthz").status_code == 200  # leaves an idle keep-alive
        server.stop()
        with pytest.raises(httpx.TransportError):
            client.get(f"http://127.0.0.1:{port}/healthz")
        client.close()
        again = serve(listen=f"127.0.0.1:{port}")
        assert httpx.get(f"{again.url}/healthz").status_code == 200

    def test_port_in_use_raises_at_start(self, serve, sources):
        server = serve()
        other = WebServer(f"127.0.0.1:{server.port}", sources=sources(), landing=None)  # type: ignore[arg-type]
        with pytest.raises(OSError):
            other.start()

    def test_port_before_start_is_an_error(self, sources):
        server = WebServer("127.0.0.1:0", sources=sources(), landing=None)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError):
            _ = server.port

    @pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this host")
    def test_ipv6_loopback(self, serve):
        try:
            server = serve(listen="[::1]:0")
        except OSError:
            pytest.skip("IPv6 loopback not configured")
        assert server.url.startswith("http://[::1]:")
        assert httpx.get(f"{server.url}/healthz").status_code == 200


class TestListenAddress:
    @pytest.mark.parametrize(
        ("text", "host", "port"),
        [
            ("127.0.0.1:0", "127.0.0.1", 0),
            ("0.0.0.0:9877", "0.0.0.0", 9877),
            ("[::1]:9877", "::1", 9877),
            ("[::]:80", "::", 80),
        ],
    )
    def test_literals(self, text, host, port):
        parsed = parse_listen_address(text)
        assert (parsed.host, parsed.port) == (host, port)
        assert parsed.family == (socket.AF_INET6 if ":" in host else socket.AF_INET)

    def test_empty_host_is_every_interface(self):
        parsed = parse_listen_address(":9877")
        assert parsed in (
            ListenAddress(socket.AF_INET6, "::", 9877),
            ListenAddress(socket.AF_INET, "0.0.0.0", 9877),
        )
        if socket.has_dualstack_ipv6():
            assert parsed.family == socket.AF_INET6

    def test_name_is_resolved(self):
        parsed = parse_listen_address("localhost:9877")
        assert parsed.port == 9877 and parsed.host in ("127.0.0.1", "::1")

    @pytest.mark.parametrize(
        ("text", "why"),
        [
            ("9877", "HOST:PORT"),
            ("127.0.0.1", "HOST:PORT"),
            ("127.0.0.1:", "HOST:PORT"),
            ("host:http", "HOST:PORT"),
            (":70000", "HOST:PORT"),
            ("::1:9877", "brackets"),
        ],
    )
    def test_bad(self, text, why):
        with pytest.raises(ValueError, match=why):
            parse_listen_address(text)
