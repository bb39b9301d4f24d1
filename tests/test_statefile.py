"""The state file: exact round trip, atomic replace, corrupt files moved aside, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from exporter.diff import RegionState
from exporter.model import Publisher, RegionKey, Stream
from exporter.statefile import (
    FORMAT,
    VERSION,
    SavedState,
    StateFileError,
    load_state,
    quarantine,
    save_state,
)
from exporter.statelock import StateLock

NOW = 1_795_762_800.0


def _stream(name: str, *pubs: tuple[str, bool]) -> Stream:
    return Stream(
        name=name,
        host_group="hg-1",
        optimal_enable=1,
        publishers=tuple(
            Publisher(
                upstream_sequence=seq,
                domain="push.example.com",
                app="live",
                publish_time=1_530_298_800.25 + i,
                source_from="拉流转推(123)",
                is_master=master,
            )
            for i, (seq, master) in enumerate(pubs)
        ),
    )


ODD = 'room"1\\\n直播间'
REGIONS: dict[RegionKey, RegionState] = {
    RegionKey("prod", "ap-guangzhou"): RegionState(
        streams={
            "a": _stream("a", ("1", True), ("2", False)),
            "pending": _stream("pending", ("3", True)),
            "masterless": _stream("masterless", ("4", False)),
            "empty": _stream("empty"),
            ODD: _stream(ODD, ('9"\\', True)),
        },
        absent={"pending": 1},
        last_master={"a": "1", "pending": "3", "masterless": "5", ODD: '9"\\'},
        seen_scope=None,
    ),
    # An account name may contain the separator of the human-readable region key.
    RegionKey("team/b", "ap-hongkong"): RegionState(
        streams={}, absent={}, last_master={}, seen_scope=frozenset({"w1", "w2"})
    ),
}
COUNTERS: dict[str, Any] = {"region": {"prod/ap-guangzhou": {"switchovers": {"failover": 3}}}, "n": [1, 2.5]}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.json"


def _now() -> float:
    return NOW


class TestRoundTrip:
    def test_everything_comes_back_equal(self, path: Path) -> None:
        save_state(path, regions=REGIONS, counters=COUNTERS)
        assert load_state(path) == SavedState(regions=REGIONS, counters=COUNTERS)

    def test_file_carries_format_and_version(self, path: Path) -> None:
        save_state(path, regions=REGIONS, counters={})
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert (doc["format"], doc["version"]) == (FORMAT, VERSION)
        assert "prod/ap-guangzhou" in doc["regions"]

    def test_missing_file_is_none(self, path: Path) -> None:
        assert load_state(path) is None

    def test_empty_state(self, path: Path) -> None:
        save_state(path, regions={}, counters={})
        assert load_state(path) == SavedState(regions={}, counters={})


class TestAtomicWrite:
    def test_no_temp_file_left(self, path: Path) -> None:
        save_state(path, regions=REGIONS, counters=COUNTERS)
        save_state(path, regions={}, counters={"x": 1})
        assert os.listdir(path.parent) == ["state.json"]
        loaded = load_state(path)
        assert loaded is not None
        assert loaded.counters == {"x": 1}

    def test_unserialisable_counters_leave_old_file(self, path: Path) -> None:
        save_state(path, regions=REGIONS, counters=COUNTERS)
        before = path.read_bytes()
        with pytest.raises(StateFileError, match="not serialisable"):
            save_state(path, regions=REGIONS, counters={"bad": {1, 2}})
        assert path.read_bytes() == before
        assert os.listdir(path.parent) == ["state.json"]

    def test_missing_directory_raises(self, tmp_path: Path) -> None:
        with pytest.raises(StateFileError, match="cannot write state file"):
            save_state(tmp_path / "nope" / "state.json", regions={}, counters={})

    def test_parent_is_a_file_raises(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("x")
        with pytest.raises(StateFileError, match="cannot write state file"):
            save_state(tmp_path / "file" / "state.json", regions={}, counters={})

    @pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory modes")
    def test_read_only_directory_raises(self, tmp_path: Path) -> None:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(StateFileError, match="cannot write state file"):
                save_state(ro / "state.json", regions={}, counters={})
        finally:
            ro.chmod(0o700)

    def test_disk_full_leaves_old_file(self, path: Path) -> None:
        """A file-size limit makes the write fail like a full disk, in a child process only."""
        save_state(path, regions={}, counters={"old": True})
        before = path.read_bytes()
        script = textwrap.dedent(
            f"""
            import resource, signal, sys
            from pathlib import Path
            from exporter.statefile import StateFileError, save_state
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))
            try:
                save_state(Path({str(path)!r}), regions={{}}, counters={{"big": "x" * 10000}})
            except StateFileError as exc:
                print("StateFileError:", exc)
                sys.exit(0)
            sys.exit("no error raised")
            """
        )
        proc = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[1],
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "cannot write state file" in proc.stdout
        assert path.read_bytes() == before
        assert os.listdir(path.parent) == ["state.json"]


class TestCorruptFile:
    @pytest.mark.parametrize(
        ("content", "why"),
        [
            (b"", "empty"),
            (b"{not json", "truncated JSON"),
            (b"[]", "not an object"),
            (b'{"format": "something-else", "version": 1}', "foreign format"),
            (json.dumps({"format": FORMAT, "version": 99}).encode(), "other version"),
            (
                json.dumps({"format": FORMAT, "version": VERSION, "regions": []}).encode(),
                "regions not an object",
            ),
            (
                json.dumps(
                    {
                        "format": FORMAT,
                        "version": VERSION,
                        "regions": {
                            "a/r": {
                                "account": "a",
                                "region": "r",
                                "streams": {},
                                "absent": {"ghost": 1},
                                "last_master": {},
                                "seen_scope": None,
                            }
                        },
                    }
                ).encode(),
                "absent names an unknown stream",
            ),
            (
                json.dumps(
                    {
                        "format": FORMAT,
                        "version": VERSION,
                        "regions": {
                            "a/r": {
                                "account": "a",
                                "region": "r",
                                "streams": {
                                    "s": {"host_group": "", "optimal_enable": 0, "publishers": [["1"]]}
                                },
                                "absent": {},
                                "last_master": {},
                                "seen_scope": None,
                            }
                        },
                    }
                ).encode(),
                "short publisher row",
            ),
        ],
        ids=lambda v: v if isinstance(v, str) else None,
    )
    def test_moved_aside_and_reported(self, path: Path, content: bytes, why: str) -> None:
        path.write_bytes(content)
        with pytest.raises(StateFileError, match="unusable") as info:
            load_state(path, clock=_now)
        aside = path.parent / f"state.json.corrupt-{int(NOW)}"
        assert str(aside) in str(info.value)
        assert not path.exists()
        assert aside.read_bytes() == content  # nothing lost
        # The next run starts fresh and its save does not touch the moved copy.
        save_state(path, regions={}, counters={})
        assert aside.read_bytes() == content

    def test_second_corruption_in_the_same_second_keeps_both(self, path: Path) -> None:
        path.write_bytes(b"first")
        with pytest.raises(StateFileError):
            load_state(path, clock=_now)
        path.write_bytes(b"second")
        with pytest.raises(StateFileError):
            load_state(path, clock=_now)
        base = path.parent / f"state.json.corrupt-{int(NOW)}"
        assert base.read_bytes() == b"first"
        assert Path(f"{base}.1").read_bytes() == b"second"

    def test_unreadable_path_is_an_error_but_not_moved(self, path: Path) -> None:
        path.mkdir()
        with pytest.raises(StateFileError, match="cannot read state file"):
            load_state(path, clock=_now)
        assert path.is_dir()


class TestLock:
    def test_a_second_holder_is_refused_with_the_first_ones_pid(self, path: Path) -> None:
        first, second = StateLock(path), StateLock(path)
        first.acquire()
        try:
            with pytest.raises(StateFileError, match=rf"in use by process {os.getpid()}"):
                second.acquire()
        finally:
            first.release()
        second.acquire()  # free again once released
        second.release()

    def test_the_lock_dies_with_its_process(self, path: Path) -> None:
        # flock is released by the kernel when the holder exits, however it exits.
        code = textwrap.dedent(
            f"""
            import os
            from pathlib import Path
            from exporter.statelock import StateLock
            StateLock(Path({str(path)!r})).acquire()
            os._exit(0)
            """
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        lock = StateLock(path)
        lock.acquire()
        lock.release()

    def test_an_unopenable_lock_file_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(StateFileError, match="cannot open lock file"):
            StateLock(tmp_path / "missing-dir" / "state.json").acquire()


class TestQuarantine:
    def test_moves_the_file_aside_and_says_where(self, path: Path) -> None:
        path.write_text("{}")
        where = quarantine(path, clock=lambda: NOW)
        aside = path.parent / f"state.json.corrupt-{int(NOW)}"
        assert where == f"moved to {aside}" and aside.read_text() == "{}" and not path.exists()

    @pytest.mark.parametrize(
        "regions",
        [
            {"x": {"account": "a", "region": "r", "streams": {"s": {"publishers": [[1, 2]]}}}},
            {"x": {"account": "a", "region": "r", "streams": {"s": []}}},
            {"x": {"account": ["a"], "region": "r"}},
            {"x": {"account": "a", "region": "r", "streams": {}, "absent": {"s": 0}}},
        ],
        ids=["short publisher row", "stream not an object", "account not a string", "zero absence"],
    )
    def test_bad_nesting_at_any_depth_is_corrupt(self, path: Path, regions: dict[str, Any]) -> None:
        path.write_text(json.dumps({"format": FORMAT, "version": VERSION, "regions": regions}))
        with pytest.raises(StateFileError, match="starting fresh"):
            load_state(path, clock=lambda: NOW)
        assert (path.parent / f"state.json.corrupt-{int(NOW)}").exists()
