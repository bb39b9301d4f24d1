"""Acceptance: restart with ``state_file`` (SPEC 4, 5, 6).

Two exporter lives share one state file, with the vendor moving on in between: counters
continue where they stopped, nothing already counted is counted again, and what changed
while the exporter was down is counted exactly once by the first poll after the restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Clock, Exporter, Metrics, stack
from .vendor_fake import Group, Listing, Pub, VendorFake

SID, KEY = "AKIDrestartE2E000000001", "restart-e2e-secret-key-0001"
GZ = "ap-guangzhou"
LABELS = {"account": "prod", "region": GZ}

SCRIPT = [
    Listing.of(Group("s1", (Pub("1", True), Pub("2"))), Group("s2", (Pub("5", True),))),  # 0 baseline
    Listing.of(Group("s1", (Pub("1"), Pub("2", True))), Group("s2", (Pub("5", True),))),  # 1 handover
    Listing.of(Group("s1", (Pub("1", True),)), Group("s2", (Pub("5", True),))),  # 2 failover, while down
]


@pytest.fixture
def fake() -> Iterator[VendorFake]:
    with VendorFake({SID: KEY}) as server:
        yield server


def config(fake: VendorFake, state: Path) -> str:
    return f"""
poll_interval: 15s
request_timeout: 2s
state_file: {state}
accounts:
  - name: prod
    secret_id: {SID}
    secret_key: {KEY}
    regions: [{GZ}]
    endpoint: {fake.url}
"""


def counters(m: Metrics) -> tuple[float | None, ...]:
    """Region counters: handover, failover, publisher losses."""
    return (
        m.get("tencent_live_region_switchovers_total", reason="handover", **LABELS),
        m.get("tencent_live_region_switchovers_total", reason="failover", **LABELS),
        m.get("tencent_live_region_publisher_losses_total", **LABELS),
    )


def stream_counters(m: Metrics) -> tuple[float | None, ...]:
    """s1's counters: switchovers, publisher losses."""
    return (
        m.get("tencent_live_stream_switchovers_total", stream="s1", **LABELS),
        m.get("tencent_live_stream_publisher_losses_total", stream="s1", **LABELS),
    )


async def test_counters_continue_and_downtime_changes_count_once(tmp_path: Path, fake: VendorFake) -> None:
    state = tmp_path / "state.json"
    clock = Clock()

    fake.script(GZ, SCRIPT)
    async with stack(config(fake, state), clock=clock) as s:
        assert await s.poll(GZ)
        fake.goto(GZ, 1)
        assert await s.poll(GZ)
        assert counters(s.metrics()) == (1, 0, 0)
        assert stream_counters(s.metrics()) == (1, 0)
        assert len(s.events_list()) == 1
    assert state.exists()

    fake.goto(GZ, 2)  # the vendor moves on while we are down
    async with stack(config(fake, state), clock=clock) as s:
        # Before the first poll a counter may be absent, but never lower than it was.
        early = counters(s.metrics())
        assert all(v is None or v == w for v, w in zip(early, (1, 0, 0), strict=True)), early
        assert s.events_list() == []
        assert await s.poll(GZ)
        after = s.metrics()
        assert counters(after) == (1, 1, 1)
        assert after.get("tencent_live_region_stream_starts_total", **LABELS) == 0
        events = [(e["kind"], e["stream"], e.get("reason")) for e in s.events_list()]
        assert events == [("switchover", "s1", "failover"), ("publisher_loss", "s1", None)]
        assert await s.poll(GZ)  # the same snapshot again: nothing new
        assert counters(s.metrics()) == (1, 1, 1)
        assert len(s.events_list()) == 2

    async with stack(config(fake, state), clock=clock) as s:  # a restart with no change at all
        assert await s.poll(GZ)
        assert counters(s.metrics()) == (1, 1, 1)
        assert s.events_list() == []
        assert s.metrics().get("tencent_live_stream_online", stream="s2", **LABELS) == 1


async def test_corrupt_state_file_is_a_fresh_start(tmp_path: Path, fake: VendorFake) -> None:
    state = tmp_path / "state.json"
    state.write_text("{not json")

    fake.script(GZ, SCRIPT[:1])
    async with stack(config(fake, state)) as s:
        assert await s.poll(GZ)  # a baseline: no events, counters at 0
        assert counters(s.metrics()) == (0, 0, 0)
        assert s.events_list() == []
    assert list(tmp_path.glob("state.json.corrupt-*"))


async def test_stream_counters_count_the_first_poll_after_restart(tmp_path: Path, fake: VendorFake) -> None:
    """Per-stream counters continue too, including events of the first poll after the restart.

    Regression: ``MetricStore.apply`` used to count events (``_count_events``) before
    ``_take_streams`` created the entries of streams seen for the first time since start-up,
    so per-stream increments of that first poll were lost while region counters got them.
    """
    state = tmp_path / "state.json"

    fake.script(GZ, SCRIPT)
    async with stack(config(fake, state)) as s:
        assert await s.poll(GZ)
        fake.goto(GZ, 1)
        assert await s.poll(GZ)
        assert stream_counters(s.metrics()) == (1, 0)
    fake.goto(GZ, 2)
    async with stack(config(fake, state)) as s:
        assert await s.poll(GZ)
        assert counters(s.metrics()) == (1, 1, 1)
        assert stream_counters(s.metrics()) == (2, 1)


def test_restart_of_the_real_process(tmp_path: Path, fake: VendorFake) -> None:
    """SIGTERM saves the state; the next process continues the counters and counts the downtime once."""
    state = tmp_path / "state.json"
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        config(fake, state).replace("poll_interval: 15s", "poll_interval: 1s").replace("2s", "500ms")
    )
    fake.script(GZ, SCRIPT)
    with Exporter("--config.file", str(cfg)) as first:
        first.wait_ready()
        fake.wait_served(GZ, 0, count=2)
        fake.goto(GZ, 1)
        fake.wait_served(GZ, 1, count=2)
        assert counters(first.metrics()) == (1, 0, 0)
        assert first.terminate() == 0
    fake.goto(GZ, 2)
    with Exporter("--config.file", str(cfg)) as second:
        second.wait_ready()
        fake.wait_served(GZ, 2, count=2)
        metrics = second.metrics()
        events = second.get("/events").json()["events"]
        assert second.terminate() == 0
    assert counters(metrics) == (1, 1, 1)
    assert [(e["kind"], e.get("reason")) for e in events] == [
        ("switchover", "failover"),
        ("publisher_loss", None),
    ]
    assert metrics.get("tencent_live_region_stream_starts_total", **LABELS) == 0
