"""Vendor JSON -> ``Snapshot``: the only module that knows the shape of a DescribeBackupStreamList reply.

Strict, because a reply we half-understand must never be taken for "these streams are gone":
any deviation raises ``BadResponse`` naming the field and the stream, and the runner keeps the
previous snapshot. Cheap, because a region holds up to 20,000 streams: one pass, ``type() is``
checks (a reply is plain JSON, so exact types are the right test, and ``bool`` is not accepted
where the vendor sends ``0``/``1``), and the timestamp parsed by the C ``fromisoformat``.

Two tolerances, both lossless: ``BackupList: null`` reads as no publishers, and
``HostGroupName: null`` as ``""``. ``StreamInfoList: null`` is a successful empty snapshot;
a missing ``StreamInfoList`` is not.

Steady state is cheaper still (:func:`parse_snapshot_cached`): between two polls ~98% of a
region's groups come back unchanged, so each group is fingerprinted and, when the previous
reply had the very same group, the previous ``Stream`` object is reused as is. The diff's
``is`` fast path then skips it and the store does nothing for it; only new and changed groups
are checked and built. The fingerprint is ``hash(orjson.dumps(group))``: unlike
``dict == dict`` it tells ``1`` from ``1.0`` and ``true`` (equal in Python, and the checks
below reject the last two), so a reused group is one that passed exactly these checks before;
and unlike keeping the raw dicts (~1.7 kB a group, 33 MB a 20,000-stream region) it costs an
int a group. It is Python's keyed (per-process random) 64-bit SipHash: a new or changed group
matches one of its region's 20,000 remembered fingerprints with odds of ~1e-15, i.e. about
once in 300,000 years at 100k streams with 1.5% of them new or changed every 15 s. A BLAKE2b
digest would make that 2**-128 but costs ~12 ms more per region, 15% of ``json.loads``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from itertools import repeat
from operator import attrgetter
from os import urandom
from typing import Any, Literal, NoReturn, cast

import orjson
import structlog

from exporter.model import Publisher, Snapshot, Stream
from exporter.tencent.errors import BadResponse, PollError, api_error

__all__ = ["ParseCache", "parse_publish_time", "parse_snapshot", "parse_snapshot_cached"]

_MAX_VENDOR_MESSAGE = 500
_MAX_VALUE_REPR = 40
_FLAGS = (0, 1)
_PUBLISHER_KEYS = frozenset(
    ("DomainName", "AppName", "PublishTime", "UpstreamSequence", "SourceFrom", "MasterFlag")
)
_MISSING: Any = object()
_MAX_KEY = 64


@dataclass(frozen=True, slots=True, eq=False)
class ParseCache:
    """What one region's last reply held, group by group, for :func:`parse_snapshot_cached`.

    Only ever an optimisation: a reused ``Stream`` equals what building the group afresh would
    give, so a cache that is stale, from a reply that was never applied, or empty, changes
    how fast a parse is, never what it returns. Hold one per region, for full-list replies.

    Attributes:
        groups: fingerprint of a group (``orjson.dumps``) -> the ``Stream`` built from it, or
            ``None`` for a group ``admit`` rejected (after its top-level fields were checked).
        admit: the filter those decisions were made with; a parse with another filter
            ignores the cache.
        texts: the same, fingerprinted by the group's text in the reply (``_by_text``).
    """

    groups: Mapping[int, Stream | None]
    admit: Callable[[str], bool] | None = None
    texts: Mapping[int, Stream | None] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.groups) + len(self.texts)


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
            publishers are not even parsed).
        scope: passed through to the Snapshot (watch-list mode: the names queried).

    Raises:
        ApiError: ``Response.Error`` (``Throttled`` for ``RequestLimitExceeded*``).
        BadResponse: not JSON, not the documented shape, or a value out of its domain.
    """
    groups, request_id = _groups(body)
    reader = _Reader(admit, request_id)
    reader.take_in_order(groups, [_Mark.UNSEEN] * len(groups))
    return reader.snapshot(account=account, region=region, taken_at=taken_at, scope=scope)


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
    """:func:`parse_snapshot`, reusing the ``Stream`` of every group unchanged since ``previous``.

    Returns the snapshot and the cache for the next parse of the same region. A failure raises
    exactly as :func:`parse_snapshot` would, and the caller keeps ``previous``. New and changed
    groups are checked just as strictly; an unchanged one is, after ``orjson``, the very text
    of a group that passed those checks in the previous reply.

    Args:
        previous: the cache from the region's last successful full-list parse, or ``None``.
    """
    reuse: Mapping[int, Stream | None] = {}
    reuse_texts: Mapping[int, Stream | None] = {}
    if previous is not None and previous.admit == admit:  # bound methods compare by target
        reuse, reuse_texts = previous.groups, previous.texts
    fast = _by_text(body, reuse_texts, admit)
    if fast is not None:
        reader, remember_texts = fast
        snapshot = reader.snapshot(account=account, region=region, taken_at=taken_at, scope=scope)
        return snapshot, ParseCache({}, admit, remember_texts)
    groups, request_id = _groups(body)
    reader = _Reader(admit, request_id)
    dumps = orjson.dumps
    try:
        fingerprints = [hash(dumps(group)) for group in groups]
    except orjson.JSONEncodeError:  # a group nested deeper than dumps allows: remember nothing
        reader.take_in_order(groups, [_Mark.UNSEEN] * len(groups))
        return reader.snapshot(account=account, region=region, taken_at=taken_at, scope=scope), ParseCache(
            {}, admit
        )
    found: list[_Found] = list(map(reuse.get, fingerprints, repeat(_Mark.UNSEEN)))
    if reader.take_changed(groups, found):
        remember = dict(zip(fingerprints, cast("list[Stream | None]", found), strict=True))
    else:
        # Duplicate names or a malformed group: vendor order decides what wins and what fails.
        reader = _Reader(admit, request_id)
        found = list(map(reuse.get, fingerprints, repeat(_Mark.UNSEEN)))
        reader.take_in_order(groups, found)
        remember = {
            fingerprint: item
            for fingerprint, item in zip(fingerprints, found, strict=True)
            if not isinstance(item, _Mark)
        }
    snapshot = reader.snapshot(account=account, region=region, taken_at=taken_at, scope=scope)
    return snapshot, ParseCache(remember, admit)


