"""Temporary credentials through the daemon's own wiring (``build_pipeline``) against the simulator:
polls succeed, renewal feeds the health metrics, an expired credential is renewed within the poll,
and nothing about a renewal touches stream state or events.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from exporter.config import parse_config
from exporter.model import RegionKey
from exporter.pipeline import build_pipeline
from tests._prom import samples

REGION = "ap-guangzhou"


@pytest.fixture
def config(server, metadata_url, identity, tmp_path: Path):
    identity.lifetime = 1800
    identity.set_instance_role("exporter")
    server.world.add_stream(REGION, "cam-1")
    text = (
        "accounts:\n"
        "  - name: prod\n"
        "    credential_source: cvm_role\n"
        f"    metadata_endpoint: {metadata_url}\n"
        f"    endpoint: {server.url}\n"
        f"    regions: [{REGION}]\n"
    )
    return parse_config(text, source="test.yml", base_dir=tmp_path, env={})


def test_polls_with_role_credentials_and_renews_an_expired_one_within_the_poll(
    run, config, identity, clock
) -> None:
    key = RegionKey("prod", REGION)
    clock.now = time.time()  # the Live client signs with the real clock

    async def main(http):
        pipeline = build_pipeline(config, http, clock=clock, env={}, process_metrics=False)
        await pipeline.open()  # first fetch; the renewal timer is hours away
        try:
            assert await pipeline.runner.poll_once(key)
            before = samples(pipeline.health.render())
            events_before = list(pipeline.events.recent())
            # The session ends at the vendor before the exporter expected (revoked, clock skew).
            assert identity.expire() == 1
            assert await pipeline.runner.poll_once(key)
            return before, events_before, samples(pipeline.health.render()), list(pipeline.events.recent())
        finally:
            await pipeline.stop()

    before, events_before, after, events_after = run(main)
    refreshes = "tencent_live_credential_refreshes_total"
    expiry = "tencent_live_credential_expiry_timestamp_seconds"
    assert before[(refreshes, frozenset({"account": "prod", "result": "ok"}.items()))] == 1
    assert after[(refreshes, frozenset({"account": "prod", "result": "ok"}.items()))] == 2
    assert after[(expiry, frozenset({"account": "prod"}.items()))] == identity.issued[-1].expires_at
    assert len(identity.issued) == 2
    assert events_after == events_before  # a renewal is not a stream event
