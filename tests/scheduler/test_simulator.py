"""The runner against the real SimulatorServer over loopback HTTP, including the issue's acceptance test.

The simulator verifies our signatures, enforces the vendor's sliding-window budget per
SecretId, and logs every arrival: the budget assertions are made on *its* log, i.e. on what
the server saw, not on what we think we sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from exporter.cli import Pipeline, build_pipeline, http_limits
from exporter.config import AccountConfig, Config
from exporter.credentials import CredentialSettings, Secret
from exporter.events import EventLog
from exporter.metrics.health import HealthMetrics
from exporter.metrics.store import MetricStore
from exporter.model import RegionKey
from exporter.scheduler.runner import RetryPolicy, Runner
from exporter.simulator import (
    DEFAULT_REGIONS,
    Account,
    Fault,
    FaultKind,
    SimulatorServer,
    World,
    max_requests_in_window,
)
from tests._prom import value

KEYS = {
    "acct-a": ("AKIDsimulatorAccountA0001", "key-a-0123456789"),
    "acct-b": ("AKIDsimulatorAccountB0002", "key-b-0123456789"),
}
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2)


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    world = World(
        accounts=[Account(secret_id=sid, secret_key=key) for sid, key in KEYS.values()],
        streams_per_region=0,
        seed=11,
    )
    with SimulatorServer(world, rate_limit=20) as srv:
        yield srv


@dataclass
class Rig:
    pipeline: Pipeline

    @property
    def runner(self) -> Runner:
        return self.pipeline.runner

    @property
    def store(self) -> MetricStore:
        return self.pipeline.store

    @property
    def health(self) -> HealthMetrics:
        return self.pipeline.health

    @property
    def events(self) -> EventLog:
        return self.pipeline.events

    def metric(self, name: str, **labels: str) -> float | None:
        return value(self.store.render(), name, **labels)

    def hmetric(self, name: str, **labels: str) -> float | None:
        return value(self.health.render(), name, **labels)


@asynccontextmanager
async def rig(
    server: SimulatorServer,
    *,
    accounts: Sequence[str] = ("acct-a",),
    regions: tuple[str, ...] = ("ap-guangzhou",),
    stream_names: tuple[str, ...] = (),
    rate_limit: float = 20,
    poll_interval: float = 5.0,
    monotonic: Callable[[], float] = time.monotonic,
    drop_confirm_queries: int = 20,
) -> AsyncIterator[Rig]:
    configs = tuple(
        AccountConfig(
            name=name,
            credentials=CredentialSettings(
                source="static", secret_id=KEYS[name][0], secret_key=Secret(KEYS[name][1])
            ),
            regions=regions,
            rate_limit=rate_limit,
            endpoint=server.url,
            stream_names=stream_names,
        )
        for name in accounts
    )
    config = Config(
        poll_interval=poll_interval,
        request_timeout=5.0,
        accounts=configs,
        drop_confirm_queries=drop_confirm_queries,
    )
    # As the daemon's factory does: enough keep-alive connections for every request a budget
    # lets fly at once, so bursts do not open fresh connections (the simulator's backlog is small).
    async with httpx.AsyncClient(limits=http_limits(config)) as http:
        pipeline = build_pipeline(
            config, http, retry=FAST_RETRY, monotonic=monotonic, env={}, process_metrics=False
        )
        await pipeline.open()
        try:
            yield Rig(pipeline)
        finally:
            await pipeline.runner.stop(grace=1.0)
            await pipeline.stop()


def codes(server: SimulatorServer) -> list[str]:
    return [r.code for r in server.request_log.records()]


LABELS = {"account": "acct-a", "region": "ap-guangzhou"}
KEY = RegionKey("acct-a", "ap-guangzhou")


class TestDetectionOverHttp:
    async def test_baseline_then_switchover_counted(self, server: SimulatorServer) -> None:
        server.world.add_stream("ap-guangzhou", "news", publishers=2)
        server.world.add_stream("ap-guangzhou", "sports", publishers=1)

        async with rig(server) as r:
            assert await r.runner.run_cycle() == {KEY: True}
            assert r.metric("tencent_live_region_streams", **LABELS) == 2
            assert r.metric("tencent_live_region_switchovers_total", **LABELS, reason="failover") == 0
            assert r.events.recent() == []
            new_master = server.world.failover("ap-guangzhou", "news")
            await r.runner.run_cycle()
            assert r.metric("tencent_live_region_switchovers_total", **LABELS, reason="failover") == 1
            assert r.metric("tencent_live_region_publisher_losses_total", **LABELS) == 1
            kinds = sorted((e["kind"], e.get("to")) for e in r.events.recent())
            assert kinds == [("publisher_loss", None), ("switchover", new_master)]

    async def test_failure_keeps_gauges_and_counts_no_drop(self, server: SimulatorServer) -> None:
        server.world.add_stream("ap-guangzhou", "news", publishers=2)

        async with rig(server) as r:
            await r.runner.run_cycle()
            for kind in (FaultKind.TRUNCATED, FaultKind.NULL_LIST, FaultKind.HTML):
                null = kind == FaultKind.NULL_LIST
                before = r.store.render()
                server.world.inject(Fault(kind=kind, times=1 if null else FAST_RETRY.attempts))
                assert await r.runner.run_cycle() == {KEY: null}
                assert r.hmetric("tencent_live_up", **LABELS) == (1 if null else 0)
                if not null:
                    assert r.store.render() == before  # a failure moves no gauge
            # Failed, absent (a null list is a successful empty reply), failed: one absence
            # only, so nothing dropped.
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 0
            assert r.metric("tencent_live_stream_online", **LABELS, stream="news") == 1
            bad = r.hmetric("tencent_live_api_requests_total", **LABELS, code="BadResponse")
            assert bad == 2 * FAST_RETRY.attempts
            # ... and back: no drop, no start.
            await r.runner.run_cycle()
            assert r.events.recent() == []

    async def test_throttling_backs_off_and_recovers(self, server: SimulatorServer) -> None:
        """The server's budget is half the configured one: real RequestLimitExceeded replies."""
        names = tuple(f"w{i:02d}" for i in range(14))
        for name in names[:4]:
            server.world.add_stream("ap-guangzhou", name, publishers=1)
        sid, key = KEYS["acct-a"]

        async with rig(server, stream_names=names) as r:
            budget = r.runner.budget("acct-a")
            # Warm the connection pool, so the next burst reaches the server at once
            # (fresh loopback connects can be spread out by the listen backlog).
            assert await r.runner.run_cycle() == {KEY: True}
            await asyncio.sleep(1.1)
            server.world.add_account(Account(secret_id=sid, secret_key=key, rate_limit=10))
            with capture_logs() as logs:
                assert await r.runner.run_cycle() == {KEY: True}
            assert "RequestLimitExceeded" in codes(server)
            # Halved once (not once per throttled reply); maybe already a step back up.
            assert 10 <= budget.effective_rate < 20
            gauge = r.hmetric("tencent_live_rate_limit_requests_per_second", account="acct-a")
            assert gauge == budget.effective_rate
            assert [e["event"] for e in logs].count("rate_limit_lowered") == 1
            # Every name was answered in the end: retries got through at the lower rate.
            assert r.metric("tencent_live_region_streams", **LABELS) == 4
            # The vendor relents; throttle-free windows bring the rate back to the limit.
            server.world.add_account(Account(secret_id=sid, secret_key=key, rate_limit=20))
            relented = len(server.request_log)
            deadline = time.monotonic() + 20
            while budget.effective_rate < 20:
                assert time.monotonic() < deadline, f"stuck at {budget.effective_rate}"
                assert await r.runner.poll_once(KEY)
            gauge = r.hmetric("tencent_live_rate_limit_requests_per_second", account="acct-a")
            assert gauge == 20
            assert "RequestLimitExceeded" not in codes(server)[relented:]


