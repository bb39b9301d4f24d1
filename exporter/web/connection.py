"""One client connection, from accept to close, with every wait bounded.

What a client can make this server hold, and for how long:

- a connection: at most ``Limits.max_connections`` at once; the next one is answered 503
  (plain HTTP) or closed (TLS) at once and counted, never queued;
- a TLS handshake: ``handshake_timeout``;
- a request head: ``MAX_HEAD_BYTES`` bytes, arriving in full within ``head_timeout`` of the
  connection being ready (first request) or of its first byte (later requests); between
  requests a keep-alive connection may idle for ``idle_timeout``;
- a response: sent in slices of at most ``chunk_size`` bytes; the transport buffers at most
  about two slices, so a client that stops reading never gets a private copy of a body, only
  a reference to the shared, immutable one. Each slice must drain within ``stall_timeout`` and
  the whole response within ``write_timeout``, after which the connection is aborted and
  the reference dropped.

Small responses go out in one write (head and body together), and asyncio sets
``TCP_NODELAY`` on every TCP transport, so keep-alive replies never wait for a delayed ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from ipaddress import ip_address
from typing import cast

import structlog

from .http1 import BadRequest, Request, parse_head, read_head
from .tls import TLSSettings

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "Body",
    "Counters",
    "Limits",
    "Response",
    "Stream",
    "serve_connection",
]

_log = structlog.get_logger("exporter.web")
DEFAULT_MAX_CONNECTIONS = 2048  # idle ones cost a few KB each; leaves room above an attack of ~1,200
_SMALL = 16 * 1024  # below this, head and body leave in a single write


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on what one client can hold (see the module docstring); tests scale them down."""

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    handshake_timeout: float = 10.0
    head_timeout: float = 10.0
    # Longer than common scrape intervals (1m, 2m): a server closing an idle connection just as
    # Prometheus reuses it turns into a failed scrape. Clients that never send are cut at head_timeout.
    idle_timeout: float = 300.0
    write_timeout: float = 60.0
    stall_timeout: float = 10.0
    chunk_size: int = 64 * 1024
    max_discard: int = 64 * 1024  # request bodies up to this are read and dropped, keeping the connection


class Stream:
    """A body produced while it is sent: the first chunk (already produced, so a source failing
    at once still gets a clean 500) and the rest of the iterator. With a ``length`` it goes out
    under that Content-Length (and a source yielding another total resets the connection);
    without, chunked to HTTP/1.1 clients and up to the close to HTTP/1.0 ones."""

    __slots__ = ("first", "length", "rest")

    def __init__(
        self, first: bytes | memoryview | None, rest: Iterator[bytes | memoryview], length: int | None = None
    ) -> None:
        self.first = first
        self.rest = rest
        self.length = length

    def close(self) -> None:
        closer = getattr(self.rest, "close", None)
        if callable(closer):
            closer()


Body = bytes | Sequence[bytes | memoryview] | Stream
"""A response body: bytes, buffers sent in order under one length, or a ``Stream``."""


@dataclass(slots=True, kw_only=True)
class Response:
    status: int
    body: Body = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


@dataclass(slots=True)
class Counters:
    """Connection accounting; written on the server's loop thread only, read from anywhere."""

    open: int = 0
    rejected: int = 0
    shed: int = 0  # requests refused at once because too many bcrypt checks were waiting
    timeouts: dict[str, int] = field(default_factory=lambda: {"handshake": 0, "head": 0, "write": 0})


