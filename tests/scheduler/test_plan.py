"""Schedule stretching math, start offsets, and the two polling strategies."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from exporter.model import Publisher, RegionKey, Snapshot, Stream
from exporter.scheduler.plan import (
    RegionPoll,
    Schedule,
    plan_account,
    poll_full_list,
    poll_watch_list,
    start_offsets,
    strategy_for,
)
from exporter.tencent.errors import ApiError, PollError, PollTimeout


class TestPlanAccount:
    def test_full_list_fits_easily(self) -> None:
        plan = plan_account(account="a", poll_interval=15, regions=5, names=0, capacity=20)
        assert plan == Schedule(
            account="a", poll_interval=15, cycle=15, requests_per_cycle=5, spacing=0.0, stretched=False
        )
        assert plan.reason == ""

    def test_watch_list_within_budget_spreads_names_over_the_headroom(self) -> None:
        plan = plan_account(account="a", poll_interval=60, regions=2, names=100, capacity=20, headroom=0.8)
        # 200 requests need 200 / (20 * 0.8) = 12.5 s of budget: fits in 60 s.
        assert not plan.stretched
        assert plan.cycle == 60
        assert plan.spacing == pytest.approx(60 * 0.8 / 100)

    @pytest.mark.parametrize(
        ("regions", "names", "capacity", "interval", "cycle"),
        [
            (5, 200, 20, 15, 1000 / 16),  # the example: 1000 requests at 16/s effective
            (1, 10, 1, 5, 12.5),  # slow budget
            (5, 200, 20 / 1.05, 15, 1000 / (20 / 1.05 * 0.8)),  # margin-aware capacity
        ],
    )
    def test_cycle_stretches_instead_of_breaking_the_budget(
        self, regions: int, names: int, capacity: float, interval: float, cycle: float
    ) -> None:
        plan = plan_account(
            account="a", poll_interval=interval, regions=regions, names=names, capacity=capacity
        )
        assert plan.stretched
        assert plan.cycle == pytest.approx(cycle)
        assert "requests per cycle" in plan.reason
        # Over a cycle the account uses the headroom's share of the budget, not more ...
        assert plan.requests_per_cycle / plan.cycle <= capacity * 0.8 + 1e-9
        # ... and even with every region's spread overlapping, the peak fits the budget.
        assert regions / plan.spacing <= capacity + 1e-9

    def test_boundary_is_not_stretched(self) -> None:
        plan = plan_account(account="a", poll_interval=10, regions=4, names=40, capacity=20, headroom=0.8)
        assert plan.requests_per_cycle / (20 * 0.8) == 10
        assert not plan.stretched

    def test_rejects_nonsense(self) -> None:
        with pytest.raises(ValueError):
            plan_account(account="a", poll_interval=0, regions=1, names=0, capacity=20)


def test_start_offsets_spread_every_region_over_its_cycle() -> None:
    keys = [RegionKey("a", r) for r in ("r1", "r2")] + [RegionKey("b", r) for r in ("r1", "r2")]
    schedules = {
        "a": plan_account(account="a", poll_interval=8, regions=2, names=0, capacity=20),
        "b": plan_account(account="b", poll_interval=8, regions=2, names=0, capacity=20),
    }
    offsets = start_offsets(keys, schedules, initial=1.0)
    assert sorted(offsets.values()) == [1.0, 3.0, 5.0, 7.0]
    assert len(set(offsets.values())) == len(keys)


def _snapshot(region: str, names: list[str], request_id: str = "r") -> Snapshot:
    streams = {
        n: Stream(
            name=n,
            host_group="",
            optimal_enable=0,
            publishers=(Publisher("1", "d", "live", 0.0, "直推流", True),),
        )
        for n in names
    }
    return Snapshot(account="a", region=region, taken_at=1.0, streams=streams, request_id=request_id)


class FakeVendor:
    """Answers exact-name queries: online names return themselves, others nothing."""

    def __init__(self, online: set[str], errors: dict[str, PollError] | None = None) -> None:
        self.online = online
        self.errors = errors or {}
        self.asked: list[str | None] = []

    async def fetch(self, name: str | None) -> Snapshot:
        self.asked.append(name)
        await asyncio.sleep(0)
        if name in self.errors:
            raise self.errors[name]
        names = sorted(self.online) if name is None else [n for n in (name,) if n in self.online]
        return _snapshot("r", names, request_id=f"req-{name}")


def _poll(vendor: FakeVendor, names: tuple[str, ...], spacing: float = 0.0) -> RegionPoll:
    return RegionPoll(
        account="a", region="r", names=names, spacing=spacing, fetch=vendor.fetch, clock=lambda: 42.0
    )


class TestStrategies:
    def test_chosen_once_from_the_watch_list(self) -> None:
        assert strategy_for(()) is poll_full_list
        assert strategy_for(("x",)) is poll_watch_list

    def test_full_list_is_one_request(self) -> None:
        vendor = FakeVendor({"s1", "s2"})
        snap = asyncio.run(poll_full_list(_poll(vendor, ())))
        assert vendor.asked == [None]
        assert set(snap.streams) == {"s1", "s2"} and snap.scope is None

    def test_watch_list_assembles_one_snapshot_with_scope(self) -> None:
        vendor = FakeVendor({"s1", "s3"})
        snap = asyncio.run(poll_watch_list(_poll(vendor, ("s1", "s2", "s3"))))
        assert vendor.asked == ["s1", "s2", "s3"]
        assert set(snap.streams) == {"s1", "s3"}
        assert snap.scope == frozenset({"s1", "s2", "s3"})  # s2 was asked and is offline
        assert snap.taken_at == 42.0 and (snap.account, snap.region) == ("a", "r")

    def test_a_failed_name_is_out_of_scope_not_absent(self) -> None:
        vendor = FakeVendor({"s1", "s2"}, errors={"s2": PollTimeout("slow")})
        snap = asyncio.run(poll_watch_list(_poll(vendor, ("s1", "s2"))))
        assert snap.scope == frozenset({"s1"})
        assert set(snap.streams) == {"s1"}

    def test_all_failed_is_a_failed_poll(self) -> None:
        vendor = FakeVendor(set(), errors={"s1": PollTimeout("a"), "s2": PollTimeout("b")})
        with pytest.raises(PollTimeout):
            asyncio.run(poll_watch_list(_poll(vendor, ("s1", "s2"))))

    def test_non_retryable_stops_the_cycle_at_once(self) -> None:
        auth = ApiError("AuthFailure.SignatureFailure", "bad signature", request_id="rid")
        vendor = FakeVendor({"s1"}, errors={"s1": auth})
        names = tuple(f"s{i}" for i in range(1, 50))
        with pytest.raises(ApiError) as caught:
            # Spaced out, so the later names would still be waiting when s1 fails.
            asyncio.run(poll_watch_list(_poll(vendor, names, spacing=0.01)))
        assert caught.value is auth
        assert len(vendor.asked) < 5

    def test_spacing_spreads_queries(self) -> None:
        vendor = FakeVendor({"s1"})
        stamps: list[float] = []
        inner = vendor.fetch

        async def timed(name: str | None) -> Snapshot:
            stamps.append(asyncio.get_running_loop().time())
            return await inner(name)

        poll = RegionPoll(account="a", region="r", names=("s1", "s2", "s3"), spacing=0.02, fetch=timed)
        asyncio.run(poll_watch_list(poll))
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert all(g >= 0.015 for g in gaps)
