"""Prometheus text format 0.0.4 written by hand: escaping, float text, headers, gzip members.

The rules are client_python's (``generate_latest``, ``floatToGoString``) so a differential test
can hold us to them; the speed tricks are kube-state-metrics' (``escapeString``, ``writeFloat``):
escape only when a special character is present, special-case the common values, precompute
headers once. 100,000 streams times eight families is 800,000 lines, so these functions are
the inner loop of every re-render.

Compressed bodies: the store keeps its text only deflated, as a sequence of pieces that
change independently. Each piece is deflated on its own with a sync flush (byte-aligned, no
final bit, no back-references across pieces), so the concatenation of the pieces is one raw
deflate stream, the technique pigz uses. :class:`Exposition` is one immutable generation of
those pieces; it is the one path to both bodies: gzip is the pieces framed as one gzip member
(nothing recompressed or copied), plain text is the same stream inflated in bounded chunks
while it is being sent, so no scrape ever holds the whole plain body.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "CHUNK_LIMIT",
    "EMPTY",
    "Exposition",
    "PlainChunks",
    "crc32_combine",
    "deflate_block",
    "escape_help",
    "escape_label_value",
    "go_float",
    "header",
    "label_pairs",
    "sample_line",
]

# Level 1: at 100k streams a changed region's 20 MB deflate in half the time of level 6 and
# only ~10% larger (the text is repetitive); this runs after every poll that changed text.
_GZIP_LEVEL = 1
# magic, CM=deflate, FLG=0, MTIME=0 (reproducible bodies), XFL=0, OS=255 (unknown).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# An empty final fixed-Huffman block: what zlib emits for Z_FINISH with no pending input.
_DEFLATE_END = b"\x03\x00"
_SIZE_MASK = 0xFFFFFFFF

# -0.0 == 0.0, so 0.0 is not in this table (client_python writes "-0.0" for it).
_COMMON_FLOATS = {1.0: "1.0", 2.0: "2.0", 3.0: "3.0"}
# client_python switches to exponent form when more than this many digits precede the dot.
_MAX_PLAIN_DIGITS = 6


def escape_label_value(value: str) -> str:
    """Escape backslash, newline and double quote; the common clean value is returned as is."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def escape_help(text: str) -> str:
    """HELP escapes backslash and newline only (a double quote is literal there)."""
    if "\\" in text or "\n" in text:
        return text.replace("\\", "\\\\").replace("\n", "\\n")
    return text


def go_float(value: float) -> str:
    """Float text exactly as client_python's ``floatToGoString`` writes it.

    ``1`` is ``1.0``, infinities are ``+Inf``/``-Inf``, large positive numbers switch to Go's
    exponent form (``1.5302988e+09``, trailing zeros trimmed).
    """
    common = _COMMON_FLOATS.get(value)
    if common is not None:
        return common
    if value == 0.0 and math.copysign(1.0, value) > 0:
        return "0.0"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(float(value))
    dot = text.find(".")
    if value > 0 and dot > _MAX_PLAIN_DIGITS:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def header(name: str, help_text: str, metric_type: str) -> bytes:
    """``# HELP`` and ``# TYPE`` lines of one family; computed once per family, never per scrape."""
    return f"# HELP {name} {escape_help(help_text)}\n# TYPE {name} {metric_type}\n".encode()


def label_pairs(names: Sequence[str], values: Sequence[str]) -> str:
    """``a="x",b="y"`` with escaped values; callers join it to other pairs with a comma."""
    return ",".join(
        f'{name}="{escape_label_value(value)}"' for name, value in zip(names, values, strict=True)
    )


def sample_line(name: str, labels: str, value: float) -> bytes:
    """One sample line; ``labels`` is the already escaped text between the braces."""
    if labels:
        return f"{name}{{{labels}}} {go_float(value)}\n".encode()
    return f"{name} {go_float(value)}\n".encode()


def deflate_block(data: bytes | memoryview) -> bytes:
    """Raw deflate of one piece, sync-flushed so pieces concatenate into one deflate stream."""
    if not data:
        return b""
    compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


