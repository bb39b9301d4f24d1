"""Drops confirmed by name (SPEC section 9): asked at once from spare budget, bounded, never blinding.

Driven through ``cli.build_pipeline`` against the simulator with an injected wall clock: an
event's ``time`` is the clock's value when the snapshot that caused it was taken, so "confirmed
right after the full poll that missed it" is "same poll, same clock value".
"""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from exporter.config import StreamFilter
from exporter.model import RegionKey
from exporter.simulator import LIST_LIMIT, Account, FaultKind, World, max_requests_in_window
from tests.scheduler.rig import FAST_RETRY, KEY, SECRET_ID, SECRET_KEY, account, rig

GZ, HK = "ap-guangzhou", "ap-hongkong"
LABELS = {"account": "prod", "region": GZ}


class TestConfirmation:
    async def test_a_vanished_stream_is_confirmed_by_name_right_after_the_full_poll(self) -> None:
        async with rig(drop_confirmations=2) as r:
            await r.baseline("a", "b")
            r.world.remove_stream(GZ, "a")
            r.clock.advance(5)
            missed_at = r.clock.now
            assert await r.runner.poll_once(KEY)
            assert r.requests() == [(GZ, None, "OK"), (GZ, None, "OK"), (GZ, "a", "OK")]
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 1
            assert r.metric("tencent_live_stream_online", **LABELS, stream="a") == 0
            [drop] = [e for e in r.events.recent() if e["kind"] == "stream_drop"]
            assert drop["stream"] == "a" and drop["time"] == r.events.recent()[0]["time"]
            assert r.clock.now == missed_at  # no cycle passed: the same poll confirmed it
            assert r.runner.state(KEY).absent == {}
            assert r.metric("tencent_live_region_streams", **LABELS) == 1

    async def test_a_name_found_again_is_not_absent(self) -> None:
        async with rig(drop_confirmations=2) as r:
            await r.baseline("a", "b")
            # The full list leaves "b" out (as a truncating vendor would); by name it is there.
            r.world.set_list_limit(1)
            for _ in range(3):
                assert await r.runner.poll_once(KEY)
                assert r.runner.state(KEY).absent == {}
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 0
            assert r.metric("tencent_live_stream_online", **LABELS, stream="b") == 1
            assert r.metric("tencent_live_region_streams", **LABELS) == 2
            assert [n for _, n, _ in r.requests()] == [None, None, "b", None, "b", None, "b"]
            assert r.kinds() == []

    async def test_an_unusable_by_name_reply_leaves_the_name_unknown(self) -> None:
        async with rig(drop_confirmations=2) as r:
            await r.baseline("a", "b")
            r.world.set_list_limit(1)  # the full list leaves "b" out
            r.fail_next(1, kind=FaultKind.EDIT, field="BackupList", value="oops", scope="name")
            assert await r.runner.poll_once(KEY)
            assert r.runner.state(KEY).absent == {"b": 1}  # neither confirmed nor reset
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 0
            anomalies = r.pipeline.health.render().decode()
            assert 'tencent_live_parse_anomalies_total{account="prod"' in anomalies

    async def test_failed_by_name_queries_confirm_nothing_and_reset_nothing(self) -> None:
        async with rig(drop_confirmations=2) as r:
            await r.baseline("a", "b")
            r.world.remove_stream(GZ, "a")
            r.fail_next(FAST_RETRY.attempts, scope="name")
            assert await r.runner.poll_once(KEY)
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 0
            assert r.runner.state(KEY).absent == {"a": 1}  # still pending, not reset
            assert r.hmetric("tencent_live_up", **LABELS) == 1
            assert await r.runner.poll_once(KEY)  # the next full list confirms it
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 1

    async def test_at_most_drop_confirm_queries_per_region_per_cycle(self) -> None:
        names = [f"s{i:02d}" for i in range(6)]

        async with rig(drop_confirm_queries=2) as r:
            await r.baseline(*names, "keep")
            for name in names:
                r.world.remove_stream(GZ, name)
            assert await r.runner.poll_once(KEY)
            asked = [n for _, n, _ in r.requests() if n is not None]
            assert asked == names[:2]
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 2
            assert set(r.runner.state(KEY).absent) == set(names[2:])
            assert await r.runner.poll_once(KEY)  # the rest: by the full list, and 2 more asked
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 6

    async def test_zero_turns_it_off(self) -> None:
        async with rig(drop_confirm_queries=0) as r:
            await r.baseline("a")
            r.world.remove_stream(GZ, "a")
            assert await r.runner.poll_once(KEY)
            assert [n for _, n, _ in r.requests()] == [None, None]
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 0

    async def test_watch_list_accounts_ask_nothing_more(self) -> None:
        async with rig(accounts=(account(stream_names=("a",)),)) as r:
            await r.baseline("a")
            r.world.remove_stream(GZ, "a")
            assert await r.runner.poll_once(KEY)
            assert [n for _, n, _ in r.requests()] == ["a", "a"]


