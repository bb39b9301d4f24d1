"""One-shot (or N-times) faults that replace the simulator's next replies.

The vendor warns the API is "not to be strongly relied on"; these are the ways it, or
something between us and it, lets a poller down. Each fault is a value; the queue hands out
the first pending fault matching a request's account and region and counts it down.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Fault", "FaultKind", "FaultQueue"]


class FaultKind(StrEnum):
    ERROR = "error"  # HTTP 200 with Response.Error {code, message}
    HTTP_STATUS = "http_status"  # a gateway/proxy failure: HTTP 5xx with an HTML body
    HTML = "html"  # HTTP 200 whose body is an HTML page (captive portal, misrouted proxy)
    TRUNCATED = "truncated"  # the real reply cut in the middle
    WRONG_SHAPE = "wrong_shape"  # valid JSON that is not a DescribeBackupStreamList reply
    NULL_LIST = "null_list"  # success with StreamInfoList null, whatever is online
    DELAY = "delay"  # the real reply, after ``delay`` seconds
    RESET = "reset"  # connection closed (RST) without any reply


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """What to do instead of a normal reply, and to which requests.

    Args:
        kind: see ``FaultKind``.
        code, message: the error for ``ERROR`` (default ``InternalError``).
        status: the HTTP status for ``HTTP_STATUS`` (400-599).
        delay: seconds for ``DELAY``.
        times: how many matching requests it replaces before it is used up.
        secret_id, region: match only this account / region; ``None`` matches any.

    Raises:
        ValueError: a field out of range.
    """

    kind: FaultKind
    code: str = "InternalError"
    message: str = "An internal error has occurred. Retry your request."
    status: int = 502
    delay: float = 0.0
    times: int = 1
    secret_id: str | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        if self.times < 1:
            raise ValueError("times must be >= 1")
        if not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")
        if not self.code:
            raise ValueError("code must not be empty")

    def matches(self, secret_id: str | None, region: str | None) -> bool:
        return (self.secret_id is None or self.secret_id == secret_id) and (
            self.region is None or self.region == region
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build from the control API's JSON; unknown keys are errors, not silently ignored.

        Raises:
            ValueError: unknown key, bad kind or bad value.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


class FaultQueue:
    """Thread-safe FIFO of pending faults; the first match wins and is counted down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[list[Any]] = []  # [fault, remaining]

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._pending.append([fault, fault.times])

    def take(self, secret_id: str | None, region: str | None) -> Fault | None:
        """Consume one use of the first pending fault matching this request, if any."""
        with self._lock:
            for index, entry in enumerate(self._pending):
                fault: Fault = entry[0]
                if fault.matches(secret_id, region):
                    entry[1] -= 1
                    if entry[1] <= 0:
                        del self._pending[index]
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def pending(self) -> list[tuple[Fault, int]]:
        """Each pending fault with its remaining uses, in the order they will match."""
        with self._lock:
            return [(entry[0], entry[1]) for entry in self._pending]

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)
