"""Fixtures for credential tests: the simulator with its identity side (roles, STS, metadata) on
loopback, a settable clock shared by the simulator and the provider, and a runner for coroutines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator, MutableMapping
from typing import Any, TypeVar

import httpx
import pytest
import structlog

from exporter.redaction import SECRETS
from exporter.simulator import Account, Simulator, SimulatorServer, World
from exporter.simulator.sts import Identity
from tests._clock import ManualClock

T = TypeVar("T")

BASE_ID = "AKIDbaseKEYforROLEtests0123456789ab"
BASE_KEY = "base-secret-key-for-role-tests-0123"
START = 1_760_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def base_account() -> Account:
    return Account(secret_id=BASE_ID, secret_key=BASE_KEY)


@pytest.fixture
def server(clock: ManualClock, base_account: Account) -> Iterator[SimulatorServer]:
    """A simulator on 127.0.0.1 whose clock is the test's; no streams needed for credentials."""
    world = World(accounts=[base_account], streams_per_region=1, seed=11)
    sim = Simulator(world, clock=clock, seed=11)
    srv = SimulatorServer(world, simulator=sim).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def identity(server: SimulatorServer) -> Identity:
    return server.simulator.identity


@pytest.fixture
def metadata_url(server: SimulatorServer) -> str:
    return server.url + "/latest/meta-data/"


@pytest.fixture
def run() -> Callable[[Callable[[httpx.AsyncClient], Coroutine[Any, Any, T]]], T]:
    """Run ``fn(http)`` in a fresh event loop with a loopback-only httpx client."""

    def runner(fn: Callable[[httpx.AsyncClient], Coroutine[Any, Any, T]]) -> T:
        async def main() -> T:
            async with httpx.AsyncClient(trust_env=False) as http:
                return await fn(http)

        return asyncio.run(main())

    return runner


@pytest.fixture(autouse=True)
def _fresh_redactor() -> Iterator[None]:
    yield
    SECRETS.clear()


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured


@pytest.fixture
def dead_url() -> str:
    """An http URL on loopback where nothing listens (connection refused at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/latest/meta-data/"
