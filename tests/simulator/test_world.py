"""World control methods, the seeded scenario, and rendering at fleet scale."""

from __future__ import annotations

import time

import orjson
import pytest

from exporter.simulator import SimulatorError, World

R = "ap-guangzhou"


@pytest.fixture
def world() -> World:
    return World(regions=[R], seed=1, clock=lambda: 1_700_000_000.0)


def _masters(world: World, name: str) -> list[str]:
    stream = world.stream(R, name)
    assert stream is not None
    return [p.upstream_sequence for p in stream.publishers if p.master]


def _sequences(world: World, name: str) -> list[str]:
    stream = world.stream(R, name)
    assert stream is not None
    return [p.upstream_sequence for p in stream.publishers]


class TestControl:
    def test_add_stream(self, world):
        stream = world.add_stream(R, "s", publishers=3, host_group="hg", optimal_enable=1)
        assert [p.master for p in stream.publishers] == [True, False, False]
        assert len(set(_sequences(world, "s"))) == 3
        assert all(p.upstream_sequence.isdigit() for p in stream.publishers)
        assert world.add_stream(R, "t", master=False).master is None
        with pytest.raises(SimulatorError):
            world.add_stream(R, "s")
        with pytest.raises(SimulatorError):
            world.add_stream("ap-mars", "s")

    def test_handover_keeps_the_old_master_as_backup(self, world):
        world.add_stream(R, "s", publishers=2)
        old, backup = _sequences(world, "s")
        assert world.handover(R, "s") == backup
        assert _masters(world, "s") == [backup]
        assert _sequences(world, "s") == [old, backup]

    def test_handover_to_a_named_publisher(self, world):
        world.add_stream(R, "s", publishers=3)
        third = _sequences(world, "s")[2]
        assert world.handover(R, "s", third) == third
        with pytest.raises(SimulatorError):
            world.handover(R, "s", "123")

    def test_failover_removes_the_old_master(self, world):
        world.add_stream(R, "s", publishers=2)
        _old, backup = _sequences(world, "s")
        assert world.failover(R, "s") == backup
        assert _sequences(world, "s") == [backup]
        assert _masters(world, "s") == [backup]
        with pytest.raises(SimulatorError):
            world.failover(R, "s")  # nobody left to take over

    def test_lose_backup_and_rejoin_with_a_new_sequence(self, world):
        world.add_stream(R, "s", publishers=2)
        master, backup = _sequences(world, "s")
        assert world.lose_backup(R, "s") == backup
        assert _sequences(world, "s") == [master]
        with pytest.raises(SimulatorError):
            world.lose_backup(R, "s")  # only the master is left
        new = world.add_publisher(R, "s")
        assert new not in (master, backup)
        assert _sequences(world, "s") == [master, new]
        assert _masters(world, "s") == [master]

    def test_add_publisher_as_master(self, world):
        world.add_stream(R, "s", publishers=1)
        new = world.add_publisher(R, "s", master=True, source_from="拉流转推(7)")
        assert _masters(world, "s") == [new]
        stream = world.stream(R, "s")
        assert stream is not None and stream.publishers[-1].source_from == "拉流转推(7)"

    def test_set_no_master_and_regain(self, world):
        world.add_stream(R, "s", publishers=2)
        world.set_no_master(R, "s")
        assert _masters(world, "s") == []
        first = _sequences(world, "s")[0]
        assert world.handover(R, "s", first) == first  # a masterless group may gain any master

    def test_remove_stream(self, world):
        world.add_stream(R, "s")
        world.remove_stream(R, "s")
        assert world.stream(R, "s") is None
        with pytest.raises(SimulatorError):
            world.remove_stream(R, "s")

    def test_every_change_shows_in_the_rendered_list(self, world):
        world.add_stream(R, "s", publishers=2)
        before = world.render_list(R)
        assert world.render_list(R) is before  # unchanged world: the cached bytes
        version = world.version
        world.handover(R, "s")
        after = orjson.loads(world.render_list(R))
        assert world.version > version
        assert [b["MasterFlag"] for b in after[0]["BackupList"]] == [0, 1]


class TestScenario:
    @staticmethod
    def _run(seed: int, steps: int = 30) -> tuple[list[str], object]:
        world = World(
            regions=["ap-beijing", "ap-shanghai"], streams_per_region=20, seed=seed, clock=lambda: 1e9
        )
        return world.step(steps), world.snapshot()

    def test_same_seed_same_world(self):
        assert self._run(42) == self._run(42)

    def test_other_seed_other_world(self):
        assert self._run(42)[1] != self._run(43)[1]

    def test_covers_every_kind_of_change(self):
        changes, _ = self._run(7, steps=200)
        kinds = {
            "start", "stop", "handover", "failover", "lost backup", "rejoined", "no master", "master back",
        }  # fmt: skip
        assert {kind for line in changes for kind in kinds if kind in line} == kinds

    def test_a_sequence_that_left_never_comes_back(self):
        """Rejoining publishers (and restarted streams) always get a NEW UpstreamSequence."""
        world = World(regions=[R], streams_per_region=30, seed=5, clock=lambda: 1e9)
        present: set[str] = set()
        gone: set[str] = set()
        rejoins = 0
        for _ in range(150):
            rejoins += sum("rejoined" in line for line in world.step())
            now = {p.upstream_sequence for s in world.streams(R) for p in s.publishers}
            assert not now & gone
            gone |= present - now
            present = now
        assert rejoins > 10 and len(gone) > 10

    def test_population_stays_near_the_target(self):
        world = World(regions=[R], streams_per_region=50, seed=9, clock=lambda: 1e9)
        world.step(300)
        assert 35 <= len(world.streams(R)) <= 65

    def test_step_changes_each_region(self):
        world = World(regions=["ap-beijing", "ap-tokyo"], streams_per_region=10, seed=3, changes_per_step=2)
        changes = world.step()
        assert {line.split()[0] for line in changes} == {"ap-beijing", "ap-tokyo"}


def test_20000_streams_reply_well_under_a_second():
    world = World(regions=[R], streams_per_region=20_000, seed=1)
    started = time.perf_counter()
    body = world.render_list(R)
    cold = time.perf_counter() - started
    world.step()
    started = time.perf_counter()
    world.render_list(R)
    warm = time.perf_counter() - started
    assert len(orjson.loads(body)) == 20_000
    assert cold < 1.0
    assert warm < 0.25  # after a step only the touched streams are re-rendered
