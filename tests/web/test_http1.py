"""Request heads: what is accepted, and what is refused as ambiguous (RFC 9112)."""

from __future__ import annotations

import pytest

from exporter.web.http1 import BadRequest, parse_head


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


class TestAccepted:
    def test_simple_get(self):
        request = parse_head(head("GET /metrics?x=1 HTTP/1.1", "Host: a", "Accept-Encoding:  gzip "))
        assert (request.method, request.target, request.version) == ("GET", "/metrics?x=1", (1, 1))
        assert request.header("ACCEPT-ENCODING") == "gzip"  # names case-insensitive, values trimmed
        assert request.keep_alive and not request.has_body

    def test_bare_lf_line_endings(self):
        assert parse_head(b"GET / HTTP/1.1\nHost: a\n").target == "/"

    def test_http10_needs_no_host_and_closes_by_default(self):
        request = parse_head(head("GET / HTTP/1.0"))
        assert request.version == (1, 0) and not request.keep_alive
        assert parse_head(head("GET / HTTP/1.0", "Connection: Keep-Alive")).keep_alive

    def test_connection_close(self):
        assert not parse_head(head("GET / HTTP/1.1", "Host: a", "Connection: foo, close")).keep_alive

    def test_one_content_length_and_chunked(self):
        assert parse_head(head("POST / HTTP/1.1", "Host: a", "Content-Length: 12")).content_length == 12
        assert parse_head(head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: Chunked")).chunked


class TestRefused:
    @pytest.mark.parametrize(
        ("lines", "status"),
        [
            (("GET /",), 400),
            (("GET  / HTTP/1.1", "Host: a"), 400),  # two spaces
            (("GET / HTTP/1.1 x", "Host: a"), 400),
            (("G(T / HTTP/1.1", "Host: a"), 400),
            (("GET /\x01 HTTP/1.1", "Host: a"), 400),
            (("GET / HTTP/2.0", "Host: a"), 505),
            (("GET / HTTP/0.9",), 505),
            (("GET / HTTPS/1.1", "Host: a"), 400),
            (("GET / HTTP/1.1",), 400),  # no Host
            (("GET / HTTP/1.1", "Host: a", "Host: b"), 400),
            (("GET / HTTP/1.1", "Host: a", " folded"), 400),
            (("GET / HTTP/1.1", "Host: a", "No colon"), 400),
            (("GET / HTTP/1.1", "Host: a", ": empty name"), 400),
            (("GET / HTTP/1.1", "Host: a", "X: a\x00b"), 400),
            (("GET / HTTP/1.1", "Host: a", "Content-Length: 1", "Content-Length: 1"), 400),
            (("GET / HTTP/1.1", "Host: a", "Content-Length: 1,2"), 400),
            (("GET / HTTP/1.1", "Host: a", "Content-Length: -1"), 400),
            (("GET / HTTP/1.1", "Host: a", "Content-Length: \xb2"), 400),  # isdigit(), not ASCII
            (("GET / HTTP/1.1", "Host: a", "Content-Length: 99999999999999999999"), 400),
            (("GET / HTTP/1.1", "Host: a", "Content-Length: 3", "Transfer-Encoding: chunked"), 400),
            (("GET / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip, chunked"), 501),
            (("GET / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), 501),
            (("GET / HTTP/1.0", "Transfer-Encoding: chunked"), 400),
        ],
    )
    def test_status(self, lines, status):
        with pytest.raises(BadRequest) as info:
            parse_head(head(*lines))
        assert info.value.status == status
