"""Vendor JSON -> ``Snapshot``: the only module that knows the shape of a DescribeBackupStreamList reply.

**Strict about the reply, tolerant per group** (SPEC section 9 "One odd record never blinds a
region"). A reply that is not this action's response at all (not JSON, no ``Response``,
``StreamInfoList`` neither a list nor null) raises ``BadResponse`` and the runner keeps the
previous snapshot. Inside a good reply each group is read on its own by :func:`_read_group`,
the one place that holds the rules:

- a group without a usable ``StreamName`` is skipped, and the snapshot no longer judges
  absences (``judging_absences=False``): the skipped group could be any stream;
- a ``StreamName`` over :data:`MAX_STREAM_NAME_BYTES`, or a ``BackupList`` that is neither a
  list nor null, skips the group; its name is *unknown* in this snapshot (``unknown``): its
  last state is kept, a pending drop is neither confirmed nor reset;
- other odd values keep what can be read: null (the vendor's models allow it; not counted)
  or mistyped (counted) ``OptimalEnable`` / ``HostGroupName`` / ``DomainName`` / ``AppName``
  / ``SourceFrom`` -> ``""`` (``None`` for OptimalEnable, rendered ``""``), ``MasterFlag``
  other than 1 -> not master, a publisher
  without a usable ``UpstreamSequence`` is left out, an unreadable ``PublishTime`` -> no
  timestamp; strings longer than :data:`MAX_FIELD_CHARS` are cut;
- several groups with one ``StreamName``: the one with the lowest master ``UpstreamSequence``
  wins (then a total order over the whole value), whatever the reply order, so an order that
  flips between replies counts nothing;
- a full list of :data:`VENDOR_CEILING` groups or more may be truncated by the vendor: it
  judges no absence either.

Every case is counted in ``Snapshot.anomalies`` (reason -> count; the reasons are the
:class:`Anomaly` values, a bounded set fit for a label). ``BackupList: null`` (no publishers)
and ``StreamInfoList: null`` (no stream) are documented values, not anomalies.

**Steady state is cheap** (:func:`parse_snapshot_cached`): between two polls ~98% of a
region's groups come back unchanged, so a group's outcome is remembered under a fingerprint
and, when the next reply has the very same group, reused as is: the same ``Stream`` object,
so the diff's ``is`` fast path skips it and the store does nothing for it. The fingerprint is
the group's text in a compact reply (the reply is cut before each ``{"<first key>":``; see
:func:`_cut_groups`), else ``orjson.dumps`` of the parsed group; both are hashed with Python's
keyed 64-bit SipHash (a new group matching one of 20,000 remembered fingerprints by accident:
odds ~1e-15 per group). Either way the outcome is what :func:`_read_group` made of the very same
JSON, so the cached and uncached parses are the same function of the reply (a property test
holds them equal). :func:`parse_snapshot` is the cached parse with nothing cached.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from itertools import pairwise, repeat
from operator import attrgetter
from os import urandom
from typing import Any, NoReturn

import orjson

from exporter.model import Publisher, Snapshot, Stream
from exporter.tencent.errors import MAX_REQUEST_ID_CHARS, BadResponse, PollError, api_error

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_STREAM_NAME_BYTES",
    "VENDOR_CEILING",
    "Anomaly",
    "ParseCache",
    "parse_publish_time",
    "parse_snapshot",
    "parse_snapshot_cached",
]

#: The longest StreamName accepted, in UTF-8 bytes. The vendor's API reference for CSS
#: (live 2018-08-01, ``CommonMixInputParam.InputStreamName``) documents stream names of "up
#: to 80 bytes of letters, digits, and underscores"; a longer one is not a real stream.
MAX_STREAM_NAME_BYTES = 80
#: Other vendor strings that become label values are cut to this many characters.
MAX_FIELD_CHARS = 256
#: An UpstreamSequence is an unsigned 64-bit number (20 digits); 32 leaves room.
_MAX_SEQUENCE_CHARS = 32
#: The vendor documents this action for fewer than 20,000 streams: a list this long may be cut.
VENDOR_CEILING = 20_000
_MAX_VENDOR_MESSAGE = 500
_MAX_VALUE_REPR = 40
_MAX_KEY = 64
_BEIJING = timezone(timedelta(hours=8))
_FLAGS = (0, 1)
_COMMA = ord(",")


class Anomaly(StrEnum):
    """Why part of a reply was not taken as is: the ``reason`` label of parse anomalies."""

    NAMELESS_GROUP = "nameless_group"  # skipped; absences judge nothing
    LONG_STREAM_NAME = "stream_name_too_long"  # skipped; unknown
    MALFORMED_GROUP = "malformed_group"  # BackupList neither list nor null; skipped; unknown
    DUPLICATE_STREAM_NAME = "duplicate_stream_name"  # one copy chosen, order-independently
    MISTYPED_FIELD = "mistyped_field"  # a string or integer field of another type, read as ""
    LONG_FIELD = "long_field"  # a string cut to MAX_FIELD_CHARS
    BAD_MASTER_FLAG = "bad_master_flag"  # MasterFlag not 0/1: not master
    PUBLISHER_WITHOUT_SEQUENCE = "publisher_without_sequence"  # publisher left out
    BAD_PUBLISH_TIME = "bad_publish_time"  # no publish timestamp
    LIST_AT_CEILING = "list_at_vendor_ceiling"  # >= VENDOR_CEILING groups; absences judge nothing


@dataclass(frozen=True, slots=True)
class _Odd:
    """A group that needed a tolerance: what was kept of it (``stream``) and why."""

    name: str | None  # None: no usable StreamName
    stream: Stream | None  # None: skipped
    reasons: tuple[Anomaly, ...]


#: What one group became: its Stream, ``None`` when ``admit`` rejected it, or an ``_Odd``.
_Outcome = Stream | _Odd | None
_NAMELESS = _Odd(None, None, (Anomaly.NAMELESS_GROUP,))
_UNSEEN: Any = object()
_NAME = attrgetter("name")


@dataclass(frozen=True, slots=True, eq=False)
class ParseCache:
    """What one region's last reply held, group by group, for :func:`parse_snapshot_cached`.

    Only ever an optimisation: a remembered outcome is what reading the same group afresh
    gives, so a cache that is stale, from a reply that was never applied, or empty, changes
    how fast a parse is, never what it returns. Hold one per region, for full-list replies.
    """

    groups: Mapping[int, _Outcome]
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
    known: Mapping[int, _Outcome] = {}
    if previous is not None and previous.admit == admit:  # bound methods compare by target
        known = previous.groups
    cut = _cut_groups(body)
    if cut is not None:
        groups, fingerprints, request_id = cut
        try:
            outcomes = _outcomes(groups, fingerprints, known, admit)
        except _NotOneGroup:
            cut = None
    if cut is None:
        groups, request_id = _groups(body)
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
    known: Mapping[int, _Outcome],
    admit: Callable[[str], bool] | None,
) -> list[_Outcome]:
    """Every group's outcome: remembered ones as they were, the others read now."""
    outcomes: list[_Outcome] = list(map(known.get, fingerprints, repeat(_UNSEEN)))
    times: dict[str, float | None] = {}  # publishers of one fleet often share a PublishTime
    for index in [i for i, item in enumerate(outcomes) if item is _UNSEEN]:
        outcomes[index] = _read_group(groups[index], admit, times)
    return outcomes