Handler = Callable[[Request], Awaitable[Response]]


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    handler: Handler,
    tls: TLSSettings | None,
    limits: Limits,
    counters: Counters,
    common_headers: Callable[[], Mapping[str, str]],
) -> None:
    """Serve requests on one accepted connection until it closes, errs or times out."""
    peer = str(writer.get_extra_info("peername"))
    if counters.open >= limits.max_connections:
        counters.rejected += 1
        _log.debug("web_connection_rejected", client=peer, open=counters.open)
        if tls is None:
            writer.write(_REJECTED)
        writer.close()
        return
    counters.open += 1
    writer.transport.set_write_buffer_limits(high=limits.chunk_size, low=limits.chunk_size // 4)
    conn = _Connection(
        reader, writer, handler=handler, limits=limits, counters=counters, common_headers=common_headers
    )
    try:
        if tls is not None and not await conn.handshake(tls, peer):
            return
        await conn.serve()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError) as exc:
        _log.debug("web_connection_error", client=peer, reason=type(exc).__name__)
    except Exception:
        # A body source failing after the head went out: the client must see a broken
        # body (reset, no final chunk), never a short one that looks complete.
        _log.error("web_response_failed", client=peer, exc_info=True)
        conn.timed_out = True
    finally:
        counters.open -= 1
        if conn.timed_out or writer.transport.get_write_buffer_size():
            _reset(writer)
        else:
            writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort with a TCP reset: a stalled reader's data goes now, from our buffers and the
    kernel's (a plain close would keep sending the kernel's few megabytes to it)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _san_allowed(cert: Mapping[str, object], allowed: frozenset[str]) -> bool:
    """exporter-toolkit ``VerifyPeerCertificate``: any DNS, IP, e-mail or URI SAN in the list."""
    entries = cast(tuple[tuple[str, str], ...], cert.get("subjectAltName", ()))
    for kind, value in entries:
        text = value.strip()
        if kind == "IP Address":
            try:
                text = str(ip_address(text))
            except ValueError:
                continue
        if text in allowed:
            return True
    return False


