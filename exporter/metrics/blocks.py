"""One region's share of ``/metrics``: its streams, counters, aggregates and compressed blocks.

:class:`RegionBlocks` owns every invariant of one (account, region); the store calls only its
methods, under the store's lock, and assembles the regions' blocks into a generation.

Layout: the body is grouped by family (HELP/TYPE once, then every region's block of that
family). A region's block of a region family is its own line(s); its block of a stream family
is its entries' lines in slot order.

Memory: text lives only deflated. Each block is one piece (:func:`deflate_block`) with its
CRC-32 and length. A change only marks a stream's slot pending; :meth:`RegionBlocks.build`
then goes family by family: it inflates the old block, copies the unchanged runs of lines by
slice (found through per-family line lengths, 4 bytes per stream and family), renders the
pending streams' lines of that family in between, and deflates the result. So no plain text
outlives a build, and a build holds one family's text of one region at a time (rendering every
changed stream's lines ahead of the build left their freed space scattered in the heap).
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, NamedTuple, Protocol

from exporter.metrics.exposition import deflate_block, escape_label_value, header, label_pairs, sample_line
from exporter.metrics.families import REGION_FAMILIES, STREAM_FAMILIES, FamilySpec, RegionFacts, StreamFacts
from exporter.model import Event, EventKind, RegionKey, Snapshot, Stream, SwitchoverReason

__all__ = [
    "HEADER_BLOCKS",
    "NO_EXPECTED",
    "REGION_COUNTERS",
    "SPECS",
    "Block",
    "Entry",
    "ExpectedStreams",
    "RegionBlocks",
    "Rules",
]


class ExpectedStreams(Protocol):
    """``streams.expected`` as the store reads it (the config's type satisfies it structurally)."""

    @property
    def names(self) -> frozenset[str]: ...

    def matches(self, name: str) -> bool: ...

    def __bool__(self) -> bool: ...


class _NoExpected:
    names: frozenset[str] = frozenset()

    def matches(self, name: str) -> bool:
        return False

    def __bool__(self) -> bool:
        return False


#: No expected streams (the default).
NO_EXPECTED: ExpectedStreams = _NoExpected()


@dataclass(frozen=True, slots=True, kw_only=True)
class Rules:
    """The store's settings, handed to every region operation that depends on them."""

    per_stream: bool
    cap: int
    retention: float
    expected: ExpectedStreams

    def expects(self, name: str) -> bool:
        return bool(self.expected) and (name in self.expected.names or self.expected.matches(name))


class Block(NamedTuple):
    """One deflated block: the piece, the CRC-32 and the length of its text."""

    piece: bytes
    crc: int
    size: int


def _block(text: bytes) -> Block:
    return Block(deflate_block(text), zlib.crc32(text), len(text))


_R = len(REGION_FAMILIES)
#: Body order: region families, then per-stream families.
SPECS: tuple[FamilySpec[Any], ...] = (*REGION_FAMILIES, *STREAM_FAMILIES)
#: Each family's HELP/TYPE header as a block, deflated once.
HEADER_BLOCKS: tuple[Block, ...] = tuple(_block(header(s.name, s.help, s.type)) for s in SPECS)
_NO_BLOCK = Block(b"", 0, 0)
_STREAM_COUNTERS = 3  # switchovers, joins, losses
#: Region counters by name; "failover"/"handover" are region_switchovers_total{reason}.
REGION_COUNTERS = (
    "failover",
    "handover",
    "publisher_joins",
    "publisher_losses",
    "stream_starts",
    "stream_drops",
)
_EVENT_COUNTER = {
    EventKind.PUBLISHER_JOIN: "publisher_joins",
    EventKind.PUBLISHER_LOSS: "publisher_losses",
    EventKind.STREAM_START: "stream_starts",
    EventKind.STREAM_DROP: "stream_drops",
}
# streams, redundant, without_master, publishers, unexported
_Counts = tuple[int, int, int, int, int]


def _render(spec: FamilySpec[Any], facts: object, scope: str) -> bytes:
    """Every sample line of ``facts`` in one family (often exactly one line, or none)."""
    lines = []
    for values, value in spec.samples(facts):
        labels = scope + "," + label_pairs(spec.labels, values) if values else scope
        lines.append(sample_line(spec.name, labels, value))
    return lines[0] if len(lines) == 1 else b"".join(lines)


class Entry:
    """One stream with series: last seen version (``None``: expected, never seen), counters.

    Its lines live only in the region's blocks, found by ``slot`` (position in block order).
    """

    __slots__ = ("dropped_at", "expected", "joins", "losses", "name", "slot", "stream", "switchovers")

    def __init__(self, name: str, stream: Stream | None, counters: Sequence[int], slot: int, expected: bool):
        self.name = name
        self.stream = stream
        self.switchovers, self.joins, self.losses = counters
        self.dropped_at: float | None = None
        self.slot = slot
        self.expected = expected


class RegionBlocks:
    """Everything the store holds for one (account, region), and its part of the body."""

    __slots__ = (
        "_blocks",
        "_built",
        "_counters",
        "_counts",
        "_dirty",
        "_dropped",
        "_entries",
        "_exported",
        "_lengths",
        "_order",
        "_pending",
        "_region_lines",
        "_region_stale",
        "_removed",
        "_restored",
        "_scope",
        "_verdicts",
    )

    def __init__(
        self, key: RegionKey, counters: Mapping[str, int], restored: dict[str, list[int]], rules: Rules
    ) -> None:
        self._scope = f'account="{escape_label_value(key.account)}",region="{escape_label_value(key.region)}"'
        self._entries: dict[str, Entry] = {}
        self._dropped: dict[str, float] = {}  # name -> taken_at of the confirming snapshot
        self._counters = {name: int(counters.get(name, 0)) for name in REGION_COUNTERS}
        self._restored = restored  # stream counters of a previous run, until the stream shows
        self._counts: _Counts | None = None  # aggregates of the last snapshot; None before it
        self._region_lines: tuple[bytes, ...] = ()  # the region families' rendered text
        self._region_stale = False  # _region_lines not yet in the blocks
        self._exported = 0  # entries that are not expected: what max_per_region limits
        self._verdicts: dict[str, bool] = {}  # expected? for streams left without an entry
        # Block layout as of the last build: entries in block order, and per stream family the
        # byte length of each entry's line(s) there.
        self._order: list[Entry] = []
        self._built = 0
        self._lengths = [array("I") for _ in STREAM_FAMILIES]
        self._pending: set[int] = set()  # slots to render at the next build (new ones included)
        self._removed: set[int] = set()  # slots removed since the last build
        self._blocks: list[Block] = [_NO_BLOCK] * len(SPECS)
        self._dirty = False
        self.expect(rules)

    # -- what the store reads -------------------------------------------------------------------

    @property
    def unexported(self) -> int:
        return self._counts[4] if self._counts is not None else 0

    def block(self, family: int) -> Block:
        """This region's block of ``family`` (index into :data:`SPECS`) as of the last build."""
        return self._blocks[family]

    def export(self, key: RegionKey) -> dict[str, Any]:
        """Counters for the state file; streams only when a counter is non-zero."""
        streams = {
            name: [e.switchovers, e.joins, e.losses]
            for name, e in self._entries.items()
            if e.stream is not None and (e.switchovers or e.joins or e.losses)
        }
        return {"account": key.account, "region": key.region, **self._counters, "streams": streams}

    # -- changes (each returns True when the region's text changed) -------------------------------

    def apply(
        self,
        snapshot: Snapshot,
        changed: Collection[str],
        dropped: Collection[str],
        events: Sequence[Event],
        rules: Rules,
    ) -> bool:
        """One successful snapshot and what the diff made of it (see ``MetricStore.apply``)."""
        # Expire first: a slot freed under max_per_region goes to a waiting stream right away.
        expired = self.expire(snapshot.taken_at, rules) > 0
        # Entries first, then events: after a restore the store starts empty while the diff
        # (restored state) already reports events for streams it is about to add.
        counts, stale = self._take_streams(snapshot, changed, rules)
        stale.update(self._count_events(events))
        for name in dropped:
            entry = self._entries.get(name)
            if entry is not None and entry.stream is not None and entry.dropped_at is None:
                entry.dropped_at = snapshot.taken_at
                self._dropped[name] = snapshot.taken_at
                stale.add(name)
        for name in stale:
            self._mark(self._entries[name])
        self._counts = counts
        return self._refresh_region_lines() or bool(stale) or expired

    def expire(self, now: float, rules: Rules) -> int:
        """Forget dropped streams past retention; an expected exact name goes back to never seen.

        Returns how many streams expired (each one changes the text).
        """
        gone = [name for name, at in self._dropped.items() if now - at >= rules.retention]
        for name in gone:
            del self._dropped[name]
            entry = self._entries[name]
            if entry.expected and name in rules.expected.names:
                entry.stream, entry.dropped_at = None, None
                entry.switchovers = entry.joins = entry.losses = 0
                self._mark(entry)
            else:
                self._remove(name)
        return len(gone)

    def expect(self, rules: Rules) -> bool:
        """Take in ``rules.expected``: flags of existing entries, and an entry per exact name."""
        changed = False
        self._verdicts.clear()
        for name, entry in list(self._entries.items()):
            # Regex entries apply to streams seen; only exact names stand for a stream not seen.
            flag = name in rules.expected.names if entry.stream is None else rules.expects(name)
            if flag == entry.expected:
                continue
            changed = True
            if not flag and (entry.stream is None or not rules.per_stream):
                self._remove(name)
                continue
            entry.expected = flag
            self._exported += -1 if flag else 1
            self._mark(entry)
        for name in sorted(rules.expected.names - self._entries.keys()):
            self._mark(self._add(name, None, expected=True))
            changed = True
        return changed

    def restore(self, counters: Mapping[str, int], streams: Mapping[str, list[int]]) -> None:
        """Continue counters of a previous run; a counter never goes backwards."""
        for name in REGION_COUNTERS:
            self._counters[name] = max(self._counters[name], counters.get(name, 0))
        for name, values in streams.items():
            entry = self._entries.get(name)
            if entry is None or entry.stream is None:
                self._restored[name] = values
                continue
            entry.switchovers = max(entry.switchovers, values[0])
            entry.joins = max(entry.joins, values[1])
            entry.losses = max(entry.losses, values[2])
            self._mark(entry)
        self._refresh_region_lines()

    # -- change helpers -----------------------------------------------------------------------------

    def _add(self, name: str, stream: Stream | None, *, expected: bool) -> Entry:
        counters = self._restored.pop(name, None) if stream is not None else None
        entry = Entry(name, stream, counters or (0,) * _STREAM_COUNTERS, len(self._order), expected)
        self._order.append(entry)
        self._entries[name] = entry
        if not expected:
            self._exported += 1
        return entry

    def _remove(self, name: str) -> None:
        entry = self._entries.pop(name)
        self._dropped.pop(name, None)
        self._removed.add(entry.slot)
        self._pending.discard(entry.slot)
        if not entry.expected:
            self._exported -= 1
        self._dirty = True

    def _mark(self, entry: Entry) -> None:
        """Mark ``entry``'s lines for rendering at the next build, from its state then."""
        self._pending.add(entry.slot)
        self._dirty = True

    def _take_streams(
        self, snapshot: Snapshot, changed: Collection[str], rules: Rules
    ) -> tuple[_Counts, set[str]]:
        """One pass over the snapshot: aggregates, and which streams need a new rendering."""
        stale: set[str] = set()
        entries = self._entries
        redundant = without_master = publishers = unexported = 0
        verdicts, self._verdicts = self._verdicts, {}
        for name, stream in snapshot.streams.items():
            count = len(stream.publishers)
            publishers += count
            if count >= 2:  # "redundant" is two or more publishers (SPEC 6)
                redundant += 1
            if stream.master is None:
                without_master += 1
            entry = entries.get(name)
            if entry is None:
                if rules.per_stream and self._exported < rules.cap:
                    expected = rules.expects(name)
                else:  # expected streams have series whatever the cap or per_stream_metrics say
                    expected = verdicts[name] if name in verdicts else rules.expects(name)
                    if not expected:
                        self._verdicts[name] = False  # asked again next poll without a regex
                        if rules.per_stream:
                            unexported += 1
                        continue
                self._add(name, stream, expected=expected)
                stale.add(name)
            elif entry.stream is None:  # an expected name, seen for the first time
                entry.stream = stream
                restored = self._restored.pop(name, None)
                if restored is not None:
                    entry.switchovers, entry.joins, entry.losses = restored
                stale.add(name)
            elif entry.dropped_at is not None or name in changed:
                entry.stream = stream
                if entry.dropped_at is not None:
                    entry.dropped_at = None
                    self._dropped.pop(name, None)
                stale.add(name)
        return (len(snapshot.streams), redundant, without_master, publishers, unexported), stale

    def _count_events(self, events: Sequence[Event]) -> set[str]:
        """Count events into region and stream counters; returns streams whose counters moved."""
        touched: set[str] = set()
        counters = self._counters
        for event in events:
            kind = event.kind
            if kind is EventKind.SWITCHOVER:
                if event.reason is not None:
                    counters[SwitchoverReason(event.reason).value] += 1
            else:
                counters[_EVENT_COUNTER[kind]] += 1
            entry = self._entries.get(event.stream)
            if entry is None or entry.stream is None:
                continue
            if kind is EventKind.SWITCHOVER:
                entry.switchovers += 1
            elif kind is EventKind.PUBLISHER_JOIN:
                entry.joins += 1
            elif kind is EventKind.PUBLISHER_LOSS:
                entry.losses += 1
            else:
                continue
            touched.add(event.stream)
        return touched

    def _refresh_region_lines(self) -> bool:
        """Re-render the region's own families; True when their text changed.

        Before the region's first snapshot there is nothing: region series (counters at 0
        included) start with that snapshot (SPEC section 5).
        """
        if self._counts is None:
            return False
        streams, redundant, without_master, publishers, unexported = self._counts
        c = self._counters
        facts = RegionFacts(
            streams=streams,
            redundant=redundant,
            without_master=without_master,
            publishers=publishers,
            unexported=unexported,
            switchovers={SwitchoverReason.FAILOVER: c["failover"], SwitchoverReason.HANDOVER: c["handover"]},
            joins=c["publisher_joins"],
            losses=c["publisher_losses"],
            starts=c["stream_starts"],
            drops=c["stream_drops"],
        )
        lines = tuple(_render(spec, facts, self._scope) for spec in REGION_FAMILIES)
        if lines == self._region_lines:
            return False
        self._region_lines = lines
        self._region_stale = self._dirty = True
        return True

    # -- build --------------------------------------------------------------------------------------

    def build(self) -> None:
        """Bring every block up to date with the changes since the last build."""
        if not self._dirty:
            return
        if self._region_stale:
            for family, text in enumerate(self._region_lines):
                self._blocks[family] = _block(text)
            self._region_stale = False
        if self._pending or self._removed:
            facts = {slot: self._facts(self._order[slot]) for slot in self._pending - self._removed}
            for index, spec in enumerate(STREAM_FAMILIES):
                spliced = self._splice(index, spec, facts)
                if spliced is not None:  # else the family's text is unchanged: keep its block
                    self._blocks[_R + index] = _block(spliced)
            self._settle()
        self._dirty = False

    def _facts(self, entry: Entry) -> tuple[StreamFacts, str]:
        facts = StreamFacts(
            stream=entry.stream,
            online=entry.stream is not None and entry.dropped_at is None,
            expected=entry.expected,
            switchovers=entry.switchovers,
            joins=entry.joins,
            losses=entry.losses,
        )
        return facts, f'{self._scope},stream="{escape_label_value(entry.name)}"'

    def _splice(
        self, index: int, spec: FamilySpec[StreamFacts], facts: Mapping[int, tuple[StreamFacts, str]]
    ) -> bytes | None:
        """The next text of stream family ``index``: old runs of lines by slice, pending ones rendered.

        ``None`` when it equals the old text (a switchover changes the master's families, not
        ``stream_info`` or ``stream_online``): the old block stays and nothing is deflated.
        Also records the new line lengths. The Python work is proportional to the changed
        streams; the prefix sum runs in C. A first build is the same walk over an empty block.
        """
        lengths = self._lengths[index]
        old = memoryview(_inflate(self._blocks[_R + index].piece))
        offsets = list(accumulate(lengths, initial=0))
        lengths.extend([0] * (len(self._order) - self._built))
        parts: list[bytes | memoryview] = []
        copied = 0  # end of the last copied old line
        tail_done = False
        same = True
        for slot in sorted(self._pending | self._removed):
            if slot >= self._built and not tail_done:
                parts.append(old[copied : offsets[-1]])
                tail_done = True
            if slot < self._built:
                parts.append(old[copied : offsets[slot]])
                copied = offsets[slot + 1]
            if slot in self._removed:
                same = same and (slot >= self._built or offsets[slot + 1] == offsets[slot])
                continue
            line = _render(spec, *facts[slot])
            parts.append(line)
            lengths[slot] = len(line)
            if same:
                same = line == old[offsets[slot] : offsets[slot + 1]] if slot < self._built else not line
        if not tail_done:
            parts.append(old[copied : offsets[-1]])
        return None if same else b"".join(parts)

    def _settle(self) -> None:
        """After a build: compacted order and line lengths without the removed slots."""
        removed = self._removed
        if removed:
            self._lengths = [
                array("I", (n for slot, n in enumerate(lengths) if slot not in removed))
                for lengths in self._lengths
            ]
            self._order = [entry for slot, entry in enumerate(self._order) if slot not in removed]
            for slot, entry in enumerate(self._order):
                entry.slot = slot
        self._built = len(self._order)
        self._pending.clear()
        removed.clear()


def _inflate(piece: bytes) -> bytes:
    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(piece)
