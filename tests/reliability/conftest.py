"""Shared rig for the reliability tests: the real runner, client, parse, diff, store and health,
polling a real ``SimulatorServer`` on loopback, driven poll by poll (no scheduler, no sleeps).

Metrics are read back the way Prometheus reads them: the store's and the health registry's text
exposition, parsed with ``prometheus_client.parser``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import AccountConfig, Config
from exporter.credentials import Credential
from exporter.events import EventLog
from exporter.metrics.health import HealthMetrics
from exporter.metrics.store import MetricStore
from exporter.model import RegionKey
from exporter.scheduler.runner import RetryPolicy, Runner
from exporter.simulator import SimulatorServer
from exporter.tencent.client import TencentClient

ACCOUNT = "prod"
REGION = "ap-guangzhou"
KEY = RegionKey(ACCOUNT, REGION)
# Two tries per request, a millisecond apart: retries are exercised, not waited for.
FAST_RETRY = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.002)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_samples(text: bytes) -> Samples:
    """Every sample of an exposition, keyed by (sample name, labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text.decode("utf-8")):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


@dataclass
class Rig:
    runner: Runner
    store: MetricStore
    health: HealthMetrics
    events: EventLog
    server: SimulatorServer
    config: Config

    def store_samples(self) -> Samples:
        """Per-stream and region families only (the store never renders a health family)."""
        return parse_samples(self.store.render())

    def health_samples(self) -> Samples:
        return parse_samples(self.health.render())

    def hvalue(self, name: str, **labels: str) -> float | None:
        return self.health_samples().get((name, frozenset(labels.items())))

    def stat(self, name: str, **labels: str) -> float | None:
        return self.store_samples().get((name, frozenset(labels.items())))

    def up(self) -> float | None:
        return self.hvalue("tencent_live_up", account=ACCOUNT, region=REGION)

    def requests(self, code: str) -> float:
        value = self.hvalue("tencent_live_api_requests_total", account=ACCOUNT, region=REGION, code=code)
        return value or 0.0

    def sim_requests(self) -> int:
        """Requests for our region the simulator has seen (answered or not)."""
        return sum(1 for r in self.server.request_log.records() if r.region == REGION)

    async def poll(self) -> bool:
        return await self.runner.poll_once(KEY)


def make_config(
    endpoint: str,
    credential: Credential,
    *,
    request_timeout: float = 2.0,
    drop_confirmations: int = 2,
    state_file: Path | None = None,
    rate_limit: float = 20.0,
) -> Config:
    account = AccountConfig(
        name=ACCOUNT, credential=credential, regions=(REGION,), endpoint=endpoint, rate_limit=rate_limit
    )
    return Config(
        poll_interval=15.0,
        request_timeout=request_timeout,
        drop_confirmations=drop_confirmations,
        state_file=state_file,
        accounts=(account,),
    )


@asynccontextmanager
async def open_rig(
    server: SimulatorServer,
    credential: Credential,
    *,
    request_timeout: float = 2.0,
    drop_confirmations: int = 2,
    keepalive: bool = True,
    retry: RetryPolicy = FAST_RETRY,
    rate_limit: float = 20.0,
) -> AsyncIterator[Rig]:
    config = make_config(
        server.url,
        credential,
        request_timeout=request_timeout,
        drop_confirmations=drop_confirmations,
        rate_limit=rate_limit,
    )
    limits = httpx.Limits(max_keepalive_connections=None if keepalive else 0)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as http:
        client = TencentClient(http, endpoint=server.url, credential=credential, timeout=request_timeout)
        store, health, events = MetricStore(), HealthMetrics("test"), EventLog()
        runner = Runner(
            config,
            clients={ACCOUNT: client},
            store=store,
            health=health,
            events=events,
            retry=retry,
        )
        try:
            yield Rig(runner, store, health, events, server, config)
        finally:
            await runner.stop(grace=0.2)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class Kit:
    """The helpers above as one fixture (importlib mode: test modules cannot import conftest)."""

    ACCOUNT = ACCOUNT
    REGION = REGION
    KEY = KEY
    FAST_RETRY = FAST_RETRY
    open_rig = staticmethod(open_rig)
    parse_samples = staticmethod(parse_samples)
    make_config = staticmethod(make_config)
    run = staticmethod(run)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


__all__ = ["Kit", "Rig"]
