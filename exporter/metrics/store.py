"""The one mutable metric state: pre-rendered exposition text per stream, joined per region.

kube-state-metrics' model (``metrics_store.go``, ``metrics_writer.go``) at 100,000 streams:

- Each exported stream has one rendered line per per-stream family. A line is re-rendered
  only when the diff says the stream changed, a counter moved, or it dropped; a quiet stream
  costs a dict lookup per poll.
- The body is grouped by family (HELP/TYPE once, families contiguous): for each family its
  header, then every region's block. A region's block of a family is the join of its streams'
  lines. Blocks of quiet regions are not kept as separate copies but as spans of the current
  body: a new body copies them by ``memoryview`` slice, so only changed regions are re-joined.
  Lines, too, live only in the body once built (:mod:`exporter.metrics.blocks`): the text is
  held once, which is what keeps 100k streams under 300 MB.
- ``render()`` returns the cached body while nothing changed (O(1) per scrape) and builds the
  next one at most once per generation. ``render_gzip()`` deflates only blocks that changed
  (see :mod:`exporter.metrics.exposition`) and caches the member per generation.

Locking: ``_lock`` guards the mutable state (the poller's :meth:`MetricStore.apply` and
:meth:`expire`, and the body build that reads it). Finished bodies are published as immutable
references (:class:`_Plain`, :class:`_Packed`) that a scrape reads without any lock. While a
build is under way (``_build_lock`` held: ~0.12 s at 100k streams, a 100 MB join and a 20 MB
deflate per changed region), a scrape serves the previous generation's complete bytes instead
of waiting; it waits only when no body of the wanted kind exists yet. Measured at 100k streams
with one poll a second: scrapes queued behind ``prepare()`` for up to ~135 ms (p99) before.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.metrics.blocks import (
    HEADERS,
    HEADERS_DEFLATED,
    REGION_COUNTERS,
    SPECS,
    STREAM_COUNTERS,
    RegionBlocks,
    render_families,
)
from exporter.metrics.exposition import (
    crc32_combine,
    deflate_block,
    gzip_append,
    gzip_append_parts,
    gzip_member,
)
from exporter.metrics.families import REGION_FAMILIES, RegionFacts
from exporter.model import Event, EventKind, RegionKey, Snapshot, SwitchoverReason

__all__ = ["COUNTERS_FORMAT", "MetricStore"]

#: Version tag of :meth:`MetricStore.export_counters` output.
COUNTERS_FORMAT = 1

_EVENT_COUNTER = {
    EventKind.PUBLISHER_JOIN: "publisher_joins",
    EventKind.PUBLISHER_LOSS: "publisher_losses",
    EventKind.STREAM_START: "stream_starts",
    EventKind.STREAM_DROP: "stream_drops",
}


@dataclass(frozen=True, slots=True)
class _Plain:
    """A published plain body and the generation it shows."""

    generation: int
    body: bytes


@dataclass(frozen=True, slots=True)
class _Packed:
    """A published gzip member, the CRC-32 and length of the text it holds, and its generation."""

    generation: int
    member: bytes
    crc: int
    size: int


class MetricStore:
    """Per-stream and per-region families of every polled region, ready to serve.

    Args:
        per_stream_metrics: False exports region aggregates only (SPEC ``streams.per_stream_metrics``).
        max_per_region: per-stream series cap; the first streams seen keep their series, later
            ones are only counted (``tencent_live_region_streams_unexported``) until a slot frees.
        retention: seconds a dropped stream keeps ``stream_online 0``, ``stream_info`` and its
            counters, from the ``taken_at`` of the snapshot that confirmed the drop.
    """

    def __init__(
        self, *, per_stream_metrics: bool = True, max_per_region: int = 20000, retention: float = 3600.0
    ):
        if max_per_region < 0:
            raise ValueError(f"max_per_region must not be negative, got {max_per_region}")
        self._per_stream = per_stream_metrics
        self._cap = max_per_region
        self._retention = retention
        self._lock = threading.Lock()  # the mutable state below
        self._build_lock = threading.Lock()  # one body build at a time; scrapes never wait on it
        self._regions: dict[RegionKey, RegionBlocks] = {}
        self._order: list[RegionBlocks] = []
        self._restored: dict[RegionKey, tuple[dict[str, int], dict[str, list[int]]]] = {}
        self._generation = 0
        self._body = b""
        self._body_generation = 0
        self._emitted: list[bool] = [False] * len(SPECS)
        # What scrapes read, swapped as whole references (atomic) after each build.
        self._plain = _Plain(0, b"")
        self._packed = _Packed(0, gzip_member((), 0, 0), 0, 0)

    @property
    def generation(self) -> int:
        """Increases whenever the exposition text changed; a cached body is valid for one value."""
        return self._generation

    def apply(
        self,
        snapshot: Snapshot,
        *,
        changed: Collection[str],
        dropped: Collection[str],
        events: Sequence[Event],
    ) -> None:
        """Take in one successful snapshot of a region and what the diff made of it.

        The first call for a region creates its counters at 0. A stream the store does not know
        yet is rendered whether or not it is in ``changed`` (baseline, restored diff state, a
        freed cap slot). Region gauges come from ``snapshot.streams``, so they count streams
        over the cap too.
        """
        with self._lock:
            region = self._regions.get(snapshot.key) or self._add_region(snapshot.key)
            # Expire first: a slot freed under max_per_region goes to a waiting stream right away.
            expired = self._expire_region(region, snapshot.taken_at)
            # Entries first, then events: after a restore the store starts empty while the diff
            # (restored state) already reports events for streams it is about to add.
            facts_counts, render = self._take_streams(region, snapshot, changed)
            touched = self._count_events(region, events)
            for name in dropped:
                entry = region.entries.get(name)
                if entry is not None and entry.dropped_at is None:
                    entry.dropped_at = snapshot.taken_at
                    region.dropped[name] = snapshot.taken_at
                    render.add(name)
            render.update(name for name in touched if name in region.entries)
            for name in render:
                region.render(region.entries[name])
            if self._set_region_facts(region, facts_counts) or render or expired:
                self._touch(region)

    def unexported(self, key: RegionKey) -> int:
        """Streams of a region left without per-stream series by ``max_per_region`` at its last apply."""
        with self._lock:
            region = self._regions.get(key)
            return region.facts.unexported if region is not None and region.facts is not None else 0

    def expire(self, now: float) -> int:
        """Forget dropped streams whose retention has passed; returns how many went."""
        with self._lock:
            removed = 0
            for region in self._order:
                count = self._expire_region(region, now)
                if count:
                    self._touch(region)
                    removed += count
            return removed

    def render(self) -> bytes:
        """The exposition body; the same object until the next change.

        While another thread is building the next body, the previous one (complete, one
        generation older) is returned at once rather than after the build.
        """
        plain = self._plain
        if plain.generation == self._generation:
            return plain.body
        if not self._build_lock.acquire(blocking=plain.generation == 0):
            return plain.body  # a build is under way: serve the previous generation
        try:
            return self._publish(gzipped=False)[0].body
        finally:
            self._build_lock.release()

    def render_gzip(self, suffix: bytes = b"") -> bytes:
        """The body, then ``suffix`` (the health families), as one gzip member.

        Only blocks changed since the last call are deflated; without a suffix the result is
        the same object until the next change. A suffix costs one copy of the compressed body.
        """
        member, crc, size = self._gzip_state()
        return gzip_append(member, crc, size, suffix)

    def render_gzip_parts(self, suffix: bytes) -> tuple[memoryview, bytes, bytes, bytes]:
        """:meth:`render_gzip` as buffers to write in order, without copying the cached member.

        With 50 concurrent scrapers of a 100k-stream store, the copy :meth:`render_gzip`
        makes would hold ~250 MB of duplicate compressed text in flight.
        """
        member, crc, size = self._gzip_state()
        return gzip_append_parts(member, crc, size, suffix)

    def _gzip_state(self) -> tuple[bytes, int, int]:
        """The current gzip member, or the previous one while a build is under way."""
        packed = self._packed
        if packed.generation == self._generation:
            return packed.member, packed.crc, packed.size
        if not self._build_lock.acquire(blocking=packed.generation == 0):
            return packed.member, packed.crc, packed.size  # a build is under way: the previous one
        try:
            packed = self._publish(gzipped=True)[1]
            return packed.member, packed.crc, packed.size
        finally:
            self._build_lock.release()

    def _publish(self, *, gzipped: bool) -> tuple[_Plain, _Packed]:
        """Build what the current generation lacks and publish it; caller holds ``_build_lock``.

        ``_lock`` is held for the build (it reads the state ``apply`` mutates), so polls wait for
        it; scrapes do not (they read the published references).
        """
        with self._lock:
            self._build_body()
            if self._plain.generation != self._body_generation:
                self._plain = _Plain(self._body_generation, self._body)
            if gzipped and self._packed.generation != self._body_generation:
                deflated, crc = self._deflated_blocks()
                member = gzip_member(deflated, crc, len(self._body))
                self._packed = _Packed(self._body_generation, member, crc, len(self._body))
            return self._plain, self._packed

    def prepare(self) -> None:
        """Build the plain and gzip bodies now, so the next scrape only hands out cached bytes.

        Optional: :meth:`render` and :meth:`render_gzip` build on demand. Calling this from the
        poller's worker thread after :meth:`apply` moves that work (~0.12 s at 100k streams)
        off the scrape, at the price of doing it for every poll rather than every scrape.
        Scrapes during it get the previous generation without waiting.
        """
        with self._build_lock:
            self._publish(gzipped=True)

    def export_counters(self) -> dict[str, Any]:
        """Counter values for the state file: JSON-able, streams only when a counter is non-zero."""
        with self._lock:
            regions = []
            for key, region in sorted(self._regions.items()):
                streams = {
                    name: [e.switchovers, e.joins, e.losses]
                    for name, e in region.entries.items()
                    if e.switchovers or e.joins or e.losses
                }
                regions.append(
                    {"account": key.account, "region": key.region, **region.counters, "streams": streams}
                )
            return {"format": COUNTERS_FORMAT, "regions": regions}

    def restore_counters(self, data: Mapping[str, Any]) -> None:
        """Continue counters from :meth:`export_counters` output (a previous run's state file).

        Meant for start-up, before the first :meth:`apply`; values reach each region and stream
        when it first appears. A region or stream already present keeps the larger value, so a
        counter never goes backwards.

        Raises:
            ValueError: ``data`` is not export_counters output of a known format.
        """
        parsed = _parse_counters(data)
        with self._lock:
            for key, (counters, streams) in parsed.items():
                region = self._regions.get(key)
                if region is None:
                    self._restored[key] = (counters, streams)
                    continue
                for name in REGION_COUNTERS:
                    region.counters[name] = max(region.counters[name], counters.get(name, 0))
                for name, values in streams.items():
                    entry = region.entries.get(name)
                    if entry is None:
                        region.restored_streams[name] = values
                        continue
                    entry.switchovers = max(entry.switchovers, values[0])
                    entry.joins = max(entry.joins, values[1])
                    entry.losses = max(entry.losses, values[2])
                    region.render(entry)
                if region.facts is not None:
                    self._set_region_facts(region, _counts_of(region.facts))
                self._touch(region)

    # -- apply helpers -------------------------------------------------------------------------

    def _add_region(self, key: RegionKey) -> RegionBlocks:
        counters, streams = self._restored.pop(key, ({}, {}))
        region = RegionBlocks(key, counters, streams)
        self._regions[key] = region
        self._order = [self._regions[k] for k in sorted(self._regions)]
        return region

    def _count_events(self, region: RegionBlocks, events: Sequence[Event]) -> set[str]:
        """Count events into region and stream counters; returns streams whose counters moved."""
        touched: set[str] = set()
        counters = region.counters
        for event in events:
            kind = event.kind
            if kind is EventKind.SWITCHOVER:
                if event.reason is not None:
                    counters[SwitchoverReason(event.reason).value] += 1
            else:
                counters[_EVENT_COUNTER[kind]] += 1
            entry = region.entries.get(event.stream)
            if entry is None:
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

    def _take_streams(
        self, region: RegionBlocks, snapshot: Snapshot, changed: Collection[str]
    ) -> tuple[tuple[int, int, int, int, int], set[str]]:
        """One pass over the snapshot: aggregates, and which streams need a new rendering."""
        render: set[str] = set()
        entries = region.entries
        redundant = without_master = publishers = unexported = 0
        per_stream = self._per_stream
        for name, stream in snapshot.streams.items():
            count = len(stream.publishers)
            publishers += count
            if count >= 2:  # "redundant" is two or more publishers (SPEC 6)
                redundant += 1
            if stream.master is None:
                without_master += 1
            if not per_stream:
                continue
            entry = entries.get(name)
            if entry is None:
                if len(entries) >= self._cap:
                    unexported += 1
                    continue
                region.add(name, stream)
                render.add(name)
            elif entry.dropped_at is not None or name in changed:
                entry.stream = stream
                if entry.dropped_at is not None:
                    entry.dropped_at = None
                    region.dropped.pop(name, None)
                render.add(name)
        return (len(snapshot.streams), redundant, without_master, publishers, unexported), render

    def _set_region_facts(self, region: RegionBlocks, counts: tuple[int, int, int, int, int]) -> bool:
        """Re-render the region's own families; True when their text changed."""
        c = region.counters
        streams, redundant, without_master, publishers, unexported = counts
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
        region.facts = facts
        lines = render_families(REGION_FAMILIES, facts, region.scope)
        if lines == region.lines:
            return False
        region.lines = lines
        return True

    def _expire_region(self, region: RegionBlocks, now: float) -> int:
        if not region.dropped:
            return 0
        gone = [name for name, at in region.dropped.items() if now - at >= self._retention]
        for name in gone:
            del region.dropped[name]
            region.remove(name)
        return len(gone)

    def _touch(self, region: RegionBlocks) -> None:
        region.dirty = True
        self._generation += 1

    # -- render helpers ------------------------------------------------------------------------

    def _build_body(self) -> None:
        """Assemble the body for the current generation, re-joining dirty regions only.

        Every piece is either new text or a ``memoryview`` slice of the current body, and one
        ``join`` makes the next body: the text is copied once and never held twice.
        """
        if self._body_generation == self._generation:
            return
        old = memoryview(self._body)
        pieces: list[bytes | memoryview] = []
        position = 0
        spans: list[list[tuple[int, int]]] = [[] for _ in self._order]
        for family, head in enumerate(HEADERS):
            blocks: list[tuple[list[bytes | memoryview], int]] = []
            for region in self._order:
                if region.dirty or region.spans is None:
                    region.deflated[family] = None
                    blocks.append(region.parts(family, old))
                else:
                    start, end = region.spans[family]
                    blocks.append(([old[start:end]], end - start))
            emitted = any(size for _, size in blocks)
            self._emitted[family] = emitted
            if emitted:
                pieces.append(head)
                position += len(head)
            for index, (parts, size) in enumerate(blocks):
                spans[index].append((position, position + size))
                position += size
                pieces.extend(parts)
        self._body = b"".join(pieces)
        for region, region_spans in zip(self._order, spans, strict=True):
            if region.dirty or region.spans is None:
                region.settle()
            region.spans = region_spans
        self._body_generation = self._generation

    def _deflated_blocks(self) -> tuple[list[bytes], int]:
        """Every emitted block deflated (cached unless it changed), and the body's CRC-32.

        The CRC is combined from per-block CRCs, so a change costs a pass over the changed
        blocks only, not over the whole body.
        """
        body = memoryview(self._body)
        deflated: list[bytes] = []
        crc = 0
        for family, emitted in enumerate(self._emitted):
            if not emitted:
                continue
            head, head_crc = HEADERS_DEFLATED[family]
            deflated.append(head)
            crc = crc32_combine(crc, head_crc, len(HEADERS[family]))
            for region in self._order:
                assert region.spans is not None  # set by _build_body
                start, end = region.spans[family]
                if end == start:
                    continue
                cached = region.deflated[family]
                if cached is None:
                    block = body[start:end]
                    cached = region.deflated[family] = (deflate_block(block), zlib.crc32(block))
                deflated.append(cached[0])
                crc = crc32_combine(crc, cached[1], end - start)
        return deflated, crc


def _counts_of(facts: RegionFacts) -> tuple[int, int, int, int, int]:
    return (facts.streams, facts.redundant, facts.without_master, facts.publishers, facts.unexported)


def _parse_counters(data: Mapping[str, Any]) -> dict[RegionKey, tuple[dict[str, int], dict[str, list[int]]]]:
    """Validate export_counters output; anything else is a ValueError naming what is wrong."""
    if not isinstance(data, Mapping) or data.get("format") != COUNTERS_FORMAT:
        raise ValueError(f"counters: expected format {COUNTERS_FORMAT}")
    regions = data.get("regions")
    if not isinstance(regions, list):
        raise ValueError("counters: 'regions' must be a list")
    parsed: dict[RegionKey, tuple[dict[str, int], dict[str, list[int]]]] = {}
    for index, item in enumerate(regions):
        where = f"counters: regions[{index}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where} must be an object")
        account, region = item.get("account"), item.get("region")
        if not isinstance(account, str) or not isinstance(region, str):
            raise ValueError(f"{where}: 'account' and 'region' must be strings")
        counters = {name: _count(item.get(name, 0), f"{where}.{name}") for name in REGION_COUNTERS}
        streams_data = item.get("streams", {})
        if not isinstance(streams_data, Mapping):
            raise ValueError(f"{where}.streams must be an object")
        streams: dict[str, list[int]] = {}
        for name, values in streams_data.items():
            if not isinstance(values, list) or len(values) != STREAM_COUNTERS:
                raise ValueError(f"{where}.streams[{name!r}] must be [switchovers, joins, losses]")
            streams[str(name)] = [_count(v, f"{where}.streams[{name!r}]") for v in values]
        parsed[RegionKey(account, region)] = (counters, streams)
    return parsed


def _count(value: object, where: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{where} must be a non-negative integer, got {value!r}")
    return value
