"""Faults: what the vendor, or something between us and it, does instead of a clean reply.

The vendor calls this API "not to be strongly relied on", and its models mark most group
fields as possibly null. Every unkindness the documentation allows is a ``Fault`` value, not a
code path: a few kinds either replace the reply (an error code, an HTTP status, an HTML page,
the wrong JSON, a reset) or change the normal one (cut it, null its list, delay it, set one
field of some groups or publishers to any JSON value, repeat groups under one StreamName).
Strings in a fault are templates, so reflected headers, random and huge values are data too:

- ``{header:X-TC-Token}``: that request header's value ("" when absent);
- ``{secret_id}``: the SecretId the request claimed;
- ``{random}``: 16 seeded random letters and digits (a new error code on every reply);
- ``{pad:N}``: N bytes of ``x`` (long codes, huge RequestIds, huge bodies).

The queue hands a request every pending fault that matches it, in order, up to and including
the first one that replaces the reply; each counts one use. ``catalogue.py`` names the
documented cases so ``python -m exporter.simulator --fault NAME`` replays them for anyone.
"""

from __future__ import annotations

import copy
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "MAX_PAD",
    "REPLACING",
    "Fault",
    "FaultKind",
    "FaultQueue",
    "Taken",
    "apply_to_list",
    "expand",
]

MAX_PAD: Final = 1 << 30  # {pad:N} beyond 1 GiB is a typo, not a test
_TEMPLATE: Final = re.compile(r"\{(header:[A-Za-z0-9_-]+|secret_id|random|pad:\d+)\}")
_ALNUM: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_SCOPES: Final = (None, "list", "name")


class FaultKind(StrEnum):
    ERROR = "error"  # HTTP 200 with Response.Error {Code, Message}
    HTTP_STATUS = "http_status"  # a gateway/proxy failure: HTTP 4xx/5xx with an HTML body
    HTML = "html"  # HTTP 200 whose body is an HTML page (captive portal, misrouted proxy)
    WRONG_SHAPE = "wrong_shape"  # valid JSON that is not a DescribeBackupStreamList reply
    RESET = "reset"  # connection closed (RST) without any reply
    TRUNCATED = "truncated"  # the real reply cut in the middle
    NULL_LIST = "null_list"  # success with StreamInfoList null, whatever is online
    DELAY = "delay"  # the real reply, after ``delay`` seconds
    EDIT = "edit"  # the real reply with ``field`` of some groups (or publishers) set to ``value``
    DUPLICATE = "duplicate"  # the real reply with some groups repeated, order flipping per reply


# Kinds that stand instead of the reply; the others change the normal one and compose.
REPLACING: Final = frozenset(
    {FaultKind.ERROR, FaultKind.HTTP_STATUS, FaultKind.HTML, FaultKind.WRONG_SHAPE, FaultKind.RESET}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """What to do instead of (or to) a normal reply, and to which requests.

    Args:
        kind: see ``FaultKind``.
        code, message: the error for ``ERROR`` (templates).
        request_id: RequestId template of an ``ERROR`` reply ("" = a fresh one).
        status: the HTTP status for ``HTTP_STATUS`` (400-599, 429 included).
        delay: seconds for ``DELAY``.
        field: for ``EDIT``: a group key (``OptimalEnable``), ``BackupList.<key>`` for
            publishers (``BackupList.MasterFlag``), or ``RequestId`` for the reply's own.
        value: for ``EDIT``: any JSON value (``None`` is null); strings are templates.
        stream: ``EDIT``/``DUPLICATE`` touch only groups with this StreamName.
        groups: ``EDIT``/``DUPLICATE`` touch the first N (matching) groups; 0 = all.
        publisher: ``BackupList.*`` edits touch this index only; ``None`` = every publisher.
        times: matching requests it changes before it is used up; 0 = until cleared.
        every: change only every N-th matching request (the others pass untouched).
        secret_id, region: match only this account / region; ``None`` matches any.
        scope: ``"list"`` matches full-list requests only, ``"name"`` by-name ones; ``None`` both.

    Raises:
        ValueError: a field out of range.
    """

    kind: FaultKind
    code: str = "InternalError"
    message: str = "An internal error has occurred. Retry your request."
    request_id: str = ""
    status: int = 502
    delay: float = 0.0
    field: str = ""
    value: Any = None
    stream: str | None = None
    groups: int = 1
    publisher: int | None = None
    times: int = 1
    every: int = 1
    secret_id: str | None = None
    region: str | None = None
    scope: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        problems = [
            why
            for bad, why in (
                (self.times < 0, "times must be >= 0 (0: until cleared)"),
                (self.every < 1, "every must be >= 1"),
                (not 400 <= self.status <= 599, "status must be an HTTP error status (400-599)"),
                (self.delay < 0, "delay must be >= 0"),
                (not self.code, "code must not be empty"),
                (self.groups < 0, "groups must be >= 0 (0: all)"),
                (self.scope not in _SCOPES, 'scope must be "list", "name" or null'),
                (self.kind is FaultKind.EDIT and not self.field.strip("."), "an edit needs a field"),
            )
            if bad
        ]
        for text in (self.code, self.message, self.request_id, self.value):
            if isinstance(text, str):
                problems.extend(f"{{pad:N}} over {MAX_PAD}" for n in _pads(text) if n > MAX_PAD)
        if problems:
            raise ValueError("; ".join(problems))

    def matches(self, secret_id: str | None, region: str | None, by_name: bool = False) -> bool:
        return (
            (self.secret_id is None or self.secret_id == secret_id)
            and (self.region is None or self.region == region)
            and (self.scope is None or self.scope == ("name" if by_name else "list"))
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], presets: Mapping[str, Fault] | None = None) -> Fault:
        """Build from JSON; ``{"preset": NAME, ...}`` starts from a named fault and overrides fields.

        Raises:
            ValueError: unknown key or preset, bad kind or bad value.
        """
        data = dict(data)
        base: dict[str, Any] = {}
        if "preset" in data:
            name = data.pop("preset")
            if presets is None or name not in presets:
                raise ValueError(f"unknown preset {name!r}; GET /_sim/faults lists them")
            base = presets[name].to_dict()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        try:
            return cls(**(base | data))
        except TypeError as exc:
            raise ValueError(str(exc)) from None