def _by_text(
    body: bytes, reuse: Mapping[int, Stream | None], admit: Callable[[str], bool] | None
) -> tuple[_Reader, dict[int, Stream | None]] | None:
    """Steady state without parsing what did not change: groups recognised by their reply text.

    The reply is cut before every ``{"K":`` where ``K`` is the first key of the first group
    (in valid JSON those bytes can only start an object whose first key is ``K``). Each cut but
    the last must be exactly one JSON object and a comma: proven by ``orjson.loads`` when its
    text is new, or earlier, when the very same text was (its fingerprint is remembered). The
    last cut (the last group and the rest of the reply) is parsed behind the head with a probe
    ``{"K":"<random>"},`` in place of all the others: if that document's ``StreamInfoList`` is
    exactly [probe, X], the cuts sit at element positions of ``StreamInfoList`` and the reply
    is the valid document whose groups are the cuts' objects and X. Nested or reordered
    objects, whitespace, a malformed or duplicated group, an error reply: ``None``, and the
    caller parses the reply whole, which also words any failure exactly as usual.
    """
    cut = _cut(body)
    if cut is None:
        return None
    head, delimiter, pieces = cut
    nonce = urandom(8).hex()
    try:
        probe_groups, request_id = _groups(
            head + delimiter + b'"' + nonce.encode() + b'"},' + delimiter + pieces[-1]
        )
    except PollError:
        return None
    key = delimiter[2:-2].decode()
    if len(probe_groups) != 2 or probe_groups[0] != {key: nonce}:
        return None
    fingerprints = list(map(hash, pieces[:-1]))
    found: list[_Found] = list(map(reuse.get, fingerprints, repeat(_Mark.UNSEEN)))
    found.append(_Mark.UNSEEN)
    reader = _Reader(admit, request_id)
    if not reader.take_changed(_CutGroups(delimiter, pieces, probe_groups[1]), found):
        return None
    return reader, dict(zip(fingerprints, cast("list[Stream | None]", found), strict=False))


