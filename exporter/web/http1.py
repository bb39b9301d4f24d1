"""HTTP/1.x request heads: read within a deadline and a byte cap, parse strictly.

Only what an exporter needs: GET/HEAD scrapes and a bodiless ``POST /-/reload``. Request
bodies are never read (at most a small one is discarded to keep the connection), so
anything that could make this server and a proxy in front of it disagree about where a
request ends is refused rather than interpreted: a repeated or non-numeric
``Content-Length``, ``Content-Length`` together with ``Transfer-Encoding``, a transfer coding
other than ``chunked``, obsolete line folding, whitespace before a colon, control bytes in a
value, a missing or repeated ``Host`` in HTTP/1.1 (RFC 9112 sections 3.2, 5, 6).

The head is bounded in time and bytes before anything else happens (no auth, no route):
``MAX_HEAD_BYTES`` for the request line and all header lines together, ``MAX_HEADERS``
lines; the deadline is enforced by the caller around :func:`read_head`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

__all__ = [
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "BadRequest",
    "Request",
    "parse_head",
    "read_head",
]

MAX_HEAD_BYTES = 32 * 1024  # a scrape's head is ~200 bytes; nginx's default total is 32 KiB too
MAX_HEADERS = 100

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f]")
_VERSIONS = {b"HTTP/1.1": (1, 1), b"HTTP/1.0": (1, 0)}


class BadRequest(Exception):
    """A head we will not serve; ``status`` is the reply (400, 431, 501, 505) before closing."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A parsed request head; header names are lower-cased, values stripped, order kept."""

    method: str
    target: str
    version: tuple[int, int]
    headers: tuple[tuple[str, str], ...]
    content_length: int | None
    chunked: bool

    def header(self, name: str, default: str = "") -> str:
        """The first value of a header (names are case-insensitive)."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return default

    @property
    def keep_alive(self) -> bool:
        """HTTP/1.1 persists unless ``Connection: close``; 1.0 only with ``keep-alive``."""
        tokens = {t.strip().lower() for k, v in self.headers if k == "connection" for t in v.split(",")}
        if self.version >= (1, 1):
            return "close" not in tokens
        return "keep-alive" in tokens

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


async def read_head(reader: asyncio.StreamReader, first: bytes = b"") -> bytes:
    """The raw head up to and including the empty line, at most ``MAX_HEAD_BYTES``.

    ``first`` is a byte the caller already read (to tell an idle keep-alive connection from
    one that started a request). Empty lines before the request line are skipped (RFC 9112
    section 2.2). The reader's ``limit`` must be at least ``MAX_HEAD_BYTES``.

    Raises:
        BadRequest: 431 when the head is too large or has too many lines.
        asyncio.IncompleteReadError: the client closed the connection mid-head.
    """
    lines: list[bytes] = []
    total = 0
    pending = first
    while True:
        if pending == b"\n":
            line = pending
        else:
            try:
                line = pending + await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                raise BadRequest(431, "request header fields too large") from None
        pending = b""
        total += len(line)
        if total > MAX_HEAD_BYTES:
            raise BadRequest(431, "request header fields too large")
        if line in (b"\r\n", b"\n"):
            if lines:
                return b"".join(lines)
            continue  # leading empty line
        lines.append(line)
        if len(lines) > MAX_HEADERS + 1:
            raise BadRequest(431, "too many header fields")


def parse_head(head: bytes) -> Request:
    """Parse a head from :func:`read_head` (without its final empty line).

    Raises:
        BadRequest: 400 malformed or ambiguous, 501 unsupported transfer coding,
            505 unsupported HTTP version.
    """
    raw_lines = head.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    lines = [line[:-1] if line.endswith(b"\r") else line for line in raw_lines]
    if not lines:
        raise BadRequest(400, "empty request")
    method, target, version = _request_line(lines[0])
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise BadRequest(400, "obsolete line folding")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise BadRequest(400, "malformed header field")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise BadRequest(400, "control character in a header value")
        headers.append((name.decode("ascii").lower(), value.decode("latin-1")))
    content_length, chunked = _framing(headers, version)
    hosts = [value for name, value in headers if name == "host"]
    if len(hosts) > 1 or (version >= (1, 1) and not hosts):
        raise BadRequest(400, "exactly one Host header is required")
    return Request(
        method=method,
        target=target,
        version=version,
        headers=tuple(headers),
        content_length=content_length,
        chunked=chunked,
    )


def _request_line(line: bytes) -> tuple[str, str, tuple[int, int]]:
    parts = line.split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1] or _BAD_TARGET.search(parts[1]):
        raise BadRequest(400, "malformed request line")
    version = _VERSIONS.get(parts[2])
    if version is None:
        if re.fullmatch(rb"HTTP/\d\.\d", parts[2]):
            raise BadRequest(505, "HTTP version not supported")
        raise BadRequest(400, "malformed request line")
    try:
        target = parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest(400, "non-ASCII request target") from None
    return parts[0].decode("ascii"), target, version


def _framing(headers: list[tuple[str, str]], version: tuple[int, int]) -> tuple[int | None, bool]:
    """(Content-Length, chunked) or BadRequest for anything two parsers could read differently."""
    lengths = [value for name, value in headers if name == "content-length"]
    codings = [value for name, value in headers if name == "transfer-encoding"]
    if len(lengths) > 1 or any("," in value for value in lengths):
        raise BadRequest(400, "duplicate Content-Length")
    content_length: int | None = None
    if lengths:
        if not lengths[0].isdigit() or not lengths[0].isascii() or len(lengths[0]) > 18:
            raise BadRequest(400, "malformed Content-Length")
        content_length = int(lengths[0])
    if not codings:
        return content_length, False
    if lengths:
        raise BadRequest(400, "both Content-Length and Transfer-Encoding")
    if version < (1, 1):
        raise BadRequest(400, "Transfer-Encoding in HTTP/1.0")
    tokens = [t.strip().lower() for value in codings for t in value.split(",")]
    if tokens != ["chunked"]:
        raise BadRequest(501, "unsupported Transfer-Encoding")
    return None, True