def _snapshot(  # noqa: PLR0917 - private, called from one function
    outcomes: list[_Outcome],
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
    outcomes: list[_Outcome], anomalies: Counter[str], unknown: set[str]
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
        assert isinstance(item, _Odd)
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


def _read_group(group: Any, admit: Callable[[str], bool] | None, times: dict[str, float | None]) -> _Outcome:
    """The one reading of a group: its Stream, None when ``admit`` rejects it, or an ``_Odd``."""
    if type(group) is not dict:
        return _NAMELESS
    name = group.get("StreamName")
    if type(name) is not str or not name:
        return _NAMELESS
    if len(name) > MAX_STREAM_NAME_BYTES // 4 and len(name.encode()) > MAX_STREAM_NAME_BYTES:
        return _Odd(name, None, (Anomaly.LONG_STREAM_NAME,))
    if admit is not None and not admit(name):
        return None
    reasons: list[Anomaly] = []
    backups = group.get("BackupList", _UNSEEN)
    if type(backups) is list:
        publishers = _publishers(backups, reasons, times)
    elif backups is None:
        publishers = ()
    else:
        return _Odd(name, None, (Anomaly.MALFORMED_GROUP,))
    optimal = group.get("OptimalEnable")
    if type(optimal) is not int:
        if optimal is not None:
            reasons.append(Anomaly.MISTYPED_FIELD)
        optimal = None
    host_group = group.get("HostGroupName")
    if type(host_group) is not str:
        if host_group is not None:
            reasons.append(Anomaly.MISTYPED_FIELD)
        host_group = ""
    elif len(host_group) > MAX_FIELD_CHARS:
        host_group = host_group[:MAX_FIELD_CHARS]
        reasons.append(Anomaly.LONG_FIELD)
    stream = Stream(name, sys.intern(host_group), optimal, publishers)
    return _Odd(name, stream, tuple(reasons)) if reasons else stream


def _publishers(
    backups: list[Any], reasons: list[Anomaly], times: dict[str, float | None]
) -> tuple[Publisher, ...]:
    publishers: list[Publisher] = []
    for item in backups:
        if type(item) is not dict:
            reasons.append(Anomaly.PUBLISHER_WITHOUT_SEQUENCE)
            continue
        sequence = item.get("UpstreamSequence")
        if type(sequence) is str:
            if not (sequence.isdigit() and sequence.isascii() and len(sequence) <= _MAX_SEQUENCE_CHARS):
                sequence = None
        elif type(sequence) is int and sequence >= 0:
            sequence = str(sequence) if sequence < 10**_MAX_SEQUENCE_CHARS else None
        else:
            sequence = None
        if sequence is None:
            reasons.append(Anomaly.PUBLISHER_WITHOUT_SEQUENCE)
            continue
        flag = item.get("MasterFlag")
        if type(flag) is not int or flag not in _FLAGS:
            reasons.append(Anomaly.BAD_MASTER_FLAG)
        published = item.get("PublishTime")
        if type(published) is str:
            try:
                timestamp = times[published]
            except KeyError:
                timestamp = times[published] = _publish_time_or_none(published)
        else:
            timestamp = None
        if timestamp is None:
            reasons.append(Anomaly.BAD_PUBLISH_TIME)
        publishers.append(
            Publisher(
                sequence,
                _text(item.get("DomainName"), reasons),
                _text(item.get("AppName"), reasons),
                timestamp,
                _text(item.get("SourceFrom"), reasons),
                type(flag) is int and flag == 1,
            )
        )
    return tuple(publishers)


def _text(value: Any, reasons: list[Anomaly]) -> str:
    # Interned: domain, app and source take a few values fleet-wide, so every publisher shares
    # one copy instead of holding its own (interned strings are still freed when unused).
    if type(value) is str:
        if len(value) <= MAX_FIELD_CHARS:
            return sys.intern(value)
        reasons.append(Anomaly.LONG_FIELD)
        return value[:MAX_FIELD_CHARS]
    if value is not None:
        reasons.append(Anomaly.MISTYPED_FIELD)
    return ""


def _publish_time_or_none(value: str) -> float | None:
    try:
        return parse_publish_time(value)
    except ValueError:
        return None


def parse_publish_time(value: object) -> float:
    """A vendor ``PublishTime`` -> Unix seconds.

    ``"2018-06-29T19:00:00Z"`` is documented; also read: fractions (``.123Z``), explicit
    offsets (``+08:00``), and a time without a zone (``"2018-06-29 19:00:00"``), which is
    Beijing time (UTC+8), the vendor's local time. The separators are checked first because
    ``fromisoformat`` also accepts week dates and compact forms nobody sends.

    Raises:
        ValueError: any other shape, or an impossible date.
    """
    if type(value) is not str or not value.isascii() or not 19 <= len(value) <= 35:
        raise ValueError("not a date-time string")
    if value[4] != "-" or value[7] != "-" or value[10] not in "T " or value[13] != ":" or value[16] != ":":
        raise ValueError("bad separators")
    if value[-1] in "zZ":
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_BEIJING)
    return moment.astimezone(UTC).timestamp()


