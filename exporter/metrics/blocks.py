"""Where a region's exposition text lives: streams' rendered lines and the body spans they occupy.

The store's memory model (see :mod:`exporter.metrics.store`): a stream's freshly rendered
lines wait in :class:`Entry` until the next body build copies them into the body; after that
they exist only there, located by the entry's slot and the region's per-family line lengths.
:meth:`RegionBlocks.parts` then describes a region's block of the next body as slices of the
current body plus the few new lines, so a rebuild costs Python work per changed stream only.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any

from exporter.metrics.exposition import deflate_block, escape_label_value, header, label_pairs, sample_line
from exporter.metrics.families import REGION_FAMILIES, STREAM_FAMILIES, FamilySpec, RegionFacts, StreamFacts
from exporter.model import RegionKey, Stream

__all__ = [
    "HEADERS",
    "HEADERS_DEFLATED",
    "REGION_COUNTERS",
    "SPECS",
    "STREAM_COUNTERS",
    "Entry",
    "RegionBlocks",
    "render_families",
]

_R = len(REGION_FAMILIES)
#: Body order: region families, then per-stream families.
SPECS: tuple[FamilySpec[Any], ...] = (*REGION_FAMILIES, *STREAM_FAMILIES)
HEADERS: tuple[bytes, ...] = tuple(header(s.name, s.help, s.type) for s in SPECS)
#: Each family header deflated once, with its CRC-32.
HEADERS_DEFLATED: tuple[tuple[bytes, int], ...] = tuple((deflate_block(h), zlib.crc32(h)) for h in HEADERS)
_NO_LINES: tuple[bytes, ...] = ()
STREAM_COUNTERS = 3  # switchovers, joins, losses
#: Region counters by name; "failover"/"handover" are region_switchovers_total{reason}.
REGION_COUNTERS = (
    "failover",
    "handover",
    "publisher_joins",
    "publisher_losses",
    "stream_starts",
    "stream_drops",
)


def render_families(specs: Sequence[FamilySpec[Any]], facts: object, scope: str) -> tuple[bytes, ...]:
    """One chunk per family: every sample line of ``facts`` in that family."""
    chunks = []
    for spec in specs:
        lines = []
        for values, value in spec.samples(facts):
            labels = scope + "," + label_pairs(spec.labels, values) if values else scope
            lines.append(sample_line(spec.name, labels, value))
        chunks.append(lines[0] if len(lines) == 1 else b"".join(lines))
    return tuple(chunks)


class Entry:
    """One exported stream: last seen version, counters, and where its lines are.

    ``lines`` holds freshly rendered lines until the next body build copies them into the body;
    from then on the lines live only there, found by ``slot`` (position in the region's block
    order) and the region's per-family line lengths. Keeping them twice would cost as much
    memory as the body itself.
    """

    __slots__ = ("dropped_at", "joins", "lines", "losses", "slot", "stream", "switchovers")

    def __init__(self, stream: Stream, counters: Sequence[int], slot: int) -> None:
        self.stream = stream
        self.switchovers, self.joins, self.losses = counters
        self.dropped_at: float | None = None
        self.lines: tuple[bytes, ...] | None = None
        self.slot = slot


class RegionBlocks:
    """Everything the store holds for one (account, region)."""

    __slots__ = (
        "built",
        "counters",
        "deflated",
        "dirty",
        "dropped",
        "entries",
        "facts",
        "lengths",
        "lines",
        "order",
        "pending",
        "removed",
        "restored_streams",
        "scope",
        "spans",
    )

    def __init__(
        self, key: RegionKey, counters: Mapping[str, int], restored_streams: dict[str, list[int]]
    ) -> None:
        self.scope = f'account="{escape_label_value(key.account)}",region="{escape_label_value(key.region)}"'
        self.entries: dict[str, Entry] = {}
        self.dropped: dict[str, float] = {}  # name -> taken_at of the confirming snapshot
        self.counters: dict[str, int] = {name: int(counters.get(name, 0)) for name in REGION_COUNTERS}
        self.restored_streams = restored_streams
        self.facts: RegionFacts | None = None
        self.lines: tuple[bytes, ...] = _NO_LINES  # the region families' own lines
        self.dirty = True
        # Block layout as of the last body build: entries in block order, and per stream
        # family the byte length of each entry's line(s) there.
        self.order: list[Entry] = []
        self.built = 0
        self.lengths: list[array[int]] = [array("I") for _ in STREAM_FAMILIES]
        self.pending: set[int] = set()  # slots rendered since the last build (new ones included)
        self.removed: set[int] = set()  # slots expired since the last build
        # Where each family's block sits in the store's current body; None until first built.
        self.spans: list[tuple[int, int]] | None = None
        # Per family: this region's block deflated, and its CRC-32; None when it changed.
        self.deflated: list[tuple[bytes, int] | None] = [None] * len(SPECS)

    def add(self, name: str, stream: Stream) -> Entry:
        counters = self.restored_streams.pop(name, None)
        entry = Entry(stream, counters if counters is not None else (0,) * STREAM_COUNTERS, len(self.order))
        self.order.append(entry)
        self.entries[name] = entry
        return entry

    def render(self, entry: Entry) -> None:
        facts = StreamFacts(
            stream=entry.stream,
            online=entry.dropped_at is None,
            switchovers=entry.switchovers,
            joins=entry.joins,
            losses=entry.losses,
        )
        scope = f'{self.scope},stream="{escape_label_value(entry.stream.name)}"'
        entry.lines = render_families(STREAM_FAMILIES, facts, scope)
        self.pending.add(entry.slot)

    def remove(self, name: str) -> None:
        entry = self.entries.pop(name)
        entry.lines = None
        self.removed.add(entry.slot)

    def parts(self, family: int, old: memoryview) -> tuple[list[bytes | memoryview], int]:
        """The pieces of this region's block of ``family`` in the next body, and its length.

        Unchanged runs of lines are slices of the current body; only rendered lines are new.
        The Python work is proportional to the changed streams; the prefix sum runs in C.
        """
        if family < _R:
            line = self.lines[family]
            return [line], len(line)
        index = family - _R
        if not self.built:  # first build: every line is freshly rendered
            fresh = [entry.lines[index] for entry in self.order if entry.lines is not None]
            return list(fresh), sum(map(len, fresh))
        base = self.spans[family][0] if self.spans is not None else 0
        offsets = list(accumulate(self.lengths[index], initial=0))
        parts: list[bytes | memoryview] = []
        copied = 0  # end of the last copied old line, relative to the old block
        size = 0
        tail_done = False
        for slot in sorted(self.pending | self.removed):
            if slot >= self.built and not tail_done:
                size += self._copy(parts, old, base + copied, base + offsets[-1])
                tail_done = True
            if slot < self.built:
                size += self._copy(parts, old, base + copied, base + offsets[slot])
                copied = offsets[slot + 1]
            if slot in self.removed:
                continue
            lines = self.order[slot].lines
            assert lines is not None  # pending slots hold rendered lines
            parts.append(lines[index])
            size += len(lines[index])
        if not tail_done:
            size += self._copy(parts, old, base + copied, base + offsets[-1])
        return parts, size

    @staticmethod
    def _copy(parts: list[bytes | memoryview], old: memoryview, start: int, end: int) -> int:
        if end > start:
            parts.append(old[start:end])
        return end - start

    def settle(self) -> None:
        """After a body build: new line lengths, compacted order, rendered lines dropped."""
        pending, removed = self.pending, self.removed
        for index, lengths in enumerate(self.lengths):
            lengths.extend([0] * (len(self.order) - self.built))
            for slot in pending:
                lines = self.order[slot].lines
                if lines is not None:
                    lengths[slot] = len(lines[index])
            if removed:
                self.lengths[index] = array("I", (n for slot, n in enumerate(lengths) if slot not in removed))
        for slot in pending:
            self.order[slot].lines = None
        if removed:
            self.order = [entry for slot, entry in enumerate(self.order) if slot not in removed]
            for slot, entry in enumerate(self.order):
                entry.slot = slot
        self.built = len(self.order)
        pending.clear()
        removed.clear()
        self.dirty = False