def _pads(text: str) -> list[int]:
    return [int(m[4:]) for m in _TEMPLATE.findall(text) if m.startswith("pad:")]


def expand(text: str, *, headers: Mapping[str, str], secret_id: str | None, rng: random.Random) -> str:
    """Fill a fault string's placeholders for one request (``headers`` has lower-case names)."""
    if "{" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        placeholder = match[1]
        if placeholder.startswith("header:"):
            return headers.get(placeholder.removeprefix("header:").lower(), "")
        if placeholder == "secret_id":
            return secret_id or ""
        if placeholder == "random":
            return "".join(rng.choices(_ALNUM, k=16))
        return "x" * int(placeholder.removeprefix("pad:"))

    return _TEMPLATE.sub(one, text)


@dataclass(frozen=True, slots=True)
class Taken:
    """A fault applied to one request; ``use`` counts its earlier applications (0 first)."""

    fault: Fault
    use: int


class _Pending:
    __slots__ = ("fault", "remaining", "seen", "used")

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.remaining = fault.times
        self.seen = 0
        self.used = 0


class FaultQueue:
    """Thread-safe FIFO of pending faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._pending.append(_Pending(fault))

    def take(self, secret_id: str | None, region: str | None, by_name: bool = False) -> list[Taken]:
        """The faults this request gets, in order, up to the first that replaces the reply."""
        taken: list[Taken] = []
        with self._lock:
            for entry in list(self._pending):
                if not entry.fault.matches(secret_id, region, by_name):
                    continue
                entry.seen += 1
                if (entry.seen - 1) % entry.fault.every:
                    continue
                taken.append(Taken(entry.fault, entry.used))
                entry.used += 1
                entry.remaining -= 1
                if entry.remaining == 0:  # times=0 starts at 0 and goes negative: never used up
                    self._pending.remove(entry)
                if entry.fault.kind in REPLACING:
                    break
        return taken

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def pending(self) -> list[tuple[Fault, int]]:
        """Each pending fault with its remaining uses (negative: until cleared), in match order."""
        with self._lock:
            return [(entry.fault, entry.remaining) for entry in self._pending]

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


Expand = Callable[[str], str]


def apply_to_list(groups: list[Any] | None, taken: list[Taken], fill: Expand) -> list[Any] | None:
    """Apply the ``EDIT``/``DUPLICATE`` faults to a decoded ``StreamInfoList`` (a null stays null)."""
    if groups is None:
        return None
    for item in taken:
        fault = item.fault
        if fault.kind is FaultKind.EDIT and fault.field != "RequestId":
            _edit(_targets(groups, fault), fault, fill)
        elif fault.kind is FaultKind.DUPLICATE:
            groups = _duplicate(groups, fault, flip=item.use % 2 == 1)
    return groups


def _targets(groups: list[Any], fault: Fault) -> list[dict[str, Any]]:
    chosen = [
        g
        for g in groups
        if isinstance(g, dict) and (fault.stream is None or g.get("StreamName") == fault.stream)
    ]
    return chosen[: fault.groups] if fault.groups else chosen


def _edit(targets: list[dict[str, Any]], fault: Fault, fill: Expand) -> None:
    head, _, key = fault.field.rpartition(".")
    for group in targets:
        owners: list[Any] = [group]
        if head:
            owners = group.get(head) or []
            if fault.publisher is not None:
                owners = owners[fault.publisher : fault.publisher + 1]
        for owner in owners:
            if isinstance(owner, dict):
                value = copy.deepcopy(fault.value)
                owner[key] = fill(value) if isinstance(value, str) else value


def _duplicate(groups: list[Any], fault: Fault, *, flip: bool) -> list[Any]:
    """Each target gets a twin with other UpstreamSequences; who comes first flips per use."""
    twins = {id(g): _twin(g) for g in _targets(groups, fault)}
    out: list[Any] = []
    for group in groups:
        twin = twins.get(id(group))
        out.extend((group,) if twin is None else (twin, group) if flip else (group, twin))
    return out


def _twin(group: dict[str, Any]) -> dict[str, Any]:
    twin = copy.deepcopy(group)
    for pub in twin.get("BackupList") or []:
        seq = pub.get("UpstreamSequence") if isinstance(pub, dict) else None
        if isinstance(seq, str) and seq[-1:].isdigit():
            pub["UpstreamSequence"] = seq[:-1] + str((int(seq[-1]) + 5) % 10)
    return twin