def _cut(body: bytes) -> tuple[bytes, bytes, list[bytes]] | None:
    """(head, ``{"K":``, the text after each ``{"K":``) for a compact reply, else None."""
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
    pieces = body.split(delimiter)
    if len(pieces[0]) != first:  # the key starts an object before StreamInfoList too
        return None
    return pieces[0], delimiter, pieces[1:]


class _CutGroups(Sequence[Any]):
    """The groups of :func:`_by_text`, parsed only when asked for (only new texts are)."""

    def __init__(self, delimiter: bytes, pieces: list[bytes], last: Any) -> None:
        self._delimiter = delimiter
        self._pieces = pieces
        self._last = last

    def __len__(self) -> int:
        return len(self._pieces)

    def __getitem__(self, index: Any) -> Any:
        if index == len(self._pieces) - 1:
            return self._last
        text = self._pieces[index].rstrip(b" \t\r\n")
        if not text.endswith(b","):
            raise BadResponse("not one group")  # never shown: the caller falls back
        try:
            return orjson.loads(self._delimiter + text[:-1])  # trailing bytes fail: one object only
        except orjson.JSONDecodeError:
            raise BadResponse("not one group") from None


def _groups(body: bytes) -> tuple[list[Any], str]:
    """``Response.StreamInfoList`` and ``Response.RequestId``, or the error the reply carries."""
    response = _response(body)
    request_id = response.get("RequestId")
    error = response.get("Error")
    if error is not None:
        _raise_api_error(error, request_id)
    if type(request_id) is not str:
        raise BadResponse("Response.RequestId: missing or not a string")
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


def _raise_api_error(error: object, request_id: object) -> NoReturn:
    rid = request_id if type(request_id) is str else ""
    if type(error) is not dict:
        raise BadResponse(f"Response.Error: not an object: {_short(error)}", request_id=rid)
    code = error.get("Code")
    if type(code) is not str or not code:
        raise BadResponse(f"Response.Error.Code: missing or empty: {_short(code)}", request_id=rid)
    message = error.get("Message")
    text = message[:_MAX_VENDOR_MESSAGE] if type(message) is str else ""
    raise api_error(code, text, request_id=rid)


class _Mark(Enum):
    UNSEEN = "unseen"  # not in the previous reply: to be checked and built
    DUPLICATE = "duplicate"  # an earlier group had the name: ignored


#: What a group became: its Stream, None when ``admit`` rejected it, or a mark.
_Found = Stream | None | _Mark
_NAME = attrgetter("name")