def _watch_world(server: SimulatorServer, names: Sequence[str], regions: Sequence[str]) -> None:
    for i, region in enumerate(regions):
        for name in names[i::3]:  # a third of the watch list is online, different per region
            server.world.add_stream(region, name, publishers=2)


def _assert_budget_kept(server: SimulatorServer, rate: int) -> None:
    records = server.request_log.records()
    for sid, _ in KEYS.values():
        assert max_requests_in_window(records, sid) <= rate
    assert "RequestLimitExceeded" not in {r.code for r in records}


class TestAcceptance:
    async def test_scheduled_watch_list_keeps_the_budget_small(self, server: SimulatorServer) -> None:
        """Always-on variant: the real scheduler, spreading and stretching, 2 accounts x 5 regions."""
        names = tuple(f"ch-{i:03d}" for i in range(8))
        _watch_world(server, names, DEFAULT_REGIONS)

        async with rig(
            server,
            accounts=("acct-a", "acct-b"),
            regions=DEFAULT_REGIONS,
            stream_names=names,
            poll_interval=1.0,
        ) as r:
            assert r.runner.schedules["acct-a"].stretched
            with capture_logs() as logs:
                await r.runner.start()
                deadline = time.monotonic() + 20
                while not r.health.all_polled():
                    assert time.monotonic() < deadline, "not every region was polled"
                    await asyncio.sleep(0.05)
                await r.runner.stop()
            assert [e["account"] for e in logs if e["event"] == "poll_cycle_stretched"] == [
                "acct-a",
                "acct-b",
            ]
            assert all(s.up for s in r.health.statuses())
        _assert_budget_kept(server, 20)

    async def test_burst_cycle_keeps_the_budget_small(self, server: SimulatorServer) -> None:
        """Always-on variant without spreading: every query of a cycle queued on the budget at once."""
        names = tuple(f"ch-{i:03d}" for i in range(12))
        _watch_world(server, names, DEFAULT_REGIONS)

        async with rig(
            server, accounts=("acct-a", "acct-b"), regions=DEFAULT_REGIONS, stream_names=names
        ) as r:
            results = await r.runner.run_cycle()
            assert len(results) == 10 and all(results.values())
            assert r.metric("tencent_live_region_streams", account="acct-b", region="ap-guangzhou") == 4
        _assert_budget_kept(server, 20)
        assert len(server.request_log) == 2 * 5 * 12

    @pytest.mark.slow
    async def test_two_accounts_five_regions_two_hundred_names(self, server: SimulatorServer) -> None:
        """The issue's acceptance test: 2 accounts x 5 regions x 200 names at rate_limit 20 (~55 s)."""
        names = tuple(f"channel-{i:03d}" for i in range(200))
        _watch_world(server, names, DEFAULT_REGIONS)

        async with rig(
            server, accounts=("acct-a", "acct-b"), regions=DEFAULT_REGIONS, stream_names=names
        ) as r:
            schedule = r.runner.schedules["acct-a"]
            assert schedule.stretched and schedule.requests_per_cycle == 1000
            results = await r.runner.run_cycle()
            assert len(results) == 10 and all(results.values())
            assert r.health.all_polled()
        _assert_budget_kept(server, 20)
        asked = {(r.secret_id, r.region, r.stream_name) for r in server.request_log.records()}
        assert len(asked) == 2 * 5 * 200  # every name of every region of both accounts
