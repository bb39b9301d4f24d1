"""The groups of one reply -> one ``Snapshot``, and the per-region cache that makes it cheap.

Each group's outcome comes from :func:`exporter.parse.group.read_group`; here they are put
together:

- several groups with one ``StreamName``: the one with the lowest master ``UpstreamSequence``
  wins (then a total order over the whole value), whatever the reply order, so an order that
  flips between replies counts nothing;
- a nameless group, or a full list of :data:`VENDOR_CEILING` groups or more (the vendor may
  have cut it), judges no absence (``judging_absences=False``); a skipped group's name is
  *unknown* (``unknown``): its last state is kept, a pending drop neither confirmed nor reset.

Every case is counted in ``Snapshot.anomalies`` (reason -> count). ``BackupList: null`` (no
publishers) and ``StreamInfoList: null`` (no stream) are documented values, not anomalies.

**Steady state is cheap** (:func:`parse_snapshot_cached`): between two polls ~98% of a
region's groups come back unchanged, so a group's outcome is remembered under a fingerprint
and, when the next reply has the very same group, reused as is: the same ``Stream`` object,
so the diff's ``is`` fast path skips it and the store does nothing for it. The fingerprint is
the group's text in a compact reply (the reply is cut before each ``{"<first key>":``; see
:func:`exporter.parse.reply.cut_groups`), else ``orjson.dumps`` of the parsed group; both are
hashed with Python's keyed 64-bit SipHash (a new group matching one of 20,000 remembered
fingerprints by accident: odds ~1e-15 per group). Either way the outcome is what ``read_group``
made of the very same JSON, so the cached and uncached parses are the same function of the
reply (a property test holds them equal). :func:`parse_snapshot` is the cached parse with
nothing cached.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from typing import Any

import orjson

from exporter.model import Snapshot, Stream
from exporter.parse.group import Anomaly, Odd, Outcome, read_group
from exporter.parse.reply import NotOneGroup, cut_groups, read_groups

__all__ = ["VENDOR_CEILING", "ParseCache", "parse_snapshot", "parse_snapshot_cached"]

#: The vendor documents this action for fewer than 20,000 streams: a list this long may be cut.
VENDOR_CEILING = 20_000
_UNSEEN: Any = object()
_NAME = attrgetter("name")


@dataclass(frozen=True, slots=True, eq=False)
class ParseCache:
    """What one region's last reply held, group by group, for :func:`parse_snapshot_cached`.

    Only ever an optimisation: a remembered outcome is what reading the same group afresh
    gives, so a cache that is stale, from a reply that was never applied, or empty, changes
    how fast a parse is, never what it returns. Hold one per region, for full-list replies.
    """

    groups: Mapping[int, Outcome]
    admit: Callable[[str], bool] | None = None

    def __len__(self) -> int:
        return len(self.groups)


def parse_snapshot(
    body: bytes,
    *,
    account: str,
    region: str,
    taken_at: float,
    scope: frozenset[str] | None = None,
    admit: Callable[[str], bool] | None = None,
) -> Snapshot:
    """Turn the body of an HTTP 200 reply into a Snapshot of one region.

    Args:
        admit: ``streams.include/exclude``; a stream it rejects is left out entirely (its
            publishers are not even read).
        scope: passed through to the Snapshot (watch-list mode: the names queried).

    Raises:
        ApiError: ``Response.Error`` (``Throttled`` for ``RequestLimitExceeded*``).
        BadResponse: not a DescribeBackupStreamList response at all.
    """
    snapshot, _ = parse_snapshot_cached(
        body, account=account, region=region, taken_at=taken_at, previous=None, scope=scope, admit=admit
    )
    return snapshot


def parse_snapshot_cached(
    body: bytes,
    *,
    account: str,
    region: str,
    taken_at: float,
    previous: ParseCache | None,
    scope: frozenset[str] | None = None,
    admit: Callable[[str], bool] | None = None,
) -> tuple[Snapshot, ParseCache]:
    """:func:`parse_snapshot`, reusing the outcome of every group unchanged since ``previous``.

    Returns the snapshot and the cache for the next parse of the same region. A failure raises
    exactly as :func:`parse_snapshot` would, and the caller keeps ``previous``.
    """
    known: Mapping[int, Outcome] = {}
    if previous is not None and previous.admit == admit:  # bound methods compare by target
        known = previous.groups
    cut = cut_groups(body)
    if cut is not None:
        groups, fingerprints, request_id = cut
        try:
            outcomes = _outcomes(groups, fingerprints, known, admit)
        except NotOneGroup:
            cut = None
    if cut is None:
        groups, request_id = read_groups(body)
        try:
            dumps = orjson.dumps
            fingerprints = [hash(dumps(group)) for group in groups]
        except orjson.JSONEncodeError:  # nested deeper than dumps allows: remember nothing
            fingerprints, known = list(range(len(groups))), {}
            outcomes = _outcomes(groups, fingerprints, known, admit)
            snapshot = _snapshot(outcomes, len(groups), account, region, taken_at, request_id, scope)
            return snapshot, ParseCache({}, admit)
        outcomes = _outcomes(groups, fingerprints, known, admit)
    snapshot = _snapshot(outcomes, len(outcomes), account, region, taken_at, request_id, scope)
    return snapshot, ParseCache(dict(zip(fingerprints, outcomes, strict=True)), admit)


def _outcomes(
    groups: Sequence[Any],
    fingerprints: list[int],
    known: Mapping[int, Outcome],
    admit: Callable[[str], bool] | None,
) -> list[Outcome]:
    """Every group's outcome: remembered ones as they were, the others read now."""
    outcomes: list[Outcome] = list(map(known.get, fingerprints, repeat(_UNSEEN)))
    times: dict[str, float | None] = {}  # publishers of one fleet often share a PublishTime
    for index in [i for i, item in enumerate(outcomes) if item is _UNSEEN]:
        outcomes[index] = read_group(groups[index], admit, times)
    return outcomes


