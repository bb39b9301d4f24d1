"""Helpers for simulator tests: a protocol core on fake clocks and a request signer.

Requests are signed by ``exporter.tencent.signing`` (our real client code) or by the
official SDK; the simulator verifies them with its own code, so every passing test is also
a cross-check of the two implementations.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from exporter.credentials import Credential
from exporter.simulator import ACTION, SERVICE, VERSION, Simulator, World
from exporter.tencent.signing import tc3_headers
from tests._clock import ManualClock

NOW = 1_700_000_000.0


@pytest.fixture
def wall() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def mono() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def core(sim_world: World, wall: ManualClock, mono: ManualClock) -> Simulator:
    """The protocol core on fake wall and monotonic clocks, seeded RequestIds."""
    return Simulator(sim_world, clock=wall, monotonic=mono, seed=1)


Signer = Callable[..., tuple[dict[str, str], bytes]]


@pytest.fixture
def sign(sim_credential: Credential) -> Signer:
    """Build (headers, body) of a signed request; every piece can be overridden.

    ``params`` is serialised as the JSON body; ``raw`` gives the body bytes verbatim.
    """

    def _sign(
        params: object = None,
        *,
        raw: bytes | None = None,
        region: str = "ap-guangzhou",
        credential: Credential | None = None,
        timestamp: float = NOW,
        host: str = "127.0.0.1",
        action: str = ACTION,
        version: str = VERSION,
    ) -> tuple[dict[str, str], bytes]:
        body = raw if raw is not None else orjson.dumps({} if params is None else params)
        headers = tc3_headers(
            credential=credential or sim_credential,
            host=host,
            service=SERVICE,
            action=action,
            version=version,
            region=region,
            payload=body,
            timestamp=int(timestamp),
        )
        return headers, body

    return _sign