# -- the reply around the groups ---------------------------------------------------------------


class _NotOneGroup(Exception):
    """A cut of a compact reply that is not exactly one JSON object: parse the reply whole."""


def _cut_groups(body: bytes) -> tuple[Sequence[Any], list[int], str] | None:  # noqa: PLR0911
    """The groups of a compact reply, parsed only when asked for, and their texts' fingerprints.

    The reply is cut before every ``{"K":`` where ``K`` is the first key of the first group (in
    valid JSON those bytes can only start an object whose first key is ``K``). Each cut but
    the last must be exactly one JSON object and a comma: proven by ``orjson.loads`` when its
    text is read (``_NotOneGroup`` otherwise), and before, by the same proof, when its
    fingerprint is remembered. The last cut (the last group and the rest of the reply) is
    parsed behind the head with a probe ``{"K":"<random>"},`` in place of all the others: if
    that document's ``StreamInfoList`` is exactly [probe, X], the cuts sit at element
    positions of ``StreamInfoList``. Anything else (whitespace, nesting, an error reply):
    ``None``, and the caller parses the reply whole.
    """
    marker = body.find(b'"StreamInfoList":[')
    if marker < 0:
        return None
    first = marker + len(b'"StreamInfoList":[')
    end = body.find(b'":', first + 2)
    if body[first : first + 2] != b'{"' or end < 0 or end - first > _MAX_KEY:
        return None
    delimiter = body[first : end + 2]
    if b"\\" in delimiter:  # an escaped key: not worth the trouble
        return None
    # Offsets, not pieces: no copy of the reply is made (each group is a view of it).
    starts = [found.start() for found in re.finditer(re.escape(delimiter), body)]
    if starts[0] != first:  # the key starts an object before StreamInfoList too
        return None
    view = memoryview(body)
    nonce = urandom(8).hex()
    try:
        probe_text = body[:first] + delimiter + b'"' + nonce.encode() + b'"},' + view[starts[-1] :]
        probe, request_id = _groups(probe_text)
    except PollError:
        return None
    key = delimiter[2:-2].decode()
    if len(probe) != 2 or probe[0] != {key: nonce}:
        return None
    fingerprints = [hash(view[a:b]) for a, b in pairwise(starts)]
    try:  # the last group's text runs into the rest of the reply: fingerprint its value
        fingerprints.append(hash(orjson.dumps(probe[1])))
    except orjson.JSONEncodeError:
        return None
    return _CutGroups(view, starts, probe[1]), fingerprints, request_id


