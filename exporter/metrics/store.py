"""The one mutable metric state: every region's series, kept compressed, served as generations.

kube-state-metrics' model (``metrics_store.go``, ``metrics_writer.go``) at 100,000 streams:

- Each exported stream has its lines rendered once; they are re-rendered only when the diff
  says the stream changed, a counter moved, or it dropped. A quiet stream costs a dict lookup
  per poll. Everything about one region lives in :class:`~exporter.metrics.blocks.RegionBlocks`.
- The body is grouped by family (HELP/TYPE once, families contiguous): for each family its
  header, then every region's block of it. Blocks are kept only deflated, so the ~100 MB of
  text at 100k streams is never resident; a build re-deflates the blocks of changed regions.
- A build publishes an :class:`~exporter.metrics.exposition.Exposition`: an immutable tuple of
  deflated pieces (unchanged ones shared with the previous generation). Gzip scrapes send the
  pieces as they are; plain scrapes inflate them in bounded chunks while sending
  (:mod:`exporter.metrics.exposition` is the one path to both).

Locking: ``_lock`` guards the mutable state (the poller's :meth:`MetricStore.apply` and
:meth:`expire`, and the build that reads it). A published generation is an immutable
reference a scrape reads without any lock. While a build is under way (``_build_lock`` held),
a scrape serves the previous generation at once instead of waiting; it waits only when nothing
was ever built.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from exporter.metrics.blocks import (
    HEADER_BLOCKS,
    NO_EXPECTED,
    REGION_COUNTERS,
    ExpectedStreams,
    RegionBlocks,
    Rules,
)
from exporter.metrics.exposition import EMPTY, Exposition, crc32_combine
from exporter.model import Event, RegionKey, Snapshot

__all__ = ["COUNTERS_FORMAT", "ExpectedStreams", "MetricStore"]

#: Version tag of :meth:`MetricStore.export_counters` output.
COUNTERS_FORMAT = 1
_STREAM_COUNTERS = 3  # switchovers, joins, losses
# Pieces smaller than this are joined with their neighbours into one buffer per generation
# (headers, region lines): fewer writes per scrape; large pieces stay shared between generations.
_SMALL_PIECE = 4 * 1024


class MetricStore:
    """Per-stream and per-region families of every polled region, ready to serve.

    Args:
        per_stream_metrics: False exports region aggregates only (SPEC ``streams.per_stream_metrics``).
        max_per_region: per-stream series cap; the first streams seen keep their series, later
            ones are only counted (``tencent_live_region_streams_unexported``) until a slot frees.
        retention: seconds a dropped stream keeps ``stream_online 0``, ``stream_info`` and its
            counters, from the ``taken_at`` of the snapshot that confirmed the drop.
        expected: ``streams.expected``. An expected stream always has its per-stream series
            (whatever ``per_stream_metrics`` and ``max_per_region`` say) and
            ``stream_expected 1``; an exact name has ``stream_online 0`` in every declared or
            polled region until it is first seen.
    """

    def __init__(
        self,
        *,
        per_stream_metrics: bool = True,
        max_per_region: int = 20000,
        retention: float = 3600.0,
        expected: ExpectedStreams = NO_EXPECTED,
    ):
        if max_per_region < 0:
            raise ValueError(f"max_per_region must not be negative, got {max_per_region}")
        self._rules = Rules(
            per_stream=per_stream_metrics, cap=max_per_region, retention=retention, expected=expected
        )
        self._lock = threading.Lock()  # the mutable state below
        self._build_lock = threading.Lock()  # one build at a time; scrapes never wait on it
        self._regions: dict[RegionKey, RegionBlocks] = {}
        self._order: list[RegionBlocks] = []  # by key: the body's region order
        self._restored: dict[RegionKey, tuple[dict[str, int], dict[str, list[int]]]] = {}
        self._generation = 0
        self._published = EMPTY  # swapped as a whole reference (atomic) after each build

    @property
    def generation(self) -> int:
        """Increases whenever the exposition text changed; a published body is valid for one value."""
        return self._generation

    # -- what the poller calls ------------------------------------------------------------------

    def apply(
        self,
        snapshot: Snapshot,
        *,
        changed: Collection[str],
        dropped: Collection[str],
        events: Sequence[Event],
    ) -> None:
        """Take in one successful snapshot of a region and what the diff made of it.

        The first snapshot of a region creates its counters at 0. A stream the store does not
        know yet is rendered whether or not it is in ``changed`` (baseline, restored diff
        state, a freed cap slot). Region gauges come from ``snapshot.streams``, so they count
        streams over the cap too. ``dropped`` streams show ``stream_online 0`` (and no master)
        until ``retention`` passes.
        """
        with self._lock:
            region = self._regions.get(snapshot.key) or self._add_region(snapshot.key)
            if region.apply(snapshot, changed, dropped, events, self._rules):
                self._generation += 1

    def declare_region(self, account: str, region: str) -> None:
        """A configured region, before its first poll: its expected exact names show at once.

        Region series still start with the region's first snapshot. Idempotent.
        """
        with self._lock:
            if RegionKey(account, region) not in self._regions:
                self._add_region(RegionKey(account, region))
                self._generation += 1

    def remove_region(self, key: RegionKey) -> None:
        """Forget a region (removed by a reload): all its series leave ``/metrics``."""
        with self._lock:
            self._restored.pop(key, None)
            if self._regions.pop(key, None) is not None:
                self._order = [self._regions[k] for k in sorted(self._regions)]
                self._generation += 1

    def set_expected(self, expected: ExpectedStreams) -> None:
        """Replace ``streams.expected`` (reload); takes effect for every region at once."""
        with self._lock:
            self._rules = replace(self._rules, expected=expected)
            if any([region.expect(self._rules) for region in self._order]):
                self._generation += 1

    def expire(self, now: float) -> int:
        """Forget dropped streams whose retention has passed; returns how many went."""
        with self._lock:
            count = sum(region.expire(now, self._rules) for region in self._order)
            if count:
                self._generation += 1
            return count

    def unexported(self, key: RegionKey) -> int:
        """Streams of a region left without per-stream series by ``max_per_region`` at its last apply."""
        with self._lock:
            region = self._regions.get(key)
            return region.unexported if region is not None else 0

    # -- what scrapes call ----------------------------------------------------------------------

    def exposition(self) -> Exposition:
        """The current generation; the same object until the next change.

        While another thread is building the next generation, the previous one (complete)
        is returned at once rather than after the build.
        """
        published = self._published
        if published.generation == self._generation:
            return published
        if not self._build_lock.acquire(blocking=published.generation == 0):
            return published  # a build is under way: serve the previous generation
        try:
            return self._publish()
        finally:
            self._build_lock.release()

    def prepare(self) -> None:
        """Build the current generation now, so the next scrape only hands out published bytes.

        Optional: :meth:`exposition` builds on demand. The runner calls this in its worker
        thread after :meth:`apply`, which moves the build off the scrape.
        """
        with self._build_lock:
            self._publish()

    def render(self) -> bytes:
        """The whole plain text at once: for tests and tools; serving streams :meth:`exposition`."""
        return self.exposition().text()

    def _publish(self) -> Exposition:
        """Build what changed and publish the generation; caller holds ``_build_lock``.

        ``_lock`` is held for the build (it reads the state ``apply`` mutates), so polls wait
        for it; scrapes do not.
        """
        with self._lock:
            if self._published.generation == self._generation:
                return self._published
            pieces: list[bytes] = []
            crc = size = 0
            for region in self._order:
                region.build()
            for family, head in enumerate(HEADER_BLOCKS):
                blocks = [b for region in self._order if (b := region.block(family)).size]
                if not blocks:
                    continue  # no header without samples (kube-state-metrics does the same)
                for block in (head, *blocks):
                    pieces.append(block.piece)
                    crc = crc32_combine(crc, block.crc, block.size)
                    size += block.size
            self._published = Exposition(self._generation, _coalesce(pieces), crc, size)
            return self._published

    # -- state file -----------------------------------------------------------------------------

    def export_counters(self) -> dict[str, Any]:
        """Counter values for the state file: JSON-able, streams only when a counter is non-zero."""
        with self._lock:
            regions = [self._regions[key].export(key) for key in sorted(self._regions)]
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
                region.restore(counters, streams)
                self._generation += 1

    def _add_region(self, key: RegionKey) -> RegionBlocks:
        counters, streams = self._restored.pop(key, ({}, {}))
        region = RegionBlocks(key, counters, streams, self._rules)
        self._regions[key] = region
        self._order = [self._regions[k] for k in sorted(self._regions)]
        return region


def _coalesce(pieces: Sequence[bytes]) -> tuple[bytes, ...]:
    """Runs of small pieces joined into one; large pieces kept as the shared objects they are."""
    out: list[bytes] = []
    run: list[bytes] = []
    for piece in pieces:
        if len(piece) < _SMALL_PIECE:
            run.append(piece)
            continue
        if run:
            out.append(b"".join(run))
            run = []
        out.append(piece)
    if run:
        out.append(b"".join(run))
    return tuple(out)


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
            if not isinstance(values, list) or len(values) != _STREAM_COUNTERS:
                raise ValueError(f"{where}.streams[{name!r}] must be [switchovers, joins, losses]")
            streams[str(name)] = [_count(v, f"{where}.streams[{name!r}]") for v in values]
        parsed[RegionKey(account, region)] = (counters, streams)
    return parsed


def _count(value: object, where: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{where} must be a non-negative integer, got {value!r}")
    return value
