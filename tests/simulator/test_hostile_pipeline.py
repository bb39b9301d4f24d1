"""The unkind simulator against the real pipeline: what each named fault must (not) do to us.

SPEC section 9, "one odd record never blinds a region": with any odd-record preset on every
reply, polls still succeed (``up`` 1) and the odd group's stream is unknown, never dropped or
started; two groups of one StreamName whose order flips between replies count nothing. The
exporter is built by ``build_pipeline`` exactly as the daemon is, on the simulator's transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from exporter.cli import Pipeline, build_pipeline
from exporter.config import AccountConfig, Config
from exporter.credentials import CredentialSettings, Secret
from exporter.model import RegionKey
from exporter.scheduler.runner import RetryPolicy
from exporter.simulator import PRESETS, Account, Fault, Simulator, World, mock_transport
from exporter.simulator.catalogue import ODD_RECORDS

REGION = "ap-guangzhou"
SID, KEY = "AKIDhostilePipeline00001", "hostile-pipeline-key-0001"
KEYS = RegionKey("hostile", REGION)


@asynccontextmanager
async def pipeline(world: World) -> AsyncIterator[Pipeline]:
    account = AccountConfig(
        name="hostile",
        credentials=CredentialSettings(source="static", secret_id=SID, secret_key=Secret(KEY)),
        regions=(REGION,),
        endpoint="http://127.0.0.1",
    )
    config = Config(poll_interval=15.0, request_timeout=2.0, accounts=(account,))
    transport = mock_transport(Simulator(world, seed=1))
    async with httpx.AsyncClient(transport=transport) as http:
        built = build_pipeline(config, http, retry=RetryPolicy(attempts=1), env={}, process_metrics=False)
        await built.open()
        try:
            yield built
        finally:
            await built.stop()


def _world() -> World:
    return World(
        accounts=[Account(secret_id=SID, secret_key=KEY)], regions=[REGION], streams_per_region=4, seed=5
    )


def _kinds(built: Pipeline) -> list[Any]:
    return [event["kind"] for event in built.events.recent()]


@pytest.mark.parametrize("name", [n for n in ODD_RECORDS if n != "duplicate-stream-name"])
def test_odd_record_keeps_the_region_polled_and_invents_nothing(name: str) -> None:
    async def scenario() -> None:
        world = _world()
        async with pipeline(world) as built:
            assert await built.runner.poll_once(KEYS)
            world.inject(Fault.from_dict({"preset": name, "times": 0}, PRESETS))
            for _ in range(3):  # more than drop_confirmations polls with the odd record
                assert await built.runner.poll_once(KEYS), f"{name} failed the poll"
            world.faults.clear()
            assert await built.runner.poll_once(KEYS)
            assert not {"stream_drop", "stream_start"} & set(_kinds(built)), _kinds(built)

    asyncio.run(scenario())


def test_duplicate_names_whose_order_flips_count_nothing() -> None:
    async def scenario() -> None:
        world = _world()
        world.inject(Fault.from_dict({"preset": "duplicate-stream-name", "times": 0, "groups": 0}, PRESETS))
        async with pipeline(world) as built:
            for _ in range(5):  # the twins come first, then last, then first again...
                assert await built.runner.poll_once(KEYS)
            assert _kinds(built) == []

    asyncio.run(scenario())
