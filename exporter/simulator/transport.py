"""Mount the simulator under an ``httpx.AsyncClient`` without a socket.

Faults keep their meaning: a delay is awaited (so client timeouts fire), a reset becomes
``httpx.ReadError``, which is what httpx raises when a peer resets the connection.
"""

from __future__ import annotations

import asyncio

import httpx

from exporter.simulator.protocol import Simulator

__all__ = ["mock_transport"]


def mock_transport(simulator: Simulator) -> httpx.MockTransport:
    async def handler(request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        target = request.url.raw_path.decode("ascii")
        reply = simulator.respond(request.method, target, request.headers.multi_items(), body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.reset:
            raise httpx.ReadError("connection reset by the simulator (fault)", request=request)
        return httpx.Response(reply.status, headers=list(reply.headers), content=reply.body)

    return httpx.MockTransport(handler)
