"""Recent events for ``/events`` and the JSON shape shared with the event log line.

The runner records from the poll loop while the web thread reads, so the ring is locked.
Events are turned into dicts once, when recorded: a scrape of ``/events`` then only copies
at most ``maxlen`` small dicts, and an event storm (a region dropping 20,000 streams) converts
no more events than the ring can hold.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable

from .model import Event

__all__ = ["EventLog", "event_to_dict", "rfc3339"]


def rfc3339(timestamp: float) -> str:
    """Unix seconds as RFC 3339 UTC: ``2026-11-27T07:00:00Z``, or ``...00.250Z`` when fractional.

    Rounded to whole milliseconds first, so 59.9996 s becomes the next second rather than
    printing ``.1000``.
    """
    millis = round(timestamp * 1000)
    seconds, ms = divmod(millis, 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{ms:03d}Z" if ms else f"{text}Z"


def event_to_dict(event: Event) -> dict[str, object]:
    """The JSON-ready shape of an event (SPEC section 7), only with the keys that apply.

    ``from_`` is spelled ``from`` as the SPEC has it. Values pass through untouched: stream
    names and sources are user data, escaping is the renderer's job (JSON, logfmt).
    """
    out: dict[str, object] = {
        "time": rfc3339(event.time),
        "account": event.account,
        "region": event.region,
        "stream": event.stream,
        "kind": str(event.kind),
    }
    if event.reason is not None:
        out["reason"] = str(event.reason)
    if event.from_ is not None:
        out["from"] = event.from_
    if event.to is not None:
        out["to"] = event.to
    for key, value in event.extra.items():
        out.setdefault(key, value)  # never lets extra shadow a SPEC key
    return out


class EventLog:
    """A bounded, thread-safe ring of recent events, newest first.

    Events recorded together (one snapshot) keep their order among themselves; batches are
    newest first. When a batch alone exceeds ``maxlen``, its first ``maxlen`` events are kept.
    """

    def __init__(self, maxlen: int = 1000) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, got {maxlen}")
        self._maxlen = maxlen
        self._items: deque[dict[str, object]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    @property
    def maxlen(self) -> int:
        return self._maxlen

    def record(self, events: Iterable[Event]) -> None:
        batch = [event_to_dict(e) for e in itertools.islice(events, self._maxlen)]
        if not batch:
            return
        with self._lock:
            # extendleft reverses, so feed it reversed to keep the batch's own order on top.
            self._items.extendleft(reversed(batch))

    def recent(self) -> list[dict[str, object]]:
        """Copies, so a caller editing a dict cannot change what the next reader sees."""
        with self._lock:
            return [dict(item) for item in self._items]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
