"""Helpers: the scheduler driven through ``cli.build_pipeline`` against the embedded simulator.

Only the vendor (``exporter.simulator``, mounted under httpx without a socket) and the wall
clock are faked; credentials, client, parse, diff, store, health and event log are the
daemon's own. Faults are the simulator's (``world.inject(Fault(...))``), so a test can say
"the next two requests are throttled" without timing games.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from exporter.cli import Pipeline, build_pipeline
from exporter.config import AccountConfig, Config
from exporter.credentials import CredentialSettings, Secret
from exporter.model import RegionKey
from exporter.scheduler.ports import RetryPolicy
from exporter.simulator import Account, Fault, FaultKind, Simulator, World, mock_transport
from tests._clock import ManualClock
from tests._prom import value

SECRET_ID = "AKIDschedulertest0001"
SECRET_KEY = "scheduler-test-secret-key-0001"
ENDPOINT = "http://vendor.test"
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)
KEY = RegionKey("prod", "ap-guangzhou")


def wall_clock() -> ManualClock:
    """A wall clock starting now (whole seconds) that the test moves by hand (snapshot times,
    event times, signatures)."""
    return ManualClock(float(int(time.time())))


class SteppedMonotonic:
    """Real monotonic time plus a jump the test controls: sleeps still work, windows can pass."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def account(
    name: str = "prod", *, regions: tuple[str, ...] = ("ap-guangzhou",), **extra: Any
) -> AccountConfig:
    token = extra.pop("token", None)
    settings = CredentialSettings(
        source="static",
        secret_id=SECRET_ID,
        secret_key=Secret(SECRET_KEY),
        session_token=Secret(token) if token else None,
    )
    return AccountConfig(name=name, credentials=settings, regions=regions, endpoint=ENDPOINT, **extra)


@dataclass
class Rig:
    """One pipeline and the simulated vendor behind it."""

    world: World
    sim: Simulator
    pipeline: Pipeline
    clock: ManualClock
    http: httpx.AsyncClient
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def runner(self) -> Any:
        return self.pipeline.runner

    @property
    def events(self) -> Any:
        return self.pipeline.events

    def metric(self, name: str, **labels: str) -> float | None:
        return value(self.pipeline.store.render(), name, **labels)

    def hmetric(self, name: str, **labels: str) -> float | None:
        return value(self.pipeline.health.render(), name, **labels)

    async def baseline(self, *names: str, region: str = KEY.region) -> None:
        """``names`` listed in ``region``, which is polled once: the first poll, nothing to compare."""
        for name in names:
            self.world.add_stream(region, name)
        assert await self.runner.poll_once(RegionKey(KEY.account, region))

    def requests(self) -> list[tuple[str | None, str | None, str]]:
        """(region, StreamName, code) of every request the vendor saw, in arrival order."""
        return [(r.region, r.stream_name, r.code) for r in self.sim.request_log.records()]

    def arrivals(self) -> list[float]:
        return [r.arrival for r in self.sim.request_log.records()]

    def fail_next(self, count: int, code: str = "InternalError", **fault: Any) -> None:
        kind = fault.pop("kind", FaultKind.ERROR)
        self.world.inject(Fault(kind=kind, code=code, times=count, **fault))

    def kinds(self) -> list[str]:
        return [str(e["kind"]) for e in self.events.recent()]


@asynccontextmanager
async def rig(
    world: World | None = None,
    *,
    accounts: tuple[AccountConfig, ...] | None = None,
    rate_limit: float = 20.0,
    monotonic: Any = time.monotonic,
    clock: ManualClock | None = None,
    **config: Any,
) -> AsyncIterator[Rig]:
    """A pipeline polling a simulated vendor; ``config`` are ``Config`` fields."""
    clock = clock or wall_clock()
    world = world or World(
        accounts=[Account(secret_id=SECRET_ID, secret_key=SECRET_KEY)], seed=1, clock=clock
    )
    sim = Simulator(world, rate_limit=rate_limit, monotonic=monotonic)
    config.setdefault("poll_interval", 5.0)
    config.setdefault("request_timeout", 2.0)
    cfg = Config(accounts=accounts or (account(),), **config)
    http = httpx.AsyncClient(transport=mock_transport(sim))
    pipeline = build_pipeline(
        cfg,
        http,
        clock=clock,
        monotonic=monotonic,
        retry=FAST_RETRY,
        env={},
        process_metrics=False,
        revision="test",
    )
    await pipeline.open()
    try:
        yield Rig(world=world, sim=sim, pipeline=pipeline, clock=clock, http=http)
    finally:
        await pipeline.runner.stop(grace=0.5)
        await pipeline.stop()
        await http.aclose()


def with_state_file(config: Config, path: Path | None) -> Config:
    return replace(config, state_file=path)
