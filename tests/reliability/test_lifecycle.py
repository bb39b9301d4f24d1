"""The real daemon as a subprocess: clean stop, crash and restart, and a state file that fails.

The promises (SPEC 4, 5, 6): counters survive restarts with ``state_file``, an event is never
counted twice, a change made while the exporter was down is still counted (the first poll
after a restart diffs against the saved snapshot, it is no new baseline), and trouble with the
state file costs persistence only, never polling.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.simulator import SimulatorServer

REGION = "ap-guangzhou"
ACCOUNT = "prod"
HERE = {"account": ACCOUNT, "region": REGION}


def write_config(tmp_path: Path, simulator: SimulatorServer, state_file: Path | str) -> Path:
    secret_id = simulator.world.secret_ids[0]
    account = simulator.world.account(secret_id)
    assert account is not None
    path = tmp_path / "config.yml"
    path.write_text(
        f"""\
poll_interval: 1s
request_timeout: 500ms
drop_confirmations: 2
state_file: {json.dumps(str(state_file))}
accounts:
  - name: {ACCOUNT}
    secret_id: {json.dumps(secret_id)}
    secret_key: {json.dumps(account.secret_key)}
    regions: [{REGION}]
    endpoint: {simulator.url}
""",
        encoding="utf-8",
    )
    return path


def store_counters(samples: dict[Any, float]) -> dict[Any, float]:
    """The counters the store owns (and the state file keeps); health counters restart at 0."""
    return {
        key: value
        for key, value in samples.items()
        if key[0].endswith("_total") and key[0].startswith(("tencent_live_stream_", "tencent_live_region_"))
    }


def saved_stream_counters(state_file: Path, stream: str) -> list[int] | None:
    """[switchovers, joins, losses] of a stream as the state file has them, if it has them."""
    try:
        document = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for region in document["counters"]["regions"]:
        if (region["account"], region["region"]) == (ACCOUNT, REGION):
            found = region["streams"].get(stream)
            return list(found) if found is not None else None
    return None


def test_sigterm_exits_zero_and_saves_state(
    tmp_path: Path, simulator: SimulatorServer, daemons: Callable[..., Any], kit: Any
) -> None:
    state_file = tmp_path / "state.json"
    daemon = daemons(["--config.file", str(write_config(tmp_path, simulator, state_file))])
    daemon.wait_ready()
    assert daemon.value("tencent_live_up", **HERE) == 1

    assert daemon.terminate(timeout=5.0) == 0
    document = json.loads(state_file.read_text(encoding="utf-8"))
    regions = {(r["account"], r["region"]): r for r in document["counters"]["regions"]}
    assert set(regions) == {(ACCOUNT, REGION)}
    assert "streams" in regions[(ACCOUNT, REGION)]
    assert "Traceback" not in daemon.stderr
    assert '"stopped"' in daemon.stderr or "event=stopped" in daemon.stderr


def test_kill_9_then_restart_continues_without_replay(
    tmp_path: Path, simulator: SimulatorServer, daemons: Callable[..., Any], kit: Any
) -> None:
    world = simulator.world
    world.add_stream(REGION, "before-kill", publishers=2)
    world.add_stream(REGION, "while-down", publishers=2)
    state_file = tmp_path / "state.json"
    config = write_config(tmp_path, simulator, state_file)

    first = daemons(["--config.file", str(config)])
    first.wait_ready()
    kit.wait_for(lambda: first.value("tencent_live_up", **HERE) == 1, what="up 1")
    world.handover(REGION, "before-kill")
    switched = {**HERE, "stream": "before-kill"}
    kit.wait_for(lambda: first.value("tencent_live_stream_switchovers_total", **switched) == 1, what="switch")
    # Wait for the save that holds it: what SIGKILL may lose is at most the cycle after it.
    kit.wait_for(lambda: (saved_stream_counters(state_file, "before-kill") or [0])[0] == 1, what="save")
    before = store_counters(first.samples())
    first.kill()

    new_master = world.handover(REGION, "while-down")  # nobody is watching
    second = daemons(["--config.file", str(config)])
    second.wait_ready()
    assert second.value("tencent_live_up", **HERE) == 1
    after = store_counters(second.samples())

    for key, value in before.items():
        assert after.get(key, -1) >= value, f"{key}: {value} before the kill, {after.get(key)} after"
    assert after[("tencent_live_stream_switchovers_total", frozenset(switched.items()))] == 1  # no replay
    # The change made while down is counted: the first poll after the restart is no baseline.
    events = second.get("/events").json()["events"]
    assert [(e["kind"], e["stream"], e.get("to")) for e in events] == [
        ("switchover", "while-down", new_master)
    ]
    handovers = frozenset({**HERE, "reason": "handover"}.items())
    assert after[("tencent_live_region_switchovers_total", handovers)] == (
        before[("tencent_live_region_switchovers_total", handovers)] + 1
    )
    assert "Traceback" not in first.stderr + second.stderr
    down = frozenset({**HERE, "stream": "while-down"}.items())
    assert after[("tencent_live_stream_switchovers_total", down)] == 1, "per-stream counter missed it"


@pytest.mark.parametrize("where", ["under-a-regular-file", "in-proc"])
def test_unwritable_state_file_logs_and_keeps_polling(
    where: str, tmp_path: Path, simulator: SimulatorServer, daemons: Callable[..., Any], kit: Any
) -> None:
    if where == "in-proc":
        state_file = Path("/proc/tencent-live-exporter-test/state.json")
    else:
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("a regular file\n", encoding="utf-8")
        state_file = blocker / "state.json"
    daemon = daemons(["--config.file", str(write_config(tmp_path, simulator, state_file))])
    daemon.wait_ready()
    kit.wait_for(lambda: "state_save_failed" in daemon.stderr, what="state_save_failed log line")
    line = next(ln for ln in daemon.stderr.splitlines() if "state_save_failed" in ln)
    assert str(state_file) in line and "level=error" in line
    # Still polling: a later poll succeeds after the save failed.
    seen = daemon.value("tencent_live_last_success_timestamp_seconds", **HERE)
    kit.wait_for(
        lambda: (daemon.value("tencent_live_last_success_timestamp_seconds", **HERE) or 0) > (seen or 0),
        what="a poll after the failed save",
    )
    assert daemon.value("tencent_live_up", **HERE) == 1
    assert daemon.terminate(timeout=5.0) == 0
    assert "Traceback" not in daemon.stderr


def test_corrupt_state_file_is_moved_aside(
    tmp_path: Path, simulator: SimulatorServer, daemons: Callable[..., Any], kit: Any
) -> None:
    state_file = tmp_path / "state.json"
    garbage = b'{"format": "tencent-live-exporter-state", "version": 1, "regions": {"x": '
    state_file.write_bytes(garbage)
    daemon = daemons(["--config.file", str(write_config(tmp_path, simulator, state_file))])
    daemon.wait_ready()
    assert daemon.value("tencent_live_up", **HERE) == 1
    aside = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage
    line = next(ln for ln in daemon.stderr.splitlines() if "state_restore_failed" in ln)
    assert str(aside[0]) in line
    # And it starts afresh: the next save writes a valid state file in its place.
    kit.wait_for(lambda: saved_stream_counters(state_file, "-") is None and _valid(state_file), what="save")
    assert daemon.terminate(timeout=5.0) == 0


def _valid(path: Path) -> bool:
    try:
        return "counters" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def test_restored_first_poll_counts_per_stream_events(
    tmp_path: Path, simulator: SimulatorServer, sim_credential: Any, kit: Any
) -> None:
    """In-process twin of the restart test, pinning where a change made while down is counted."""
    simulator.world.add_stream(REGION, "while-down", publishers=2)
    state_file = tmp_path / "state.json"
    stream = {**HERE, "stream": "while-down"}

    async def scenario() -> None:
        async with kit.open_rig(simulator, sim_credential, state_file=state_file) as rig:
            assert await rig.poll()
        simulator.world.handover(REGION, "while-down")
        async with kit.open_rig(simulator, sim_credential, state_file=state_file) as rig:
            await rig.runner.restore()
            assert await rig.poll()
            assert [e["kind"] for e in rig.events.recent()] == ["switchover"]
            assert rig.stat("tencent_live_region_switchovers_total", **HERE, reason="handover") == 1
            assert rig.stat("tencent_live_stream_switchovers_total", **stream) == 1

    kit.run(scenario())
