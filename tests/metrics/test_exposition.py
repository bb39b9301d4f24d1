"""Escaping, headers and the block-wise gzip helpers."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.metrics.exposition import (
    crc32_combine,
    deflate_block,
    escape_help,
    escape_label_value,
    gzip_append,
    gzip_member,
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


@given(st.lists(st.binary(max_size=300), max_size=6), st.binary(max_size=200))
def test_blocks_and_append_make_one_member(blocks: list[bytes], extra: bytes) -> None:
    body = b"".join(blocks)
    member = gzip_member([deflate_block(b) for b in blocks], zlib.crc32(body), len(body))
    assert gzip.decompress(member) == body
    combined = gzip_append(member, zlib.crc32(body), len(body), extra)
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert decoder.decompress(combined) == body + extra
    assert decoder.eof and decoder.unused_data == b""


@given(st.binary(max_size=2000), st.binary(max_size=2000))
def test_crc32_combine_matches_zlib(first: bytes, second: bytes) -> None:
    combined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(first + second)


def test_crc32_combine_large_length() -> None:
    # Lengths far beyond the examples above exercise every power-of-two table entry used.
    second = bytes(range(256)) * 40_000  # ~10 MB
    first = b"prefix"
    assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)