class _Reader:
    """One reply's groups: 20,000 of them and twice as many publishers a region.

    Checks are inlined and messages are built only on failure (``_diagnose``), so a healthy
    reply pays for little more than the objects it produces.
    """

    __slots__ = ("_admit", "_duplicates", "_request_id", "_streams", "_times")

    def __init__(self, admit: Callable[[str], bool] | None, request_id: str) -> None:
        self._admit = admit
        self._request_id = request_id
        self._streams: dict[str, Stream] = {}
        self._duplicates: list[str] = []
        self._times: dict[str, float] = {}  # publishers of one fleet often share a PublishTime

    def take_in_order(self, groups: list[Any], found: list[_Found]) -> None:
        """Every group in vendor order: the first of a name wins, later copies are only counted.

        ``found`` holds what is already known (a reused Stream, or None for a rejected group)
        and ``_Mark.UNSEEN`` for what is to be checked; each entry is replaced by the outcome.
        """
        streams = self._streams
        for index, item in enumerate(found):
            if item is _Mark.UNSEEN:
                found[index] = self._take(groups[index], index, add=True)
            elif item is not None and item is not _Mark.DUPLICATE:
                if item.name in streams:
                    self._duplicates.append(item.name)
                    found[index] = _Mark.DUPLICATE
                else:
                    streams[item.name] = item

    def take_changed(self, groups: Sequence[Any], found: list[_Found]) -> bool:
        """Build only the unseen groups, then take every stream in one go.

        The steady-state path: no Python-level step for an unchanged group. On True, every
        entry of ``found`` is a Stream or None. False (and this reader is spent) when a group
        was malformed or a name came twice, cases where only :meth:`take_in_order` says
        exactly what the reply means.
        """
        try:
            for index in [i for i, item in enumerate(found) if item is _Mark.UNSEEN]:
                found[index] = self._take(groups[index], index, add=False)
        except BadResponse:
            return False
        kept = [item for item in found if isinstance(item, Stream)]
        self._streams = dict(zip(map(_NAME, kept), kept, strict=True))
        return len(self._streams) == len(kept)

    def _take(self, group: Any, index: int, *, add: bool) -> Stream | Literal[_Mark.DUPLICATE] | None:
        """Check and build one group; with ``add``, also keep it unless its name came before."""
        try:
            name = group["StreamName"]
            optimal = group["OptimalEnable"]
            host_group = group["HostGroupName"]
            backups = group["BackupList"]
        except (KeyError, TypeError):
            raise _diagnose(group, index, self._request_id) from None
        if type(name) is not str or not name or type(optimal) is not int:
            raise _diagnose(group, index, self._request_id)
        if type(host_group) is not str:
            if host_group is not None:
                raise _diagnose(group, index, self._request_id)
            host_group = ""
        if add and name in self._streams:
            self._duplicates.append(name)  # keep the first: later copies cannot be told apart safely
            return _Mark.DUPLICATE
        if self._admit is not None and not self._admit(name):
            return None
        if type(backups) is list:
            publishers = _publishers(backups, self._times)
            if publishers is None:
                raise _diagnose(group, index, self._request_id)
        elif backups is None:
            publishers = ()
        else:
            raise _diagnose(group, index, self._request_id)
        stream = Stream(name, host_group, optimal, publishers)
        if add:
            self._streams[name] = stream
        return stream

    def snapshot(
        self, *, account: str, region: str, taken_at: float, scope: frozenset[str] | None
    ) -> Snapshot:
        if self._duplicates:
            structlog.get_logger().warning(
                "duplicate_stream_names",
                account=account,
                region=region,
                request_id=self._request_id,
                count=len(self._duplicates),
                examples=self._duplicates[:5],
            )
        return Snapshot(
            account=account,
            region=region,
            taken_at=taken_at,
            streams=self._streams,
            request_id=self._request_id,
            scope=scope,
        )


def _publishers(backups: list[Any], times: dict[str, float]) -> tuple[Publisher, ...] | None:
    """One group's BackupList, or None when anything in it is off (the caller explains)."""
    publishers: list[Publisher] = []
    for item in backups:
        try:
            domain = item["DomainName"]
            app = item["AppName"]
            published = item["PublishTime"]
            sequence = item["UpstreamSequence"]
            source = item["SourceFrom"]
            flag = item["MasterFlag"]
            timestamp = times[published]
        except KeyError:
            # A field is missing, or only the PublishTime cache missed; in the latter case
            # every field above was read in this very iteration.
            if not item.keys() >= _PUBLISHER_KEYS:
                return None
            try:
                timestamp = parse_publish_time(published)
            except ValueError:
                return None
            times[published] = timestamp
        except TypeError:
            return None
        if type(sequence) is not str or not sequence.isdigit() or not sequence.isascii():
            if type(sequence) is not int or sequence < 0:
                return None
            sequence = str(sequence)
        if (
            type(domain) is not str
            or type(app) is not str
            or type(source) is not str
            or type(flag) is not int
            or flag not in _FLAGS
        ):
            return None
        publishers.append(Publisher(sequence, domain, app, timestamp, source, flag == 1))
    return tuple(publishers)


