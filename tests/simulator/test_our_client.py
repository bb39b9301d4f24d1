"""Our own TencentClient (and so our TC3 signer) against the simulator's independent verifier.

Two implementations written apart from the vendor's page agreeing, plus the official SDK
agreeing with the simulator (test_sdk.py), pins all three to the same protocol.
"""

from __future__ import annotations

import asyncio

import httpx
import orjson

from exporter.credentials import StaticCredentials
from exporter.simulator import Account, Simulator, World, mock_transport
from exporter.tencent.client import TencentClient


def test_over_a_real_socket(simulator, sim_credential):
    async def run() -> tuple[bytes, bytes]:
        async with httpx.AsyncClient() as http:
            client = TencentClient(
                http, endpoint=simulator.url, credentials=StaticCredentials(sim_credential), timeout=5
            )
            return (
                await client.describe_backup_stream_list("ap-beijing"),
                await client.describe_backup_stream_list("ap-beijing", "stream-00001"),
            )

    full, one = asyncio.run(run())
    names = [g["StreamName"] for g in orjson.loads(full)["Response"]["StreamInfoList"]]
    assert names == [s.name for s in simulator.world.streams("ap-beijing")]
    assert [g["StreamName"] for g in orjson.loads(one)["Response"]["StreamInfoList"]] == ["stream-00001"]
    assert [r.code for r in simulator.request_log.records()] == ["OK", "OK"]


def test_through_the_mock_transport(sim_world, sim_credential):
    core = Simulator(sim_world)

    async def run() -> bytes:
        async with httpx.AsyncClient(transport=mock_transport(core)) as http:
            client = TencentClient(
                http,
                endpoint="https://live.tencentcloudapi.com",
                credentials=StaticCredentials(sim_credential),
                timeout=5,
            )
            return await client.describe_backup_stream_list("ap-hongkong")

    assert "Error" not in orjson.loads(asyncio.run(run()))["Response"]


def test_account_repr_hides_secrets():
    account = Account(secret_id="AKIDvisible", secret_key="hidden-key", token="hidden-token")
    assert "AKIDvisible" in repr(account)
    assert "hidden" not in repr(account)
    assert "hidden" not in repr(World(accounts=[account]).state())
