"""Reply memory is bounded in proportion to the body (issue: a 250 MB reply once peaked at 2.33 GB).

Measured with tracemalloc around the real client reading a streamed body (no Content-Length,
64 KiB chunks) and the real parse of it, cold (nothing cached: every group is built).
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator

import httpx

from exporter.credentials import Credential, Secret, StaticCredentials
from exporter.parse import parse_snapshot
from exporter.tencent.client import TencentClient
from tests._replies import synthetic_reply


def test_read_and_parse_peak_under_three_times_the_body() -> None:
    body = synthetic_reply(5000)

    def handler(request: httpx.Request) -> httpx.Response:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        return httpx.Response(200, content=chunks())

    async def run() -> tuple[int, int, int]:
        credentials = StaticCredentials(Credential("AKIDexample", Secret("k" * 32)))
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = TencentClient(
                http, endpoint="https://live.tencentcloudapi.com", credentials=credentials, timeout=30
            )
            tracemalloc.start()
            try:
                data = await client.describe_backup_stream_list("ap-guangzhou")
                _, read_peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                snapshot = parse_snapshot(data, account="a", region="r", taken_at=0.0)
                _, parse_peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert data == body and len(snapshot.streams) == 5000
            return len(data), read_peak, parse_peak

    size, read_peak, parse_peak = asyncio.run(run())
    assert read_peak < 1.5 * size, f"read peak {read_peak / size:.2f}x the body"
    # The body itself, the snapshot built from it, and what parsing needs on the way.
    assert parse_peak < 3 * size, f"read+parse peak {parse_peak / size:.2f}x the body"
