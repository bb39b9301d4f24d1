"""One group of a DescribeBackupStreamList reply -> its ``Stream``: the rules of SPEC section 9.

:func:`read_group` is the one place that holds them (every parse path calls it):

- a group without a usable ``StreamName`` is skipped (``NAMELESS``): the snapshot then judges
  no absence, since the skipped group could be any stream;
- a ``StreamName`` over :data:`MAX_STREAM_NAME_BYTES`, or a ``BackupList`` that is neither a
  list nor null, skips the group; its name is *unknown* in the snapshot;
- other odd values keep what can be read: null (the vendor's models allow it; not counted)
  or mistyped (counted) ``OptimalEnable`` / ``HostGroupName`` / ``DomainName`` / ``AppName``
  / ``SourceFrom`` -> ``""`` (``None`` for OptimalEnable, rendered ``""``), ``MasterFlag``
  other than 1 -> not master, a publisher without a usable ``UpstreamSequence`` is left out,
  an unreadable ``PublishTime`` -> no timestamp; strings longer than :data:`MAX_FIELD_CHARS`
  are cut.

Each tolerance is named by an :class:`Anomaly` (a bounded set fit for a label).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from exporter.model import Publisher, Stream

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_STREAM_NAME_BYTES",
    "NAMELESS",
    "Anomaly",
    "Odd",
    "Outcome",
    "parse_publish_time",
    "read_group",
]

#: The longest StreamName accepted, in UTF-8 bytes. The vendor documents no general limit (its
#: API reference names 80 bytes only for a stream-mixing input); 256 keeps a real name of any
#: plausible length while a 5 MB one can neither become a label nor reach ``/events``, and it
#: stays inside the label bound used for other vendor strings (``MAX_FIELD_CHARS``).
MAX_STREAM_NAME_BYTES = 256
#: Other vendor strings that become label values are cut to this many characters.
MAX_FIELD_CHARS = 256
#: An UpstreamSequence is an unsigned 64-bit number (20 digits); 32 leaves room.
_MAX_SEQUENCE_CHARS = 32
_BEIJING = timezone(timedelta(hours=8))
_FLAGS = (0, 1)
_MISSING: Any = object()


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
class Odd:
    """A group that needed a tolerance: what was kept of it (``stream``) and why."""

    name: str | None  # None: no usable StreamName
    stream: Stream | None  # None: skipped
    reasons: tuple[Anomaly, ...]


#: What one group became: its Stream, ``None`` when ``admit`` rejected it, or an ``Odd``.
Outcome = Stream | Odd | None
#: A group without a usable StreamName.
NAMELESS = Odd(None, None, (Anomaly.NAMELESS_GROUP,))
NAMELESS = Odd(None, None, (Anomaly.NAMELESS_GROUP,))


def read_group(group: Any, admit: Callable[[str], bool] | None, times: dict[str, float | None]) -> Outcome:
    """The one reading of a group: its Stream, None when ``admit`` rejects it, or an ``Odd``."""
    if type(group) is not dict:
        return NAMELESS
    name = group.get("StreamName")
    if type(name) is not str or not name:
        return NAMELESS
    if len(name) > MAX_STREAM_NAME_BYTES // 4 and len(name.encode()) > MAX_STREAM_NAME_BYTES:
        return Odd(name, None, (Anomaly.LONG_STREAM_NAME,))
    if admit is not None and not admit(name):
        return None
    reasons: list[Anomaly] = []
    backups = group.get("BackupList", _MISSING)
    if type(backups) is list:
        publishers = _publishers(backups, reasons, times)
    elif backups is None:
        publishers = ()
    else:
        return Odd(name, None, (Anomaly.MALFORMED_GROUP,))
    optimal = group.get("OptimalEnable")
    if type(optimal) is not int:
        if optimal is not None:
            reasons.append(Anomaly.MISTYPED_FIELD)
        optimal = None
    stream = Stream(name, _text(group.get("HostGroupName"), reasons), optimal, publishers)
    return Odd(name, stream, tuple(reasons)) if reasons else stream


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
    """A string field that becomes a label value: ``""`` when null or mistyped, cut when long.

    Interned: host group, domain, app and source take a few values fleet-wide, so every stream
    and publisher shares one copy instead of holding its own (still freed when unused).
    """
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