def _diagnose(group: Any, index: int, request_id: str) -> BadResponse:
    """Slow path: say which field of which stream broke the shape, without dumping the reply."""
    where = f"StreamInfoList[{index}]"
    if type(group) is not dict:
        return _bad(where, "", f"not an object: {_short(group)}", request_id)
    name = group.get("StreamName", _MISSING)
    if type(name) is not str or not name:
        return _bad(where, "StreamName", _problem(name, "a non-empty string"), request_id)
    where = f"{where} ({_short(name)})"
    field, problem = _group_problem(group)
    return _bad(where, field, problem, request_id)


def _group_problem(group: dict[str, Any]) -> tuple[str, str]:
    optimal = group.get("OptimalEnable", _MISSING)
    if type(optimal) is not int:
        return "OptimalEnable", _problem(optimal, "an integer")
    host_group = group.get("HostGroupName", _MISSING)
    if host_group is not None and type(host_group) is not str:
        return "HostGroupName", _problem(host_group, "a string")
    backups = group.get("BackupList", _MISSING)
    if backups is not None and type(backups) is not list:
        return "BackupList", _problem(backups, "a list")
    for position, item in enumerate(backups or ()):
        problem = _publisher_problem(item)
        if problem is not None:
            return f"BackupList[{position}]{problem[0]}", problem[1]
    return "", "malformed"  # unreachable while the fast and slow paths agree


def _publisher_problem(item: Any) -> tuple[str, str] | None:
    if type(item) is not dict:
        return "", f"not an object: {_short(item)}"
    for field in ("DomainName", "AppName", "SourceFrom"):
        value = item.get(field, _MISSING)
        if type(value) is not str:
            return f".{field}", _problem(value, "a string")
    sequence = item.get("UpstreamSequence", _MISSING)
    if not (type(sequence) is str and sequence.isdigit() and sequence.isascii()) and not (
        type(sequence) is int and sequence >= 0
    ):
        return ".UpstreamSequence", _problem(sequence, "a string of digits")
    flag = item.get("MasterFlag", _MISSING)
    if type(flag) is not int or flag not in _FLAGS:
        return ".MasterFlag", _problem(flag, "0 or 1")
    published = item.get("PublishTime", _MISSING)
    try:
        parse_publish_time(published)
    except ValueError:
        return ".PublishTime", _problem(published, "'YYYY-MM-DDTHH:MM:SSZ'")
    return None


def parse_publish_time(value: object) -> float:
    """``"2018-06-29T19:00:00Z"`` (or ``"2018-06-29 19:00:00"``, read as UTC) -> Unix seconds.

    The separators are checked by hand first because ``fromisoformat`` also accepts week
    dates, offsets and fractions, none of which the vendor documents.

    Raises:
        ValueError: any other shape, or an impossible date.
    """
    if type(value) is not str or not value.isascii():
        raise ValueError("not an ASCII string")
    if value[4:5] != "-" or value[7:8] != "-" or value[13:14] != ":" or value[16:17] != ":":
        raise ValueError("bad separators")
    if len(value) == 20 and value[10] == "T" and value[19] == "Z":
        return datetime.fromisoformat(value).timestamp()
    if len(value) == 19 and value[10] == " ":
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    raise ValueError("bad length or separators")


def _bad(where: str, field: str, problem: str, request_id: str) -> BadResponse:
    path = f"{where}: {field}" if field else where
    return BadResponse(f"{path}: {problem}", request_id=request_id)


def _problem(value: object, expected: str) -> str:
    return "missing" if value is _MISSING else f"want {expected}, got {_short(value)}"


def _short(value: object) -> str:
    """A bounded rendering of an offending value: a reply can be megabytes of nested JSON."""
    if type(value) is dict or type(value) is list:
        return f"{type(value).__name__} of {len(value)}"
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_REPR else text[: _MAX_VALUE_REPR - 3] + "..."
