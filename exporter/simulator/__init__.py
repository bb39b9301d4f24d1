"""A protocol-true fake of the vendor's ``DescribeBackupStreamList`` API.

Used by ``--demo``, by our tests and by end-to-end runs with a real Prometheus. It verifies
TC3-HMAC-SHA256 signatures with its own code (a cross-check on our signer), enforces the
per-key sliding-window budget, logs every request's arrival, serves a seeded world that
changes on ``step()``, and applies injected faults: every unkindness the vendor's
documentation allows, as data (``faults.py``), named in ``catalogue.py``.

Typical use::

    world = World(accounts=[Account(secret_id="AKID...", secret_key="...")], streams_per_region=50, seed=7)
    with SimulatorServer(world, tick_seconds=5) as server:
        ...  # point the exporter's endpoint at server.url
"""

from __future__ import annotations

from exporter.simulator.catalogue import PRESETS
from exporter.simulator.errors import ACTION, ACTION_REGIONS, DOCUMENTED_CODES, SERVICE, VERSION, VendorError
from exporter.simulator.faults import Fault, FaultKind, FaultQueue
from exporter.simulator.protocol import Reply, Simulator
from exporter.simulator.ratelimit import (
    RequestLog,
    RequestRecord,
    SlidingWindowLimiter,
    max_requests_in_window,
)
from exporter.simulator.server import SimulatorServer
from exporter.simulator.transport import mock_transport
from exporter.simulator.world import (
    DEFAULT_REGIONS,
    LIST_LIMIT,
    Account,
    SimPublisher,
    SimStream,
    SimulatorError,
    World,
)

__all__ = [
    "ACTION",
    "ACTION_REGIONS",
    "DEFAULT_REGIONS",
    "DOCUMENTED_CODES",
    "LIST_LIMIT",
    "PRESETS",
    "SERVICE",
    "VERSION",
    "Account",
    "Fault",
    "FaultKind",
    "FaultQueue",
    "Reply",
    "RequestLog",
    "RequestRecord",
    "SimPublisher",
    "SimStream",
    "Simulator",
    "SimulatorError",
    "SimulatorServer",
    "SlidingWindowLimiter",
    "VendorError",
    "World",
    "max_requests_in_window",
    "mock_transport",
]
