"""Immutable values shared by every stage of the pipeline.

The pipeline is ``config -> scheduler -> tencent client -> parse -> diff -> metrics store -> web``.
Every stage speaks in these types, so none of them needs to import another stage to understand
its input. They are frozen and slotted: a full fleet is 100,000 streams and twice as many
publishers, and nothing downstream may edit what upstream produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "Event",
    "EventKind",
    "Publisher",
    "RegionKey",
    "RegionStatus",
    "Snapshot",
    "Stream",
    "SwitchoverReason",
]


class RegionKey(NamedTuple):
    """One polled unit: an account's view of one region."""

    account: str
    region: str


@dataclass(frozen=True, slots=True)
class Publisher:
    """One encoder pushing a stream; identified by ``upstream_sequence``, never by domain/app."""

    upstream_sequence: str
    domain: str
    app: str
    publish_time: float | None  # Unix seconds (vendor sends "2018-06-29T19:00:00Z"); None: unreadable
    source_from: str
    is_master: bool


@dataclass(frozen=True, slots=True)
class Stream:
    """One ``BackupStreamGroupInfo``: a stream name and its publishers, in vendor order."""

    name: str
    host_group: str
    optimal_enable: int | None  # None: the vendor sent null (rendered "")
    publishers: tuple[Publisher, ...]

    @property
    def master(self) -> Publisher | None:
        """The first publisher flagged master; ``None`` when the group has no master.

        The vendor should flag exactly one; a group with two is tolerated by taking the
        first, so a vendor glitch never crashes a poll.
        """
        for publisher in self.publishers:
            if publisher.is_master:
                return publisher
        return None

    @property
    def sequences(self) -> frozenset[str]:
        return frozenset(p.upstream_sequence for p in self.publishers)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One successful observation of a region.

    ``scope`` is ``None`` for a full-list poll: every stream not in ``streams`` is absent.
    In watch-list mode it holds the StreamNames that were actually queried successfully in
    this cycle; only those can be judged absent, a name whose query failed is "unknown".

    What parse could not take as is (SPEC section 9 "One odd record never blinds a region"):
    ``anomalies`` counts each tolerance by reason in this reply; ``unknown`` holds names whose
    group was unusable (their last state is kept, a pending drop neither confirmed nor reset);
    ``judging_absences`` is False when the reply cannot prove an absence (a group without a
    usable name was skipped, or the list reached the vendor's ceiling): absences then confirm
    nothing and reset nothing.
    """

    account: str
    region: str
    taken_at: float  # Unix seconds, set by the runner's clock
    streams: Mapping[str, Stream]
    request_id: str = ""
    scope: frozenset[str] | None = None
    anomalies: Mapping[str, int] = field(default_factory=dict)
    judging_absences: bool = True
    unknown: frozenset[str] = frozenset()

    @property
    def key(self) -> RegionKey:
        return RegionKey(self.account, self.region)


class EventKind(StrEnum):
    SWITCHOVER = "switchover"
    PUBLISHER_JOIN = "publisher_join"
    PUBLISHER_LOSS = "publisher_loss"
    STREAM_START = "stream_start"
    STREAM_DROP = "stream_drop"


class SwitchoverReason(StrEnum):
    FAILOVER = "failover"  # the old master is gone
    HANDOVER = "handover"  # the old master is still present, now as a backup


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something the diff engine detected between two snapshots of a region.

    ``from_``/``to`` are UpstreamSequences: for a switchover the old and new master, for a
    publisher join ``to`` and for a loss ``from_``.
    """

    time: float
    account: str
    region: str
    stream: str
    kind: EventKind
    reason: SwitchoverReason | None = None
    from_: str | None = None
    to: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionStatus:
    """What the landing page and ``/readyz`` show for one (account, region)."""

    account: str
    region: str
    polled: bool  # at least one poll finished (success or failure)
    up: bool
    last_success: float | None
    last_error: str | None  # the ``code`` label of the last failure
    streams: int
