"""Bodies of unknown length (the store's chunk iterables) go out chunked; errors stay clean."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx

from exporter.web.server import WebSources

CHUNKS = [b"a 1\n" * 1000, b"", b"b 2\n" * 30_000, b"c 3\n"]


def chunks(_gz: bool) -> Iterator[bytes]:
    yield from CHUNKS


def source(metrics) -> WebSources:  # type: ignore[no-untyped-def]
    return WebSources(metrics=metrics, events=list, ready=lambda: True, statuses=list)


def raw(port: int, request: bytes) -> bytes:
    """Everything the server sends until it closes or resets the connection."""
    out = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(1 << 16):
                out += chunk
        except ConnectionResetError:
            pass
    return bytes(out)


def test_http11_gets_chunked(serve):
    server = serve(source(chunks))
    with httpx.Client() as client:
        r = client.get(f"{server.url}/metrics", headers={"Accept-Encoding": "identity"})
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in r.headers
        assert r.content == b"".join(CHUNKS)
        assert client.get(f"{server.url}/healthz").status_code == 200  # same connection goes on


def test_http10_gets_the_body_up_to_close(serve):
    server = serve(source(chunks))
    reply = raw(server.port, b"GET /metrics HTTP/1.0\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    assert body == b"".join(CHUNKS)


def test_head_sends_no_body_and_does_not_iterate(serve):
    pulled: list[int] = []

    def counting(_gz: bool) -> Iterator[bytes]:
        for i, chunk in enumerate(CHUNKS):
            pulled.append(i)
            yield chunk

    server = serve(source(counting))
    r = httpx.head(f"{server.url}/metrics")
    assert r.status_code == 200 and r.content == b""
    assert pulled == [0]  # only the first chunk, produced to catch a failing source


def test_a_source_failing_at_once_is_a_clean_500(serve):
    def broken(_gz: bool) -> Iterator[bytes]:
        raise RuntimeError("nope")
        yield b""  # pragma: no cover

    server = serve(source(broken))
    assert httpx.get(f"{server.url}/metrics").status_code == 500


def test_a_source_failing_midway_cuts_the_connection(serve):
    def midway(_gz: bool) -> Iterator[bytes]:
        yield b"a 1\n"
        raise RuntimeError("store went away")

    server = serve(source(midway))
    reply = raw(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply == b"" or reply.startswith(b"HTTP/1.1 200 ")  # a reset may discard what was sent
    assert not reply.endswith(b"0\r\n\r\n")  # no terminating chunk: the client sees a broken body
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_pipelined_requests_are_answered_in_order(serve):
    server = serve()
    reply = raw(
        server.port,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert reply.index(b"HTTP/1.1 200 ") < reply.index(b"HTTP/1.1 404 ")


class Sized:
    """Like the store's PlainChunks: iterable any number of times, total known up front."""

    def __init__(self, chunks: list[bytes], size: int | None = None) -> None:
        self.chunks = chunks
        self.size = sum(map(len, chunks)) if size is None else size

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)


def test_a_sized_iterable_goes_out_under_its_length(serve):
    server = serve(source(lambda _gz: Sized(CHUNKS)))
    with httpx.Client() as client:
        r = client.get(f"{server.url}/metrics", headers={"Accept-Encoding": "identity"})
        head = client.head(f"{server.url}/metrics", headers={"Accept-Encoding": "identity"})
    assert "Transfer-Encoding" not in r.headers
    assert int(r.headers["Content-Length"]) == len(r.content) == sum(map(len, CHUNKS))
    assert head.headers["Content-Length"] == r.headers["Content-Length"]


def test_a_sized_iterable_that_lies_resets(serve):
    server = serve(source(lambda _gz: Sized(CHUNKS, size=sum(map(len, CHUNKS)) + 10)))
    reply = raw(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(reply.partition(b"\r\n\r\n")[2]) < sum(map(len, CHUNKS)) + 10
    assert httpx.get(f"{server.url}/healthz").status_code == 200