class TestMassVanish:
    async def test_a_mass_vanish_neither_floods_the_budget_nor_starves_other_regions(self, stepped) -> None:
        rate = 5.0
        regions = (GZ, HK)

        accounts = (account(regions=regions, rate_limit=rate),)
        async with rig(accounts=accounts, rate_limit=rate, poll_interval=2.0, monotonic=stepped) as r:
            for i in range(60):
                r.world.add_stream(GZ, f"gz{i:02d}")
            r.world.add_stream(HK, "hk")
            hk = RegionKey("prod", HK)
            assert await r.runner.poll_once(KEY)
            assert await r.runner.poll_once(hk)
            stepped.offset += 1.1  # a fresh window
            for i in range(60):
                r.world.remove_stream(GZ, f"gz{i:02d}")
            gz_poll = asyncio.create_task(r.runner.poll_once(KEY))
            # Let the full list through and the confirmations start, then poll the other region.
            while not any(n is not None for _, n, _ in r.requests()):
                await asyncio.sleep(0.005)
            started = time.monotonic()
            with capture_logs():
                assert await r.runner.poll_once(hk)
            hk_seconds = time.monotonic() - started
            assert await gz_poll
            assert hk_seconds < 0.5  # room kept free: no wait behind the confirmations
            asked = [n for _, n, _ in r.requests() if n is not None]
            assert 0 < len(asked) <= 20
            assert max_requests_in_window(r.sim.request_log, SECRET_ID) <= rate
            assert all(code == "OK" for _, _, code in r.requests())  # never throttled
            assert r.hmetric("tencent_live_up", **LABELS) == 1
            assert r.hmetric("tencent_live_up", account="prod", region=HK) == 1


class TestLogs:
    async def test_by_name_round_is_logged_at_debug(self) -> None:
        async with rig() as r:
            await r.baseline("a")
            r.world.remove_stream(GZ, "a")
            r.fail_next(1, kind=FaultKind.DELAY, delay=0.0, scope="list")
            with capture_logs() as logs:
                assert await r.runner.poll_once(KEY)
            [line] = [e for e in logs if e["event"] == "drops_confirmed_by_name"]
            assert (line["asked"], line["found"], line["dropped"], line["failed"]) == (1, 0, 1, 0)
            assert line["log_level"] == "debug"


class TestVendorCeiling:
    async def test_absences_in_a_full_list_at_the_ceiling_confirm_nothing_only_by_name_does(self) -> None:
        world = World(
            accounts=[Account(secret_id=SECRET_ID, secret_key=SECRET_KEY)],
            regions=(GZ,),
            streams_per_region=LIST_LIMIT + 1,  # one more than a full list can hold
            seed=3,
        )
        # Region aggregates only: the test reads back a small body, not 20,000 streams' series.
        async with rig(world, drop_confirmations=2, streams=StreamFilter(per_stream_metrics=False)) as r:
            with capture_logs() as logs:
                assert await r.runner.poll_once(KEY)
            [warning] = [e for e in logs if e["event"] == "absences_not_judged"]
            assert warning["log_level"] == "warning" and warning["streams"] == LIST_LIMIT
            gone = sorted(r.runner.state(KEY).streams)[0]
            r.world.remove_stream(GZ, gone)
            with capture_logs() as logs:
                assert await r.runner.poll_once(KEY)  # the list still holds 20,000 groups
            assert not [e for e in logs if e["event"] == "absences_not_judged"]  # said once
            # The list judged nothing: two by-name replies in the same poll confirm the drop.
            [first, second] = [e for e in logs if e["event"] == "drops_confirmed_by_name"]
            assert (first["asked"], first["found"], first["dropped"]) == (1, 0, 0)
            assert (second["asked"], second["found"], second["dropped"]) == (1, 0, 1)
            assert r.runner.state(KEY).absent == {}
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 1
            assert [n for _, n, _ in r.requests() if n is not None] == [gone, gone]

    async def test_a_name_found_by_name_after_a_list_that_judged_nothing_is_asked_once(self) -> None:
        async with rig(drop_confirmations=2) as r:
            await r.baseline("a", "b")
            # "b" comes nameless in the full list: the list judges no absence, "b" is asked by name.
            r.fail_next(1, kind=FaultKind.EDIT, field="StreamName", value=None, stream="b", scope="list")
            assert await r.runner.poll_once(KEY)
            assert [n for _, n, _ in r.requests() if n is not None] == ["b"]  # found: no second round
            assert r.runner.state(KEY).absent == {}
            assert r.metric("tencent_live_stream_online", **LABELS, stream="b") == 1
            assert r.kinds() == []

    async def test_a_vanished_name_after_a_list_that_judged_nothing_takes_two_by_name_replies(self) -> None:
        async with rig(drop_confirmations=2) as r:
            await r.baseline("a", "b", "c")
            r.world.remove_stream(GZ, "c")
            r.fail_next(1, kind=FaultKind.EDIT, field="StreamName", value=None, stream="b", scope="list")
            assert await r.runner.poll_once(KEY)
            asked = [n for _, n, _ in r.requests() if n is not None]
            assert sorted(asked) == ["b", "c", "c"]  # "b" found at once; "c" asked twice
            assert r.metric("tencent_live_region_stream_drops_total", **LABELS) == 1
            assert r.kinds() == ["stream_drop"]
