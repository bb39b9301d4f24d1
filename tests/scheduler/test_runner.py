"""The runner driven cycle by cycle: real client, parse, diff, store, health and event log.

The vendor is the hand-written fake in conftest.py (scriptable faults); the simulator-driven
acceptance tests live in test_acceptance.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from exporter.config import AccountConfig, Config
from exporter.credentials import Credential, Secret, StaticCredentials
from exporter.events import EventLog
from exporter.metrics.health import HealthMetrics
from exporter.metrics.store import MetricStore
from exporter.model import RegionKey
from exporter.scheduler.runner import RetryPolicy, Runner
from exporter.tencent.client import TencentClient

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)
KEY = RegionKey("prod", "ap-guangzhou")
A = ("100", True)
B = ("200", False)


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(text: bytes, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


@dataclass
class Harness:
    runner: Runner
    store: MetricStore
    health: HealthMetrics
    events: EventLog
    http: httpx.AsyncClient

    def metric(self, name: str, **labels: str) -> float | None:
        return value(self.store.render(), name, **labels)

    def hmetric(self, name: str, **labels: str) -> float | None:
        return value(self.health.render(), name, **labels)


@asynccontextmanager
async def harness(
    vendor: object,
    *,
    accounts: tuple[AccountConfig, ...] | None = None,
    state_file: Path | None = None,
    poll_interval: float = 5.0,
    request_timeout: float = 2.0,
    monotonic: Callable[[], float] = time.monotonic,
    store: MetricStore | None = None,
) -> AsyncIterator[Harness]:
    http: httpx.AsyncClient = vendor.http()  # type: ignore[attr-defined]
    cred = Credential("AKIDtest", Secret("not-a-real-key"))
    accounts = accounts or (AccountConfig(name="prod", credential=cred, regions=("ap-guangzhou",)),)
    config = Config(
        poll_interval=poll_interval,
        request_timeout=request_timeout,
        state_file=state_file,
        accounts=accounts,
    )
    clients = {
        a.name: TencentClient(
            http,
            endpoint="http://127.0.0.1:9",
            credentials=StaticCredentials(a.credential),
            timeout=request_timeout,
        )
        for a in accounts
    }
    store = store or MetricStore()
    health = HealthMetrics("test")
    events = EventLog()
    runner = Runner(
        config,
        clients=clients,
        store=store,
        health=health,
        events=events,
        monotonic=monotonic,
        retry=FAST_RETRY,
    )
    try:
        yield Harness(runner, store, health, events, http)
    finally:
        await runner.stop(grace=0.5)
        await http.aclose()


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class TestDetection:
    def test_baseline_then_switchover_is_counted(self, vendor) -> None:
        vendor.set_stream("ap-guangzhou", "news", A, B)

        async def main() -> None:
            async with harness(vendor) as h:
                assert await h.runner.run_cycle() == {KEY: True}
                labels = {"account": "prod", "region": "ap-guangzhou"}
                assert h.metric("tencent_live_region_switchovers_total", **labels, reason="handover") == 0
                assert h.events.recent() == []
                vendor.set_stream("ap-guangzhou", "news", ("100", False), ("200", True))
                with capture_logs() as logs:
                    assert await h.runner.poll_once(KEY)
                assert h.metric("tencent_live_region_switchovers_total", **labels, reason="handover") == 1
                assert h.metric("tencent_live_stream_switchovers_total", **labels, stream="news") == 1
                [event] = h.events.recent()
                assert event["kind"] == "switchover" and event["from"] == "100" and event["to"] == "200"
                lines = [e for e in logs if e["event"] == "stream_event"]
                assert lines == [
                    {
                        "event": "stream_event",
                        "log_level": "info",
                        "kind": "switchover",
                        "account": "prod",
                        "region": "ap-guangzhou",
                        "stream": "news",
                        "reason": "handover",
                        "from": "100",
                        "to": "200",
                    }
                ]
                assert h.hmetric("tencent_live_up", **labels) == 1
                assert h.hmetric("tencent_live_api_requests_total", **labels, code="OK") == 2

        run(main())

    def test_failure_keeps_gauges_and_counts_no_drop(self, vendor) -> None:
        vendor.set_stream("ap-guangzhou", "news", A, B)
        vendor.set_stream("ap-guangzhou", "sports", A)
        labels = {"account": "prod", "region": "ap-guangzhou"}

        async def main() -> None:
            async with harness(vendor) as h:
                await h.runner.run_cycle()
                before = h.store.render()
                vendor.fail_next(3, code="InternalError.GetStreamInfoError")
                vendor.world["ap-guangzhou"].clear()  # would be "everything dropped" if misread
                with capture_logs() as logs:
                    assert await h.runner.run_cycle() == {KEY: False}
                assert h.store.render() == before
                assert h.hmetric("tencent_live_up", **labels) == 0
                assert (
                    h.hmetric(
                        "tencent_live_api_requests_total", **labels, code="InternalError.GetStreamInfoError"
                    )
                    == 3
                )
                failed = [e for e in logs if e["event"] == "poll_failed"]
                assert len(failed) == 1
                assert failed[0]["log_level"] == "warning"
                assert failed[0]["code"] == "InternalError.GetStreamInfoError"
                assert failed[0]["request_id"].startswith("rid-")
                # Absent, failed, absent: two confirmations -> exactly one drop each.
                await h.runner.run_cycle()
                assert h.metric("tencent_live_region_stream_drops_total", **labels) == 0
                await h.runner.run_cycle()
                assert h.metric("tencent_live_region_stream_drops_total", **labels) == 2
                assert h.metric("tencent_live_stream_online", **labels, stream="news") == 0

        run(main())

    def test_transport_failure_is_retried_then_succeeds(self, vendor) -> None:
        vendor.set_stream("ap-guangzhou", "news", A)
        labels = {"account": "prod", "region": "ap-guangzhou"}

        async def main() -> None:
            async with harness(vendor) as h:
                vendor.fail_next(2, status=502)
                assert await h.runner.poll_once(KEY)
                assert h.hmetric("tencent_live_api_requests_total", **labels, code="HTTPError") == 2
                assert h.hmetric("tencent_live_api_requests_total", **labels, code="OK") == 1

        run(main())


class TestErrors:
    def test_non_retryable_stops_at_once_and_logs_once_per_state_change(self, vendor) -> None:
        vendor.set_stream("ap-guangzhou", "news", A)
        labels = {"account": "prod", "region": "ap-guangzhou"}

        async def main() -> None:
            async with harness(vendor) as h:
                vendor.fail_next(3, code="AuthFailure.SignatureFailure")
                vendor.fail_next(1, code="ResourceNotFound.UserNotExist")
                with capture_logs() as logs:
                    for _ in range(4):
                        assert not await h.runner.poll_once(KEY)
                    assert await h.runner.poll_once(KEY)
                # No retries: one request per poll.
                assert vendor.codes() == ["AuthFailure.SignatureFailure"] * 3 + [
                    "ResourceNotFound.UserNotExist",
                    "OK",
                ]
                blocked = [(e["code"], e["log_level"]) for e in logs if e["event"] == "poll_blocked"]
                assert blocked == [
                    ("AuthFailure.SignatureFailure", "error"),
                    ("ResourceNotFound.UserNotExist", "error"),
                ]
                assert [e["event"] for e in logs if e["event"] == "poll_recovered"] == ["poll_recovered"]
                assert h.hmetric("tencent_live_up", **labels) == 1

        run(main())

    def test_throttling_backs_off_and_recovers(self, vendor, stepped) -> None:
        vendor.set_stream("ap-guangzhou", "news", A)

        async def main() -> None:
            async with harness(vendor, monotonic=stepped) as h:
                budget = h.runner.budget("prod")
                vendor.fail_next(2, code="RequestLimitExceeded")
                with capture_logs() as logs:
                    assert await h.runner.poll_once(KEY)
                assert budget.effective_rate == 10  # halved once, not per throttled reply
                assert h.hmetric("tencent_live_rate_limit_requests_per_second", account="prod") == 10
                assert [e["event"] for e in logs].count("rate_limit_lowered") == 1
                rates = []
                for _ in range(12):
                    stepped.offset += 1.0  # a throttle-free window passes
                    assert await h.runner.poll_once(KEY)
                    rates.append(budget.effective_rate)
                assert rates[:3] == [12, 14, 16]  # +limit/10 per throttle-free window
                assert rates[-1] == 20
                assert h.hmetric("tencent_live_rate_limit_requests_per_second", account="prod") == 20

        run(main())

    def test_throttling_stretches_a_schedule_the_lowered_budget_cannot_cover(self, vendor, stepped) -> None:
        # 12 watched names per 1 s cycle fit 20 req/s (with headroom) but not the halved 10 req/s.
        names = tuple(f"n{i}" for i in range(12))
        account = AccountConfig(
            name="prod",
            credential=Credential("AKIDtest", Secret("k")),
            regions=("ap-guangzhou",),
            stream_names=names,
        )
        labels = {"account": "prod", "region": "ap-guangzhou"}

        async def main() -> None:
            async with harness(vendor, accounts=(account,), poll_interval=1.0, monotonic=stepped) as h:
                assert h.hmetric("tencent_live_poll_cycle_seconds", **labels) == 1.0
                vendor.fail_next(1, code="RequestLimitExceeded")
                with capture_logs() as logs:
                    assert await h.runner.poll_once(KEY)
                stretched = h.hmetric("tencent_live_poll_cycle_seconds", **labels)
                assert stretched is not None and stretched > 1.0
                assert h.runner.schedules["prod"].stretched
                assert [e["event"] for e in logs].count("poll_cycle_stretched") == 1
                with capture_logs() as logs:
                    for _ in range(8):
                        stepped.offset += 1.0  # throttle-free windows: the budget recovers
                        assert await h.runner.poll_once(KEY)
                assert h.hmetric("tencent_live_poll_cycle_seconds", **labels) == 1.0
                assert "poll_cycle_restored" in [e["event"] for e in logs]

        run(main())

    def test_retries_stay_within_the_attempt_bound(self, vendor) -> None:
        async def main() -> None:
            async with harness(vendor) as h:
                vendor.fail_next(10, code="RequestLimitExceeded")
                assert not await h.runner.poll_once(KEY)
                assert len(vendor.log) == FAST_RETRY.attempts

        run(main())


class TestWatchList:
    def test_one_query_per_name_assembled_with_scope(self, vendor) -> None:
        vendor.set_stream("ap-guangzhou", "a", A)
        vendor.set_stream("ap-guangzhou", "b", A)
        vendor.set_stream("ap-guangzhou", "unwatched", A)
        cred = Credential("AKIDtest", Secret("k"))
        account = AccountConfig(
            name="prod", credential=cred, regions=("ap-guangzhou",), stream_names=("a", "b", "c")
        )
        labels = {"account": "prod", "region": "ap-guangzhou"}

        async def main() -> None:
            async with harness(vendor, accounts=(account,)) as h:
                assert await h.runner.run_cycle() == {KEY: True}
                assert sorted(n for _, _, n, _ in vendor.log) == ["a", "b", "c"]
                assert h.metric("tencent_live_region_streams", **labels) == 2
                assert h.metric("tencent_live_stream_online", **labels, stream="unwatched") is None
                # "b" goes offline: an empty result for a name means offline.
                vendor.drop_stream("ap-guangzhou", "b")
                await h.runner.run_cycle()
                await h.runner.run_cycle()
                assert h.metric("tencent_live_region_stream_drops_total", **labels) == 1

        run(main())


async def _save_after_a_handover(vendor, path: Path) -> None:
    """First run of a restart test: baseline, one handover (100 -> 200), state saved at stop."""
    async with harness(vendor, state_file=path) as h:
        await h.runner.run_cycle()
        vendor.set_stream("ap-guangzhou", "news", ("100", False), ("200", True))
        await h.runner.run_cycle()
        labels = {"account": "prod", "region": "ap-guangzhou"}
        assert h.metric("tencent_live_region_switchovers_total", **labels, reason="handover") == 1
    assert path.exists()


class TestStateFile:
    def test_restart_diffs_against_the_restored_state(self, vendor, tmp_path: Path) -> None:
        vendor.set_stream("ap-guangzhou", "news", A, B)
        path = tmp_path / "state.json"
        labels = {"account": "prod", "region": "ap-guangzhou"}

        async def second_run() -> None:
            async with harness(vendor, state_file=path) as h:
                await h.runner.restore()
                # While we were down the master went back to 100.
                vendor.set_stream("ap-guangzhou", "news", ("100", True), ("200", False))
                await h.runner.run_cycle()
                assert h.metric("tencent_live_region_switchovers_total", **labels, reason="handover") == 2

        run(_save_after_a_handover(vendor, path))
        run(second_run())

    def test_restored_counters_are_exported_before_the_first_poll(self, vendor, tmp_path: Path) -> None:
        vendor.set_stream("ap-guangzhou", "news", A, B)
        path = tmp_path / "state.json"
        labels = {"account": "prod", "region": "ap-guangzhou"}

        async def second_run() -> None:
            async with harness(vendor, state_file=path) as h:
                await h.runner.restore()
                assert len(vendor.log) == 2  # no poll yet in this run
                assert h.metric("tencent_live_region_switchovers_total", **labels, reason="handover") == 1
                assert h.metric("tencent_live_stream_switchovers_total", **labels, stream="news") == 1
                assert h.metric("tencent_live_stream_online", **labels, stream="news") == 1
                assert h.events.recent() == []  # the restored snapshot is not news
                await h.runner.run_cycle()  # unchanged since the save: nothing counted twice
                assert h.metric("tencent_live_stream_switchovers_total", **labels, stream="news") == 1

        run(_save_after_a_handover(vendor, path))
        run(second_run())


class TestLifecycle:
    def test_start_polls_every_region_and_stop_saves(self, vendor, tmp_path: Path) -> None:
        cred = Credential("AKIDtest", Secret("k"))
        regions = ("ap-guangzhou", "ap-hongkong", "ap-beijing")
        accounts = tuple(AccountConfig(name=n, credential=cred, regions=regions) for n in ("a", "b"))
        for region in regions:
            vendor.set_stream(region, "news", A)
        path = tmp_path / "state.json"

        async def main() -> None:
            async with harness(vendor, accounts=accounts, poll_interval=0.5, state_file=path) as h:
                await h.runner.start()
                await until(h.health.all_polled)
                await h.runner.stop()
                count = len(vendor.log)
                await asyncio.sleep(0.6)
                assert len(vendor.log) == count  # nothing polls after stop
            assert path.exists()
            assert {r for _, r, _, _ in vendor.log} == set(regions)

        run(main())

    def test_stop_cancels_a_hung_poll_within_the_grace(self, vendor) -> None:
        vendor.set_stream("ap-guangzhou", "news", A)
        labels = {"account": "prod", "region": "ap-guangzhou"}

        async def main() -> None:
            async with harness(vendor, poll_interval=0.2, request_timeout=30) as h:
                vendor.delay = 30.0
                await h.runner.start()
                await until(lambda: vendor.started >= 1)
                started = time.monotonic()
                await h.runner.stop(grace=0.2)
                assert time.monotonic() - started < 2.0
                assert h.hmetric("tencent_live_up", **labels) in (None, 0)

        run(main())

    def test_an_overrunning_poll_is_counted_late(self, vendor) -> None:
        vendor.set_stream("ap-guangzhou", "news", A)
        labels = {"account": "prod", "region": "ap-guangzhou"}

        async def main() -> None:
            async with harness(vendor, poll_interval=0.1, request_timeout=5) as h:
                vendor.delay = 0.5
                with capture_logs() as logs:
                    await h.runner.start()
                    await until(lambda: (h.hmetric("tencent_live_polls_late_total", **labels) or 0) >= 1)
                    await h.runner.stop(grace=0.1)
                assert any(e["event"] == "poll_late" for e in logs)

        run(main())

    def test_stretched_schedule_is_announced(self, vendor) -> None:
        cred = Credential("AKIDtest", Secret("k"))
        names = tuple(f"s{i}" for i in range(200))
        account = AccountConfig(
            name="prod",
            credential=cred,
            regions=("ap-guangzhou", "ap-hongkong"),
            rate_limit=20,
            stream_names=names,
        )

        async def main() -> None:
            async with harness(vendor, accounts=(account,), poll_interval=15) as h:
                schedule = h.runner.schedules["prod"]
                assert schedule.stretched and schedule.cycle > 15
                assert h.hmetric(
                    "tencent_live_poll_cycle_seconds", account="prod", region="ap-hongkong"
                ) == pytest.approx(schedule.cycle)
                with capture_logs() as logs:
                    await h.runner.start()
                    await h.runner.stop(grace=0.1)
                [line] = [e for e in logs if e["event"] == "poll_cycle_stretched"]
                assert line["log_level"] == "warning" and line["account"] == "prod"

        run(main())


class TestOperatorLogs:
    def test_odd_vendor_groups_are_logged_once_when_they_change(self, vendor) -> None:
        vendor.set_stream("ap-guangzhou", "two-masters", ("1", True), ("2", True))
        vendor.set_stream("ap-guangzhou", "no-master", ("3", False))
        vendor.set_stream("ap-guangzhou", "empty")
        vendor.set_stream("ap-guangzhou", "fine", ("4", True), ("5", False))

        async def main() -> None:
            async with harness(vendor) as h:
                with capture_logs() as logs:
                    await h.runner.run_cycle()
                    await h.runner.run_cycle()  # unchanged: nothing new to say
                found = sorted((e["stream"], e["problem"]) for e in logs if e["event"] == "stream_anomaly")
                assert found == [
                    ("empty", "no_publishers"),
                    ("no-master", "no_master"),
                    ("two-masters", "several_masters"),
                ]

        run(main())

    def test_max_per_region_says_so_once_per_change(self, vendor) -> None:
        for name in ("a", "b", "c"):
            vendor.set_stream("ap-guangzhou", name, A)

        async def main() -> None:
            async with harness(vendor, store=MetricStore(max_per_region=2)) as h:
                with capture_logs() as logs:
                    await h.runner.run_cycle()
                    await h.runner.run_cycle()
                capped = [e for e in logs if e["event"] == "per_stream_series_capped"]
                assert [(e["unexported"], e["log_level"]) for e in capped] == [(1, "warning")]
                labels = {"account": "prod", "region": "ap-guangzhou"}
                assert h.metric("tencent_live_region_streams_unexported", **labels) == 1
                assert h.metric("tencent_live_region_streams", **labels) == 3

        run(main())
