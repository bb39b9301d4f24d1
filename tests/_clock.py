"""The clock tests inject: it moves only when the test says so (no sleeps, exact times)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ManualClock"]


@dataclass
class ManualClock:
    """Calling it returns ``now`` (wall or monotonic seconds, whatever the test passes it as)."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
