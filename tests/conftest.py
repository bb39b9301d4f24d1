"""Shared fixtures: the vendor API faked by ``exporter.simulator`` on a loopback socket.

``simulator`` is a fresh ``SimulatorServer`` per test (starting one takes milliseconds), so
no test sees another's streams, faults, budget or request log. Its world holds one account
(``SIM_SECRET_ID``/``SIM_SECRET_KEY``), the five default regions with three streams each,
a fixed seed, and no tick thread: tests change the world explicitly.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from exporter.simulator import Account, SimulatorServer, World

if TYPE_CHECKING:
    from exporter.credentials import Credential

SIM_SECRET_ID = "AKIDsimulatorTESTabcdefghijklmnop1234"
SIM_SECRET_KEY = "simulator-test-secret-key-0123456789"
SIM_SEED = 20180801
SIM_STREAMS_PER_REGION = 3


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """``async def`` tests run in a fresh event loop of their own (``asyncio.run``), as the
    daemon's ``main`` does; fixtures stay synchronous."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**arguments))
    return True


@pytest.fixture
def sim_account() -> Account:
    return Account(secret_id=SIM_SECRET_ID, secret_key=SIM_SECRET_KEY)


@pytest.fixture
def sim_world(sim_account: Account) -> World:
    return World(accounts=[sim_account], streams_per_region=SIM_STREAMS_PER_REGION, seed=SIM_SEED)


@pytest.fixture
def simulator(sim_world: World) -> Iterator[SimulatorServer]:
    """A started simulator on 127.0.0.1:<free port>; ``.url`` is the endpoint to configure."""
    server = SimulatorServer(sim_world, host="127.0.0.1", port=0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sim_credential() -> Credential:
    """Our own Credential type for the simulator's account, for TencentClient and tc3_headers."""
    from exporter.credentials import Credential, Secret

    return Credential(SIM_SECRET_ID, Secret(SIM_SECRET_KEY))