class _CutGroups(Sequence[Any]):
    """The groups of :func:`_cut_groups`, parsed only when asked for (only new texts are).

    Group ``i`` is the reply's text from ``starts[i]`` to the comma before ``starts[i + 1]``.
    """

    def __init__(self, view: memoryview, starts: list[int], last: Any) -> None:
        self._view = view
        self._starts = starts
        self._last = last

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, index: Any) -> Any:
        if index == len(self._starts) - 1:
            return self._last
        start, end = self._starts[index], self._starts[index + 1] - 1
        if self._view[end] != _COMMA:
            raise _NotOneGroup
        try:
            return orjson.loads(self._view[start:end])  # trailing bytes fail: one object only
        except orjson.JSONDecodeError:
            raise _NotOneGroup from None


def _groups(body: bytes) -> tuple[list[Any], str]:
    """``Response.StreamInfoList`` and ``Response.RequestId``, or the error the reply carries."""
    response = _response(body)
    request_id = response.get("RequestId")
    # Bounded: it rides along into log lines (a RequestId is a 36-character UUID).
    request_id = request_id[:MAX_REQUEST_ID_CHARS] if type(request_id) is str else ""
    error = response.get("Error")
    if error is not None:
        _raise_api_error(error, request_id)
    try:
        groups = response["StreamInfoList"]
    except KeyError:
        raise BadResponse("Response.StreamInfoList: missing", request_id=request_id) from None
    if groups is None:
        return [], request_id
    if type(groups) is not list:
        raise BadResponse(f"Response.StreamInfoList: not a list: {_short(groups)}", request_id=request_id)
    return groups, request_id


def _response(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadResponse(f"reply is not JSON ({exc}); starts with {_short(body[:32])}") from None
    if type(document) is not dict:
        raise BadResponse(f"reply is not a JSON object: {_short(document)}")
    response = document.get("Response")
    if type(response) is not dict:
        raise BadResponse(f"reply has no Response object: {_short(response)}")
    return response


def _raise_api_error(error: object, request_id: str) -> NoReturn:
    if type(error) is not dict:
        raise BadResponse(f"Response.Error: not an object: {_short(error)}", request_id=request_id)
    code = error.get("Code")
    if type(code) is not str or not code:
        raise BadResponse(f"Response.Error.Code: missing or empty: {_short(code)}", request_id=request_id)
    message = error.get("Message")
    text = message[:_MAX_VENDOR_MESSAGE] if type(message) is str else ""
    raise api_error(code, text, request_id=request_id)


def _short(value: object) -> str:
    """A bounded rendering of an offending value: a reply can be megabytes of nested JSON."""
    if type(value) is dict or type(value) is list:
        return f"{type(value).__name__} of {len(value)}"
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_REPR else text[: _MAX_VALUE_REPR - 3] + "..."
