"""Escaping, headers, and the one path from deflated pieces to gzip and plain bodies."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.metrics.exposition import (
    CHUNK_LIMIT,
    Exposition,
    crc32_combine,
    deflate_block,
    escape_help,
    escape_label_value,
    header,
    label_pairs,
    sample_line,
)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),  # fast path: returned as is
        ('say "hi"', 'say \\"hi\\"'),
        ("C:\\path", "C:\\\\path"),
        ("two\nlines", "two\\nlines"),
        ('\\"\n', '\\\\\\"\\n'),  # all three, backslash first so nothing is escaped twice
        ("直推流 🎥", "直推流 🎥"),  # non-ASCII is written as UTF-8, unescaped
    ],
)
def test_escape_label_value(raw: str, escaped: str) -> None:
    assert escape_label_value(raw) == escaped


def test_fast_path_returns_same_object() -> None:
    value = "room_1_main"
    assert escape_label_value(value) is value


def test_help_keeps_quotes() -> None:
    assert escape_help('a "b"\\c\nd') == 'a "b"\\\\c\\nd'


def test_header_sample_and_labels() -> None:
    assert header("m", "line\nbreak", "counter") == b"# HELP m line\\nbreak\n# TYPE m counter\n"
    labels = label_pairs(("a", "b"), ('x"', "y"))
    assert labels == 'a="x\\"",b="y"'
    assert sample_line("m", labels, 2.0) == b'm{a="x\\"",b="y"} 2.0\n'
    assert sample_line("m", "", float("inf")) == b"m +Inf\n"


def _exposition(parts: list[bytes]) -> Exposition:
    body = b"".join(parts)
    return Exposition(1, tuple(deflate_block(p) for p in parts), zlib.crc32(body), len(body))


@given(st.lists(st.binary(max_size=300), max_size=6), st.binary(max_size=200))
def test_pieces_and_tail_make_one_gzip_member(parts: list[bytes], tail: bytes) -> None:
    body = b"".join(parts)
    buffers = _exposition(parts).gzip(tail)
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert decoder.decompress(b"".join(buffers)) == body + tail
    # One member: httpx and curl 7.88 stop after the first member of a concatenated body.
    assert decoder.eof and decoder.unused_data == b""
    assert gzip.decompress(b"".join(_exposition(parts).gzip(b""))) == body


@given(st.lists(st.binary(max_size=300), max_size=6), st.binary(max_size=200))
def test_plain_is_the_inflated_pieces_then_the_tail(parts: list[bytes], tail: bytes) -> None:
    exposition = _exposition(parts)
    chunks = exposition.plain(tail)
    assert b"".join(chunks) == b"".join(parts) + tail
    assert b"".join(chunks) == b"".join(parts) + tail  # iterable again: each pass inflates anew
    assert chunks.size == len(b"".join(parts) + tail)
    assert exposition.text() == b"".join(parts)


def test_plain_chunks_are_bounded_even_for_highly_compressible_text() -> None:
    # 8 MB of one repeated line deflates ~1000:1: a chunk per compressed feed would be huge.
    line = b'tencent_live_stream_online{account="a",region="r",stream="s"} 1.0\n'
    parts = [line * 60_000, b"x" * 3_000_000, line * 70_000]
    chunks = list(_exposition(parts).plain(b"# tail\n" * 20_000))
    assert max(map(len, chunks)) <= CHUNK_LIMIT
    assert b"".join(chunks) == b"".join(parts) + b"# tail\n" * 20_000


@given(st.binary(max_size=2000), st.binary(max_size=2000))
def test_crc32_combine_matches_zlib(first: bytes, second: bytes) -> None:
    combined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(first + second)


def test_crc32_combine_large_length() -> None:
    # Lengths far beyond the examples above exercise every power-of-two table entry used.
    second = bytes(range(256)) * 40_000  # ~10 MB
    first = b"prefix"
    assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)
