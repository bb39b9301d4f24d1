"""Reload (SPEC section 9): parse everything first; unchanged regions keep state and counters.

The config files are real files read by the daemon's loader; the pipeline is ``build_pipeline``'s
against the simulator; ``Reloader`` (``cli.reloader_for``) is what SIGHUP and ``POST /-/reload`` call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from structlog.testing import capture_logs

from exporter.cli import build_pipeline, parse_flags, reloader_for
from exporter.config import load_config
from exporter.flags import Flags
from exporter.model import RegionKey
from exporter.pipeline import Pipeline
from exporter.reload import Reloader
from exporter.simulator import Account, Simulator, World, mock_transport
from tests import _prom
from tests._clock import ManualClock
from tests.scheduler.rig import ENDPOINT, FAST_RETRY, SECRET_ID, SECRET_KEY, wall_clock

GZ, HK = "ap-guangzhou", "ap-hongkong"
OTHER_ID, OTHER_KEY = "AKIDschedulertest0002", "scheduler-test-secret-key-0002"


def config_text(*, regions: tuple[str, ...] = (GZ,), secret_id: str = SECRET_ID, interval: str = "5s") -> str:
    key = SECRET_KEY if secret_id == SECRET_ID else OTHER_KEY
    return (
        f"poll_interval: {interval}\n"
        "request_timeout: 200ms\n"
        "accounts:\n"
        "  - name: prod\n"
        f"    secret_id: {secret_id}\n"
        f"    secret_key: {key}\n"
        f"    endpoint: {ENDPOINT}\n"
        f"    regions: [{', '.join(regions)}]\n"
    )


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "config.yml"
        self.world = World(
            accounts=[
                Account(secret_id=SECRET_ID, secret_key=SECRET_KEY),
                Account(secret_id=OTHER_ID, secret_key=OTHER_KEY),
            ]
        )
        self.world.add_stream(GZ, "news", publishers=2)
        self.world.add_stream(HK, "hk-news", publishers=1)

    def write(self, text: str) -> None:
        self.path.write_text(text)


def value(pipeline: Pipeline, name: str, **labels: str) -> float | None:
    return _prom.value(pipeline.store.render() + pipeline.health.render(), name, **labels)


@asynccontextmanager
async def reloading(
    env: Env, sim: Simulator | None = None, *, start: bool = False, **options: Any
) -> AsyncIterator[tuple[Pipeline, Reloader]]:
    """The daemon's pipeline over ``env``'s file and the simulator, opened (``start``: scheduled
    too), and the reloader SIGHUP and ``POST /-/reload`` call; stopped on the way out."""
    async with httpx.AsyncClient(transport=mock_transport(sim or Simulator(env.world))) as http:
        pipeline = build_pipeline(load_config(env.path), http, env={}, process_metrics=False, **options)
        await (pipeline.start() if start else pipeline.open())
        flags = parse_flags(["--config.file", str(env.path)])
        assert isinstance(flags, Flags)
        try:
            yield pipeline, reloader_for(flags, pipeline, demo=False)
        finally:
            await pipeline.stop()


async def test_unchanged_regions_keep_state_new_ones_baseline_removed_ones_leave(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.write(config_text())
    gz, hk = RegionKey("prod", GZ), RegionKey("prod", HK)

    async with reloading(env, clock=wall_clock(), retry=FAST_RETRY) as (pipeline, reloader):
        assert await pipeline.runner.poll_once(gz)
        env.world.handover(GZ, "news")
        assert await pipeline.runner.poll_once(gz)
        handovers = {"account": "prod", "region": GZ, "reason": "handover"}
        assert value(pipeline, "tencent_live_region_switchovers_total", **handovers) == 1

        # Add a region, change the interval: gz keeps its state and counters.
        env.write(config_text(regions=(GZ, HK), interval="7s"))
        with capture_logs() as logs:
            assert await reloader.reload()
        assert pipeline.runner.keys == (gz, hk)
        assert pipeline.runner.state(gz) is not None
        assert value(pipeline, "tencent_live_region_switchovers_total", **handovers) == 1
        assert pipeline.runner.schedules["prod"].cycle == 7.0
        assert value(pipeline, "tencent_live_up", account="prod", region=HK) == 0
        [line] = [e for e in logs if e["event"] == "config_reloaded"]
        assert (line["regions_kept"], line["regions_added"], line["regions_removed"]) == (1, 1, 0)
        assert await pipeline.runner.poll_once(hk)
        assert pipeline.events.recent()[0]["kind"] == "switchover"  # hk's baseline added nothing

        # Remove it again: every hk series leaves /metrics.
        env.write(config_text(regions=(GZ,)))
        assert await reloader.reload()
        body = (pipeline.store.render() + pipeline.health.render()).decode()
        assert f'region="{HK}"' not in body
        assert value(pipeline, "tencent_live_config_last_reload_successful") == 1


async def test_an_invalid_file_changes_nothing_and_sets_the_gauge(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.write(config_text())
    gz = RegionKey("prod", GZ)

    clock = ManualClock(1_800_000_000.0)
    async with reloading(env, clock=clock, retry=FAST_RETRY) as (pipeline, reloader):
        assert await pipeline.runner.poll_once(gz)
        assert value(pipeline, "tencent_live_config_last_reload_success_timestamp_seconds") == clock.now
        env.write(config_text(regions=(GZ, HK)) + "unknown_key: 1\n")
        clock.advance(60)
        with capture_logs() as logs:
            assert not await reloader.reload()
        [line] = [e for e in logs if e["event"] == "reload_failed"]
        assert "unknown_key" in line["reason"] and line["log_level"] == "error"
        assert pipeline.runner.keys == (gz,)
        assert value(pipeline, "tencent_live_config_last_reload_successful") == 0
        assert value(pipeline, "tencent_live_config_last_reload_success_timestamp_seconds") == clock.now - 60
        env.write(config_text())
        assert await reloader.reload()
        assert value(pipeline, "tencent_live_config_last_reload_successful") == 1
        assert value(pipeline, "tencent_live_config_last_reload_success_timestamp_seconds") == clock.now


async def test_changed_credentials_are_a_new_baseline(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.write(config_text())
    gz = RegionKey("prod", GZ)

    async with reloading(env, clock=wall_clock(), retry=FAST_RETRY) as (pipeline, reloader):
        assert await pipeline.runner.poll_once(gz)
        env.write(config_text(secret_id=OTHER_ID))
        assert await reloader.reload()
        assert pipeline.runner.state(gz) is None  # another key may see another account
        assert await pipeline.runner.poll_once(gz)
        assert pipeline.events.recent() == []  # its first poll is a baseline again


async def test_web_reload_entry_works_from_another_thread(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.write(config_text())

    async with reloading(env) as (pipeline, reloader):
        env.write(config_text(regions=(GZ, HK)))
        assert await asyncio.to_thread(reloader.reload_blocking)
        assert len(pipeline.runner.keys) == 2


async def test_expected_streams_are_declared_at_start_and_follow_a_reload(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.write("streams:\n  expected: [must-air]\n" + config_text())

    async with reloading(env) as (pipeline, reloader):
        labels = {"account": "prod", "region": GZ}
        # Before any poll: expected and not online, so "expected but offline" can page.
        assert value(pipeline, "tencent_live_stream_expected", **labels, stream="must-air") == 1
        assert value(pipeline, "tencent_live_stream_online", **labels, stream="must-air") == 0
        env.write("streams:\n  expected: [must-air, also]\n" + config_text())
        assert await reloader.reload()
        assert value(pipeline, "tencent_live_stream_expected", **labels, stream="also") == 1


async def test_a_new_account_whose_credentials_cannot_load_changes_nothing(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.write(config_text())
    extra = (
        "  - name: staging\n"
        "    credential_source: env\n"  # nothing in the (empty) environment
        f"    endpoint: {ENDPOINT}\n"
        f"    regions: [{HK}]\n"
    )

    async with reloading(env) as (pipeline, reloader):
        env.write(config_text() + extra)
        with capture_logs() as logs:
            assert not await reloader.reload()
        [line] = [e for e in logs if e["event"] == "reload_failed"]
        assert "staging" in line["reason"]
        assert pipeline.runner.keys == (RegionKey("prod", GZ),)
        assert set(pipeline.providers) == {"prod"}
        assert value(pipeline, "tencent_live_config_last_reload_successful") == 0


async def test_a_running_schedule_follows_the_reload(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.write(config_text(regions=(GZ, HK), interval="200ms"))
    sim = Simulator(env.world)

    def polled(region: str) -> int:
        return sum(1 for r in sim.request_log.records() if r.region == region)

    async def until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
            await asyncio.sleep(0.01)

    async with reloading(env, sim, start=True) as (_pipeline, reloader):
        await until(lambda: polled(HK) >= 2 and polled(GZ) >= 2)
        env.write(config_text(regions=(GZ,), interval="200ms"))
        assert await reloader.reload()
        after = polled(HK)
        before_gz = polled(GZ)
        await until(lambda: polled(GZ) >= before_gz + 3)  # gz keeps its schedule
        assert polled(HK) == after  # hk's job is gone