def _snapshot(  # noqa: PLR0917 - private, called from one function
    outcomes: list[Outcome],
    listed: int,
    account: str,
    region: str,
    taken_at: float,
    request_id: str,
    scope: frozenset[str] | None,
) -> Snapshot:
    """Assemble the groups' outcomes: one stream per name, anomalies counted, judging decided."""
    kept = [item for item in outcomes if type(item) is Stream]
    streams: dict[str, Stream] = dict(zip(map(_NAME, kept), kept, strict=True))
    anomalies: Counter[str] = Counter()
    unknown: set[str] = set()
    judging = True
    if len(streams) != len(kept) or len(kept) + outcomes.count(None) != len(outcomes):
        streams, judging = _assemble_odd(outcomes, anomalies, unknown)
    if listed >= VENDOR_CEILING:
        anomalies[Anomaly.LIST_AT_CEILING] += 1
        judging = False
    return Snapshot(
        account=account,
        region=region,
        taken_at=taken_at,
        streams=streams,
        request_id=request_id,
        scope=scope,
        anomalies=dict(anomalies),
        judging_absences=judging,
        unknown=frozenset(unknown - streams.keys()),
    )


def _assemble_odd(
    outcomes: list[Outcome], anomalies: Counter[str], unknown: set[str]
) -> tuple[dict[str, Stream], bool]:
    """The slow path, for a reply with any anomaly or duplicate name."""
    judging = True
    candidates: dict[str, list[Stream]] = {}
    copies: Counter[str] = Counter()
    for item in outcomes:
        if item is None:
            continue
        if type(item) is Stream:
            candidates.setdefault(item.name, []).append(item)
            copies[item.name] += 1
            continue
        assert isinstance(item, Odd)
        anomalies.update(item.reasons)
        if item.name is None:
            judging = False
            continue
        copies[item.name] += 1
        if item.stream is None:
            unknown.add(item.name)
        else:
            candidates.setdefault(item.name, []).append(item.stream)
    streams: dict[str, Stream] = {}
    for name, found in candidates.items():
        streams[name] = found[0] if len(found) == 1 else min(found, key=_rank)
    duplicates = sum(count - 1 for count in copies.values())
    if duplicates:
        anomalies[Anomaly.DUPLICATE_STREAM_NAME] += duplicates
    return streams, judging


def _rank(stream: Stream) -> tuple[Any, ...]:
    """A total order on a name's copies: lowest master UpstreamSequence first, then the value."""
    master = stream.master
    first = (1, 0, "") if master is None else (0, len(master.upstream_sequence), master.upstream_sequence)
    return (
        first,
        stream.host_group,
        -1 if stream.optimal_enable is None else stream.optimal_enable,
        tuple(
            (
                p.upstream_sequence,
                p.is_master,
                p.domain,
                p.app,
                p.source_from,
                p.publish_time is None,
                p.publish_time or 0.0,
            )
            for p in stream.publishers
        ),
    )
