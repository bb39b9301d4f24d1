"""The per-stream and per-region metric families, declared as data.

As in kube-state-metrics (``deploymentMetricFamilies``), each family is one value: name, help,
type, its own label names and a function from plain facts to samples. Every SPEC section 6
name of the store is spelled once, here; the store and the renderer only loop over these
tuples, so adding a family never touches them.

Label order on a line is the scope labels first (``account``, ``region``, and ``stream`` for
per-stream families), then :attr:`FamilySpec.labels` in the order declared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from exporter.model import Stream, SwitchoverReason

__all__ = [
    "ALL_FAMILIES",
    "REGION_FAMILIES",
    "STREAM_FAMILIES",
    "FamilySpec",
    "RegionFacts",
    "Sample",
    "StreamFacts",
]

#: Extra label values of one sample (in the order of ``FamilySpec.labels``) and its value.
Sample = tuple[tuple[str, ...], float]

F = TypeVar("F")

_NO_SAMPLES: tuple[Sample, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilySpec(Generic[F]):
    """One metric family: what Prometheus sees in HELP/TYPE plus how to get its samples.

    ``samples`` must be cheap and pure: it runs once per changed stream per family.
    """

    name: str
    help: str
    type: Literal["gauge", "counter"]
    labels: tuple[str, ...]
    samples: Callable[[F], tuple[Sample, ...]]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamFacts:
    """What per-stream families are rendered from.

    ``stream`` is the last seen version; after a confirmed drop it is kept so ``stream_info``
    keeps its labels while ``online`` is False. ``None`` is an expected stream never seen (or
    expired since): only ``stream_online 0`` and ``stream_expected 1``, no counters, since a
    stream's counters start with the snapshot it first shows in (SPEC section 5).
    """

    stream: Stream | None
    online: bool
    expected: bool
    switchovers: int
    joins: int
    losses: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionFacts:
    """What per-region families are rendered from: aggregates and counters of one region."""

    streams: int
    redundant: int
    without_master: int
    publishers: int
    unexported: int
    switchovers: Mapping[SwitchoverReason, int]
    joins: int
    losses: int
    starts: int
    drops: int


def _one(value: float) -> tuple[Sample, ...]:
    return (((), value),)


def _publishers(facts: StreamFacts) -> tuple[Sample, ...]:
    if facts.stream is None:
        return _NO_SAMPLES
    return _one(float(len(facts.stream.publishers)) if facts.online else 0.0)


def _master_info(facts: StreamFacts) -> tuple[Sample, ...]:
    master = facts.stream.master if facts.online and facts.stream is not None else None
    if master is None:
        return _NO_SAMPLES
    return (((master.domain, master.app, master.source_from, master.upstream_sequence), 1.0),)


def _master_publish_time(facts: StreamFacts) -> tuple[Sample, ...]:
    master = facts.stream.master if facts.online and facts.stream is not None else None
    if master is None or master.publish_time is None:  # None: PublishTime was unreadable
        return _NO_SAMPLES
    return _one(master.publish_time)


def _stream_info(facts: StreamFacts) -> tuple[Sample, ...]:
    stream = facts.stream
    if stream is None:
        return _NO_SAMPLES
    optimal = "" if stream.optimal_enable is None else str(stream.optimal_enable)  # None: vendor null
    return (((stream.host_group, optimal), 1.0),)


def _switchovers(facts: RegionFacts) -> tuple[Sample, ...]:
    # Both reasons always, so `increase()` works from the region's first snapshot.
    return tuple(((reason.value,), float(facts.switchovers.get(reason, 0))) for reason in SwitchoverReason)


STREAM_FAMILIES: tuple[FamilySpec[StreamFacts], ...] = (
    FamilySpec(
        name="tencent_live_stream_online",
        help="1 while the stream is listed, 0 after a confirmed drop (kept for stream_retention).",
        type="gauge",
        labels=(),
        samples=lambda f: _one(1.0 if f.online else 0.0),
    ),
    FamilySpec(
        name="tencent_live_stream_expected",
        help="1 for a stream named in streams.expected (exact name, or a seen name matching a regex).",
        type="gauge",
        labels=(),
        samples=lambda f: _one(1.0) if f.expected else _NO_SAMPLES,
    ),
    FamilySpec(
        name="tencent_live_stream_publishers",
        help="Number of publishers (BackupList length) of the stream.",
        type="gauge",
        labels=(),
        samples=_publishers,
    ),
    FamilySpec(
        name="tencent_live_stream_master_info",
        help="1 for the stream's current master publisher.",
        type="gauge",
        labels=("domain", "app", "source_from", "upstream_sequence"),
        samples=_master_info,
    ),
    FamilySpec(
        name="tencent_live_stream_master_publish_timestamp_seconds",
        help="PublishTime of the stream's current master as Unix seconds.",
        type="gauge",
        labels=(),
        samples=_master_publish_time,
    ),
    FamilySpec(
        name="tencent_live_stream_info",
        help="Stream attributes reported by DescribeBackupStreamList; always 1.",
        type="gauge",
        labels=("host_group", "optimal_enable"),
        samples=_stream_info,
    ),
    FamilySpec(
        name="tencent_live_stream_switchovers_total",
        help="Master publisher changes of the stream.",
        type="counter",
        labels=(),
        samples=lambda f: _NO_SAMPLES if f.stream is None else _one(float(f.switchovers)),
    ),
    FamilySpec(
        name="tencent_live_stream_publisher_joins_total",
        help="Publishers that appeared in the stream while it stayed online.",
        type="counter",
        labels=(),
        samples=lambda f: _NO_SAMPLES if f.stream is None else _one(float(f.joins)),
    ),
    FamilySpec(
        name="tencent_live_stream_publisher_losses_total",
        help="Publishers that disappeared from the stream while it stayed online.",
        type="counter",
        labels=(),
        samples=lambda f: _NO_SAMPLES if f.stream is None else _one(float(f.losses)),
    ),
)

REGION_FAMILIES: tuple[FamilySpec[RegionFacts], ...] = (
    FamilySpec(
        name="tencent_live_region_streams",
        help="Streams listed in the region's last successful snapshot.",
        type="gauge",
        labels=(),
        samples=lambda f: _one(float(f.streams)),
    ),
    FamilySpec(
        name="tencent_live_region_streams_redundant",
        help="Streams with at least two publishers in the region's last successful snapshot.",
        type="gauge",
        labels=(),
        samples=lambda f: _one(float(f.redundant)),
    ),
    FamilySpec(
        name="tencent_live_region_streams_without_master",
        help="Streams with no publisher flagged master in the region's last successful snapshot.",
        type="gauge",
        labels=(),
        samples=lambda f: _one(float(f.without_master)),
    ),
    FamilySpec(
        name="tencent_live_region_publishers",
        help="Publishers of all streams in the region's last successful snapshot.",
        type="gauge",
        labels=(),
        samples=lambda f: _one(float(f.publishers)),
    ),
    FamilySpec(
        name="tencent_live_region_streams_unexported",
        help="Streams counted in the region aggregates but without per-stream series (max_per_region).",
        type="gauge",
        labels=(),
        samples=lambda f: _one(float(f.unexported)),
    ),
    FamilySpec(
        name="tencent_live_region_switchovers_total",
        help="Master publisher changes in the region; failover when the old master left, else handover.",
        type="counter",
        labels=("reason",),
        samples=_switchovers,
    ),
    FamilySpec(
        name="tencent_live_region_publisher_joins_total",
        help="Publishers that appeared in streams of the region that stayed online.",
        type="counter",
        labels=(),
        samples=lambda f: _one(float(f.joins)),
    ),
    FamilySpec(
        name="tencent_live_region_publisher_losses_total",
        help="Publishers that disappeared from streams of the region that stayed online.",
        type="counter",
        labels=(),
        samples=lambda f: _one(float(f.losses)),
    ),
    FamilySpec(
        name="tencent_live_region_stream_starts_total",
        help="Streams that appeared in the region.",
        type="counter",
        labels=(),
        samples=lambda f: _one(float(f.starts)),
    ),
    FamilySpec(
        name="tencent_live_region_stream_drops_total",
        help="Streams confirmed dropped in the region (absent from drop_confirmations snapshots).",
        type="counter",
        labels=(),
        samples=lambda f: _one(float(f.drops)),
    ),
)

#: Every family name the store produces; health metrics must not reuse any of them.
ALL_FAMILIES: tuple[str, ...] = tuple(f.name for f in REGION_FAMILIES) + tuple(
    f.name for f in STREAM_FAMILIES
)
