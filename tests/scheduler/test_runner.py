"""The runner driven cycle by cycle through ``cli.build_pipeline``, against the embedded simulator.

Real credentials provider, client, parse, diff, store, health and event log; the vendor is the
simulator (scriptable faults), the wall clock is the test's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from exporter.simulator import Account, FaultKind, World
from tests.scheduler.rig import FAST_RETRY, KEY, SECRET_ID, SECRET_KEY, account, rig

LABELS = {"account": "prod", "region": "ap-guangzhou"}
GZ = "ap-guangzhou"


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def master(r, name: str) -> str:  # type: ignore[no-untyped-def]
    stream = r.world.stream(GZ, name)
    return next(p.upstream_sequence for p in stream.publishers if p.master)  # type: ignore[no-any-return]


class TestDetection:
    async def test_baseline_then_handover_is_counted_and_logged(self) -> None:
        async with rig() as r:
            r.world.add_stream(GZ, "news", publishers=2)
            old = master(r, "news")
            assert await r.runner.run_cycle() == {KEY: True}
            assert r.metric("tencent_live_region_switchovers_total", **LABELS, reason="handover") == 0
            assert r.events.recent() == []
            new = r.world.handover(GZ, "news")
            with capture_logs() as logs:
                assert await r.runner.poll_once(KEY)
            assert r.metric("tencent_live_region_switchovers_total", **LABELS, reason="handover") == 1
            assert r.metric("tencent_live_stream_switchovers_total", **LABELS, stream="news") == 1
            [event] = r.events.recent()
            assert (event["kind"], event["from"], event["to"]) == ("switchover", old, new)
            lines = [e for e in logs if e["event"] == "stream_event"]
            assert lines == [
                {
                    "event": "stream_event",
                    "log_level": "info",
                    "kind": "switchover",
                    "account": "prod",
                    "region": GZ,
                    "stream": "news",
                    "reason": "handover",
                    "from": old,
                    "to": new,
                }
            ]
            assert r.hmetric("tencent_live_up", **LABELS) == 1
            assert r.hmetric("tencent_live_api_requests_total", **LABELS, code="OK") == 2

    async def test_transient_failures_are_retried_within_the_poll(self) -> None:
        async with rig() as r:
            r.world.add_stream(GZ, "news")
            r.fail_next(2, kind=FaultKind.HTTP_STATUS, status=502)
            assert await r.runner.poll_once(KEY)
            assert r.hmetric("tencent_live_api_requests_total", **LABELS, code="HTTPError") == 2
            assert r.hmetric("tencent_live_api_requests_total", **LABELS, code="OK") == 1

    async def test_a_failed_poll_changes_no_gauge_and_confirms_no_drop(self) -> None:
        async with rig(drop_confirm_queries=0) as r:
            await r.baseline("news")
            r.world.remove_stream(GZ, "news")
            r.fail_next(FAST_RETRY.attempts)
            assert not await r.runner.poll_once(KEY)
            assert r.hmetric("tencent_live_up", **LABELS) == 0
            assert r.metric("tencent_live_stream_online", **LABELS, stream="news") == 1
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 0


class TestErrorClasses:
    async def test_blocked_stops_at_once_and_logs_once_per_change_with_the_hint(self) -> None:
        async with rig() as r:
            r.world.add_stream(GZ, "news")
            r.fail_next(2, code="UnauthorizedOperation")
            r.fail_next(1, code="AuthFailure.SignatureExpire")
            with capture_logs() as logs:
                for _ in range(3):
                    assert not await r.runner.poll_once(KEY)
                assert await r.runner.poll_once(KEY)
            codes = [code for _, _, code in r.requests()]
            assert codes == ["UnauthorizedOperation"] * 2 + ["AuthFailure.SignatureExpire", "OK"]
            blocked = [e for e in logs if e["event"] == "poll_blocked"]
            assert [(e["code"], e["log_level"]) for e in blocked] == [
                ("UnauthorizedOperation", "error"),
                ("AuthFailure.SignatureExpire", "error"),
            ]
            assert "clock" in blocked[1]["hint"].lower()
            assert [e["event"] for e in logs].count("poll_recovered") == 1
            assert r.hmetric("tencent_live_up", **LABELS) == 1

    async def test_credentials_error_renews_once_then_retries_once(self) -> None:
        async with rig() as r:
            r.world.add_stream(GZ, "news")
            r.fail_next(1, code="AuthFailure.SignatureFailure")
            with capture_logs() as logs:
                assert await r.runner.poll_once(KEY)
            assert [c for _, _, c in r.requests()] == ["AuthFailure.SignatureFailure", "OK"]
            assert "credential_renewed" in [e["event"] for e in logs]
            # Twice in a row: one renewal, one retry, then the poll is blocked.
            r.fail_next(5, code="AuthFailure.TokenFailure")
            with capture_logs() as logs:
                assert not await r.runner.poll_once(KEY)
            assert [c for _, _, c in r.requests()][2:] == ["AuthFailure.TokenFailure"] * 2
            assert [e["event"] for e in logs].count("poll_blocked") == 1

    async def test_throttling_backs_off_and_recovers(self, stepped) -> None:
        async with rig(monotonic=stepped) as r:
            r.world.add_stream(GZ, "news")
            budget = r.runner.budget("prod")
            r.fail_next(2, code="RequestLimitExceeded")
            with capture_logs() as logs:
                assert await r.runner.poll_once(KEY)
            assert budget.effective_rate == 10  # halved once, not per throttled reply
            assert r.hmetric("tencent_live_rate_limit_requests_per_second", account="prod") == 10
            assert [e["event"] for e in logs].count("rate_limit_lowered") == 1
            rates = []
            for _ in range(12):
                stepped.offset += 1.0  # a throttle-free window passes
                assert await r.runner.poll_once(KEY)
                rates.append(budget.effective_rate)
            assert rates[:3] == [12, 14, 16]  # +limit/10 per throttle-free window
            assert rates[-1] == 20

    async def test_throttling_stretches_a_schedule_the_lowered_budget_cannot_cover(self, stepped) -> None:
        # 12 watched names per 1 s cycle fit 20 req/s (with headroom) but not the halved 10 req/s.
        names = tuple(f"n{i}" for i in range(12))

        watched = (account(stream_names=names),)
        async with rig(accounts=watched, poll_interval=1.0, monotonic=stepped) as r:
            assert r.hmetric("tencent_live_poll_cycle_seconds", **LABELS) == 1.0
            r.fail_next(1, code="RequestLimitExceeded")
            with capture_logs() as logs:
                assert await r.runner.poll_once(KEY)
            stretched = r.hmetric("tencent_live_poll_cycle_seconds", **LABELS)
            assert stretched is not None and stretched > 1.0
            assert [e["event"] for e in logs].count("poll_cycle_stretched") == 1
            with capture_logs() as logs:
                for _ in range(8):
                    stepped.offset += 1.0
                    assert await r.runner.poll_once(KEY)
            assert r.hmetric("tencent_live_poll_cycle_seconds", **LABELS) == 1.0
            assert "poll_cycle_restored" in [e["event"] for e in logs]

    async def test_retries_stay_within_the_attempt_bound(self) -> None:
        async with rig() as r:
            r.fail_next(10, code="InternalError")
            assert not await r.runner.poll_once(KEY)
            assert len(r.requests()) == FAST_RETRY.attempts


class TestWatchList:
    async def test_one_query_per_name_assembled_with_scope(self) -> None:
        async with rig(accounts=(account(stream_names=("a", "b", "c")),)) as r:
            for name in ("a", "b", "unwatched"):
                r.world.add_stream(GZ, name)
            assert await r.runner.run_cycle() == {KEY: True}
            assert sorted(str(n) for _, n, _ in r.requests()) == ["a", "b", "c"]
            assert r.metric("tencent_live_region_streams", **LABELS) == 2
            assert r.metric("tencent_live_stream_online", **LABELS, stream="unwatched") is None
            r.world.remove_stream(GZ, "b")  # an empty result for a name means offline
            await r.runner.run_cycle()
            await r.runner.run_cycle()
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 1

    async def test_an_unusable_watched_reply_is_unknown_not_absent(self) -> None:
        async with rig(accounts=(account(stream_names=("a", "b")),)) as r:
            for name in ("a", "b"):
                r.world.add_stream(GZ, name)
            assert await r.runner.run_cycle() == {KEY: True}
            r.fail_next(0, kind=FaultKind.EDIT, field="BackupList", value="oops", stream="b")
            for _ in range(3):  # drop_confirmations is 2: "b" would be gone by now if absent
                assert await r.runner.run_cycle() == {KEY: True}
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 0
            assert r.metric("tencent_live_stream_online", **LABELS, stream="b") == 1
            assert r.runner.state(KEY).absent == {}


class TestLifecycle:
    async def test_start_polls_every_region_says_ready_once_and_stop_ends_polling(self) -> None:
        regions = ("ap-guangzhou", "ap-hongkong", "ap-beijing")

        accounts = (account("a", regions=regions), account("b", regions=regions))
        async with rig(accounts=accounts, poll_interval=0.5) as r:
            for region in regions:
                r.world.add_stream(region, "news")
            with capture_logs() as logs:
                await r.runner.start()
                await until(r.pipeline.health.all_polled)
                await until(lambda: any(e["event"] == "ready" for e in logs))
                await r.runner.stop()
            [ready] = [e for e in logs if e["event"] == "ready"]
            assert ready["regions"] == 6 and ready["log_level"] == "info"
            count = len(r.requests())
            await asyncio.sleep(0.6)
            assert len(r.requests()) == count  # nothing polls after stop
            assert {region for region, _, _ in r.requests()} == set(regions)

    async def test_stop_cancels_a_hung_poll_within_the_grace(self) -> None:
        async with rig(poll_interval=0.2, request_timeout=30) as r:
            r.fail_next(1, kind=FaultKind.DELAY, delay=30.0)
            await r.runner.start()
            await until(lambda: len(r.world.faults.pending()) == 0)
            started = time.monotonic()
            await r.runner.stop(grace=0.2)
            assert time.monotonic() - started < 2.0
            assert r.hmetric("tencent_live_up", **LABELS) in (None, 0)

    async def test_an_overrunning_poll_is_counted_late(self) -> None:
        async with rig(poll_interval=0.1, request_timeout=5) as r:
            r.fail_next(0, kind=FaultKind.DELAY, delay=0.5)  # every request, until cleared
            with capture_logs() as logs:
                await r.runner.start()
                await until(lambda: (r.hmetric("tencent_live_polls_late_total", **LABELS) or 0) >= 1)
                await r.runner.stop(grace=0.1)
            assert any(e["event"] == "poll_late" for e in logs)

    async def test_stretched_schedule_is_announced(self) -> None:
        names = tuple(f"s{i}" for i in range(200))

        watched = (account(regions=("ap-guangzhou", "ap-hongkong"), stream_names=names),)
        async with rig(accounts=watched, poll_interval=15) as r:
            schedule = r.runner.schedules["prod"]
            assert schedule.stretched and schedule.cycle > 15
            assert r.hmetric(
                "tencent_live_poll_cycle_seconds", account="prod", region="ap-hongkong"
            ) == pytest.approx(schedule.cycle)
            with capture_logs() as logs:
                await r.runner.start()
                await r.runner.stop(grace=0.1)
            [line] = [e for e in logs if e["event"] == "poll_cycle_stretched"]
            assert line["log_level"] == "warning" and line["account"] == "prod"


class TestOperatorLogs:
    async def test_odd_vendor_groups_are_logged_once_when_they_change(self) -> None:
        async with rig() as r:
            r.world.add_stream(GZ, "no-master", publishers=1, master=False)
            r.world.add_stream(GZ, "fine", publishers=2)
            with capture_logs() as logs:
                await r.runner.run_cycle()
                await r.runner.run_cycle()  # unchanged: nothing new to say
            found = sorted((e["stream"], e["problem"]) for e in logs if e["event"] == "stream_anomaly")
            assert found == [("no-master", "no_master")]

    async def test_max_per_region_says_so_once_per_change(self) -> None:
        async with rig(streams=_cap(2)) as r:
            for name in ("a", "b", "c"):
                r.world.add_stream(GZ, name)
            with capture_logs() as logs:
                await r.runner.run_cycle()
                await r.runner.run_cycle()
            capped = [e for e in logs if e["event"] == "per_stream_series_capped"]
            assert [(e["unexported"], e["log_level"]) for e in capped] == [(1, "warning")]
            assert r.metric("tencent_live_region_streams_unexported", **LABELS) == 1

    async def test_reflected_secrets_never_reach_labels_or_events(self) -> None:
        token = "session-token-0123456789"
        world = World(accounts=[Account(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=token)])
        async with rig(world, accounts=(account(token=token),)) as r:
            r.world.add_stream(GZ, "news")
            await r.runner.run_cycle()
            # An upstream that reflects the session token header into a stream's field.
            r.fail_next(1, kind=FaultKind.EDIT, field="HostGroupName", value="{header:X-TC-Token}")
            assert await r.runner.poll_once(KEY)
            body = r.pipeline.store.render()
            assert b'host_group="<redacted>"' in body
            assert b"session-token-0123456789" not in body


def _cap(n: int):  # type: ignore[no-untyped-def]
    from exporter.config import StreamFilter

    return StreamFilter(max_per_region=n)