class _Connection:
    """The request loop of one connection and the writing of its responses."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        handler: Handler,
        limits: Limits,
        counters: Counters,
        common_headers: Callable[[], Mapping[str, str]],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.limits = limits
        self.counters = counters
        self.common_headers = common_headers
        self.timed_out = False

    async def handshake(self, tls: TLSSettings, peer: str) -> bool:
        writer = self.writer
        try:
            # Our own deadline: asyncio's ssl_handshake_timeout ends in a ConnectionAbortedError
            # that looks like any other failure (it stays set, a little later, as a backstop).
            async with asyncio.timeout(self.limits.handshake_timeout):
                await writer.start_tls(tls.context, ssl_handshake_timeout=self.limits.handshake_timeout + 1)
        except TimeoutError:
            self.counters.timeouts["handshake"] += 1
            _log.debug("tls_handshake_failed", client=peer, reason="timeout")
            writer.transport.abort()
            return False
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            _log.debug("tls_handshake_failed", client=peer, reason=str(exc))
            writer.transport.abort()
            return False
        if tls.client_allowed_sans is not None:
            conn = cast(ssl.SSLObject | None, writer.get_extra_info("ssl_object"))
            if conn is None or not _san_allowed(conn.getpeercert() or {}, tls.client_allowed_sans):
                _log.debug("tls_client_san_rejected", client=peer)
                writer.transport.abort()
                return False
        return True

    async def serve(self) -> None:
        first_request = True
        while await self.one_request(first_request):
            first_request = False

    async def one_request(self, first_request: bool) -> bool:
        """Read, answer; True when the connection stays open for another request."""
        loop = asyncio.get_running_loop()
        limits = self.limits
        started = loop.time()
        try:
            async with asyncio.timeout(limits.head_timeout if first_request else limits.idle_timeout):
                first = await self.reader.read(1)
        except TimeoutError:
            if first_request:
                self.counters.timeouts["head"] += 1
            return False  # idle or silent: close without a word, as Go does
        if not first:
            return False  # closed between requests: the normal end of a keep-alive connection
        head_deadline = (started if first_request else loop.time()) + limits.head_timeout
        try:
            async with asyncio.timeout_at(head_deadline):
                raw = await read_head(self.reader, first)
            request = parse_head(raw)
        except TimeoutError:
            self.counters.timeouts["head"] += 1
            await self.send_error(408, "request head not received in time")
            return False
        except BadRequest as exc:
            await self.send_error(exc.status, exc.message)
            return False
        keep = request.keep_alive and not request.chunked and await self.discard_body(request)
        response = await self.handler(request)
        keep = keep and not response.close
        try:
            async with asyncio.timeout(limits.write_timeout):
                await self.send(request, response, keep=keep)
        except TimeoutError:
            self.timed_out = True
            self.counters.timeouts["write"] += 1
            _log.debug("web_write_timeout", client=str(self.writer.get_extra_info("peername")))
            return False
        finally:
            if isinstance(response.body, Stream):
                response.body.close()
        _log.debug(
            "http_request",
            client=str(self.writer.get_extra_info("peername")),
            request=f"{request.method} {request.target[:200]}",
            code=str(response.status),
        )
        return keep

    async def discard_body(self, request: Request) -> bool:
        """Read and drop a small request body so the connection can carry the next request;
        False (close after replying) when it is too large or too slow."""
        length = request.content_length or 0
        if not length:
            return True
        if length > self.limits.max_discard:
            return False
        try:
            async with asyncio.timeout(self.limits.head_timeout):
                await self.reader.readexactly(length)
        except TimeoutError:
            self.counters.timeouts["head"] += 1
            return False
        return True

    async def send_error(self, status: int, message: str) -> None:
        """A short reply to a request we will not serve; the caller closes."""
        response = Response(status=status, body=f"{message}\n".encode(), close=True)
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            async with asyncio.timeout(self.limits.stall_timeout):
                await self.send(None, response, keep=False)

    async def send(self, request: Request | None, response: Response, *, keep: bool) -> None:
        body = response.body
        unknown = isinstance(body, Stream) and body.length is None
        chunked = unknown and request is not None and request.version >= (1, 1)
        if unknown and not chunked:
            keep = False  # HTTP/1.0: the end of the body is the end of the connection
        parts: Sequence[bytes | memoryview] = ()
        if isinstance(body, Stream):
            length = body.length
        else:
            parts = (body,) if isinstance(body, bytes | bytearray | memoryview) else body
            length = sum(memoryview(part).nbytes for part in parts)
        head = self.head(response, length=length, chunked=chunked, keep=keep)
        writer = self.writer
        if request is not None and request.method == "HEAD":
            writer.write(head)
        elif isinstance(body, Stream):
            writer.write(head)
            await self.send_stream(body, chunked=chunked)
        elif len(parts) == 1 and memoryview(parts[0]).nbytes <= _SMALL:
            writer.write(head + bytes(parts[0]))
        else:
            writer.write(head)
            for part in parts:
                await self.write(part)
        await self.drain()

    def head(self, response: Response, *, length: int | None, chunked: bool, keep: bool) -> bytes:
        lines = [f"HTTP/1.1 {response.status} {_phrase(response.status)}", f"Date: {formatdate(usegmt=True)}"]
        lines += [f"{name}: {value}" for name, value in self.common_headers().items()]
        lines.append(f"Content-Type: {response.content_type}")
        if length is not None:
            lines.append(f"Content-Length: {length}")
        elif chunked:
            lines.append("Transfer-Encoding: chunked")
        lines += [f"{name}: {value}" for name, value in response.headers]
        if not keep:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send_stream(self, body: Stream, *, chunked: bool) -> None:
        sent = 0
        for chunk in _stream_chunks(body):
            if chunked:
                self.writer.write(b"%x\r\n" % len(chunk))
            await self.write(chunk)
            sent += len(chunk)
            if chunked:
                self.writer.write(b"\r\n")
        if chunked:
            self.writer.write(b"0\r\n\r\n")
        elif body.length is not None and sent != body.length:
            raise RuntimeError(f"body source yielded {sent} bytes, announced {body.length}")

    async def write(self, data: bytes | memoryview) -> None:
        """Hand ``data`` to the transport one slice at a time, waiting whenever its buffer is full."""
        view = memoryview(data).cast("B")
        size = self.limits.chunk_size
        for start in range(0, len(view), size):
            self.writer.write(view[start : start + size])
            if self.writer.transport.get_write_buffer_size() > size:
                await self.drain()

    async def drain(self) -> None:
        async with asyncio.timeout(self.limits.stall_timeout):
            await self.writer.drain()


def _stream_chunks(body: Stream) -> Iterable[bytes | memoryview]:
    if body.first:
        yield body.first
    for chunk in body.rest:
        if chunk:
            yield chunk


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


_REJECTED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 26\r\nConnection: close\r\n\r\ntoo many open connections\n"
)
