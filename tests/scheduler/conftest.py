"""A hand-written fake of the vendor API for runner tests, served through httpx.MockTransport.

The real ``TencentClient`` signs and sends every request; this fake answers with vendor-shaped
JSON from a scriptable world and records arrival times. Faults are scripted per request so a
test can say "the next two requests are throttled" without timing games.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
import structlog


@dataclass
class Fault:
    code: str = ""  # vendor error code; empty for a transport-level fault
    status: int = 200  # non-200 -> HTTP error
    delay: float = 0.0  # seconds before answering (hang to provoke timeouts/stop)


@dataclass
class FakeVendor:
    """The world: region -> stream -> publishers as (sequence, is_master)."""

    world: dict[str, dict[str, list[tuple[str, bool]]]] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    log: list[tuple[float, str, str | None, str]] = field(default_factory=list)  # time, region, name, code
    delay: float = 0.0
    started: int = 0  # requests received, answered or not

    def set_stream(self, region: str, name: str, *publishers: tuple[str, bool]) -> None:
        self.world.setdefault(region, {})[name] = list(publishers)

    def drop_stream(self, region: str, name: str) -> None:
        self.world.get(region, {}).pop(name, None)

    def fail_next(self, count: int, *, code: str = "", status: int = 200, delay: float = 0.0) -> None:
        self.faults.extend(Fault(code=code, status=status, delay=delay) for _ in range(count))

    def codes(self) -> list[str]:
        return [entry[3] for entry in self.log]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.started += 1
        region = request.headers["X-TC-Region"]
        body = orjson.loads(request.content or b"{}")
        name = body.get("StreamName")
        fault = self.faults.popleft() if self.faults else None
        delay = fault.delay if fault and fault.delay else self.delay
        if delay:
            await asyncio.sleep(delay)
        rid = f"rid-{len(self.log)}"
        if fault and fault.status != 200:
            self.log.append((time.monotonic(), region, name, f"HTTP{fault.status}"))
            return httpx.Response(fault.status, text="upstream trouble")
        if fault and fault.code:
            self.log.append((time.monotonic(), region, name, fault.code))
            error = {"Error": {"Code": fault.code, "Message": "scripted"}, "RequestId": rid}
            return httpx.Response(200, content=orjson.dumps({"Response": error}))
        self.log.append((time.monotonic(), region, name, "OK"))
        streams = self.world.get(region, {})
        names = sorted(streams) if name is None else [n for n in (name,) if n in streams]
        groups = [
            {
                "StreamName": n,
                "OptimalEnable": 1,
                "HostGroupName": "hg",
                "BackupList": [
                    {
                        "DomainName": "push.example.com",
                        "AppName": "live",
                        "PublishTime": "2024-05-01T10:00:00Z",
                        "UpstreamSequence": seq,
                        "SourceFrom": "直推流",
                        "MasterFlag": int(master),
                    }
                    for seq, master in streams[n]
                ],
            }
            for n in names
        ]
        return httpx.Response(
            200, content=orjson.dumps({"Response": {"StreamInfoList": groups, "RequestId": rid}})
        )

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


class SteppedMonotonic:
    """Real monotonic time plus a jump the test controls: sleeps still work, windows can pass."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def vendor() -> FakeVendor:
    return FakeVendor()


@pytest.fixture
def stepped() -> SteppedMonotonic:
    return SteppedMonotonic()


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


Clock = Callable[[], float]