@dataclass(frozen=True, slots=True)
class Exposition:
    """One generation of the store's text, as deflated pieces; shared, never mutated.

    ``pieces`` are :func:`deflate_block` outputs of consecutive parts of the text (unchanged
    ones are the very objects of the previous generation); ``crc``/``size`` are the CRC-32 and
    length of the whole text. A scrape in flight holds a reference to this value, so a slow
    client pins at most the pieces that changed since, never a private copy.
    """

    generation: int
    pieces: tuple[bytes, ...]
    crc: int
    size: int

    def gzip(self, tail: bytes) -> tuple[bytes, ...]:
        """The text, then ``tail`` (the health families), as ONE gzip member, as buffers in order.

        One member, not two concatenated: httpx and curl 7.88 decode only the first member.
        Only ``tail`` is compressed here; the pieces are sent as they are.
        """
        return (
            _GZIP_HEADER,
            *self.pieces,
            deflate_block(tail) + _DEFLATE_END,
            _trailer(zlib.crc32(tail, self.crc), self.size + len(tail)),
        )

    def plain(self, tail: bytes) -> PlainChunks:
        """The text, then ``tail``, inflated while it is sent: chunks of at most :data:`CHUNK_LIMIT`."""
        return PlainChunks(self.pieces, tail, self.size + len(tail))

    def text(self) -> bytes:
        """The whole text at once: for tests and tools, never for serving (it is ~100 MB at 100k)."""
        return b"".join(PlainChunks(self.pieces, b"", self.size))


#: The generation before anything was built: no text at all.
EMPTY = Exposition(0, (), 0, 0)

#: Largest chunk :class:`PlainChunks` yields (bytes).
CHUNK_LIMIT = 64 * 1024
# Compressed input fed to the inflater per call: small enough that the unconsumed tail zlib
# copies back on every bounded call stays small, large enough to keep calls few.
_FEED = 8 * 1024


class PlainChunks:
    """The plain body, inflated on iteration in chunks of at most :data:`CHUNK_LIMIT` bytes.

    Iterable any number of times (each pass inflates anew) and never a sequence: the server
    sends it with chunked transfer, or with ``Content-Length: size`` since the length is known.
    Holding one costs a reference to the pieces, not the text.
    """

    __slots__ = ("_pieces", "_tail", "size")

    def __init__(self, pieces: Sequence[bytes], tail: bytes, size: int) -> None:
        self._pieces = pieces
        self._tail = tail
        self.size = size  # total bytes the iteration yields

    def __iter__(self) -> Iterator[bytes]:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        buffer = bytearray()
        half = CHUNK_LIMIT // 2
        for piece in self._pieces:
            view = memoryview(piece)
            for start in range(0, len(view), _FEED):
                data: bytes | memoryview = view[start : start + _FEED]
                while data:
                    buffer += inflater.decompress(data, half)
                    data = inflater.unconsumed_tail
                    if len(buffer) >= half:  # each chunk: < half before, <= half added
                        yield bytes(buffer)
                        buffer.clear()
        buffer += inflater.flush()  # output zlib may still hold after a bounded call
        buffer += self._tail
        for start in range(0, len(buffer), CHUNK_LIMIT):
            yield bytes(buffer[start : start + CHUNK_LIMIT])


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of ``a + b`` from ``crc32(a)``, ``crc32(b)`` and ``len(b)`` (zlib's ``crc32_combine``).

    Python's zlib does not expose it. It lets a body's CRC come from cached per-block CRCs
    instead of a pass over 100 MB on every change: about 30 polynomial products per block.
    """
    return _multmodp(_x2nmodp(length2, 3), crc1 & _SIZE_MASK) ^ (crc2 & _SIZE_MASK)


def _multmodp(a: int, b: int) -> int:
    """Product of two polynomials modulo the CRC-32 polynomial (reflected bit order)."""
    mask = 1 << 31
    product = 0
    while True:
        if a & mask:
            product ^= b
            if not a & (mask - 1):
                return product
        mask >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1


@lru_cache(maxsize=1024)
def _x2nmodp(n: int, k: int) -> int:
    """x^(n * 2^k) modulo the CRC-32 polynomial (cached: unchanged pieces keep their lengths)."""
    product = 1 << 31  # x^0
    while n:
        if n & 1:
            product = _multmodp(_X2N[k & 31], product)
        n >>= 1
        k += 1
    return product


def _x2n_table() -> tuple[int, ...]:
    table = [1 << 30]  # x^1
    for _ in range(31):
        table.append(_multmodp(table[-1], table[-1]))
    return tuple(table)


_CRC_POLY = 0xEDB88320
_X2N = _x2n_table()


def _trailer(crc: int, size: int) -> bytes:
    return struct.pack("<II", crc & _SIZE_MASK, size & _SIZE_MASK)
