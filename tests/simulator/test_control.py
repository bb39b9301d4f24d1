"""``/_sim/*`` over HTTP, as an out-of-process end-to-end test drives it; and the tick thread."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from exporter.simulator import SimulatorServer, World


def _sim(server: SimulatorServer, command: str, **args: object) -> httpx.Response:
    return httpx.post(f"{server.url}/_sim/{command}", content=orjson.dumps(args))


def _result(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return orjson.loads(response.content)["result"]


class TestCommands:
    def test_stream_lifecycle(self, simulator):
        world = simulator.world
        added = _result(_sim(simulator, "add_stream", region="ap-hongkong", name="ctl", publishers=3))
        assert added["StreamName"] == "ctl" and len(added["BackupList"]) == 3
        first, second, third = (b["UpstreamSequence"] for b in added["BackupList"])
        assert _result(_sim(simulator, "handover", region="ap-hongkong", name="ctl", to=third)) == {
            "master": third
        }
        assert _result(_sim(simulator, "lose_backup", region="ap-hongkong", name="ctl", sequence=first)) == {
            "lost": first
        }
        assert _result(_sim(simulator, "failover", region="ap-hongkong", name="ctl")) == {"master": second}
        joined = _result(_sim(simulator, "add_publisher", region="ap-hongkong", name="ctl"))["sequence"]
        _result(_sim(simulator, "set_no_master", region="ap-hongkong", name="ctl"))
        stream = world.stream("ap-hongkong", "ctl")
        assert stream is not None
        assert [(p.upstream_sequence, p.master) for p in stream.publishers] == [
            (second, False),
            (joined, False),
        ]
        _result(_sim(simulator, "remove_stream", region="ap-hongkong", name="ctl"))
        assert world.stream("ap-hongkong", "ctl") is None

    def test_step(self, simulator):
        version = simulator.world.version
        changes = _result(_sim(simulator, "step", count=3))["changes"]
        assert changes and simulator.world.version > version

    def test_fault_then_clear(self, simulator):
        assert _result(_sim(simulator, "fault", kind="error", code="InternalError", times=2)) == {
            "pending": 1
        }
        assert simulator.world.faults.pending()[0][1] == 2
        _result(_sim(simulator, "clear_faults"))
        assert len(simulator.world.faults) == 0

    def test_rate_limit(self, simulator):
        assert _result(_sim(simulator, "rate_limit", rate_limit=5)) == {"rate_limit": 5.0}
        assert simulator.simulator.rate_limit == 5.0

    @pytest.mark.parametrize(
        ("command", "args", "status"),
        [
            ("explode", {}, 404),
            ("handover", {"region": "ap-hongkong", "name": "nobody"}, 400),
            ("add_stream", {"region": "ap-mars"}, 400),
            ("add_stream", {"region": "ap-hongkong", "colour": "red"}, 400),
            ("fault", {"kind": "meteor"}, 400),
            ("clear_faults", {"now": True}, 400),
            ("rate_limit", {"rate_limit": 0}, 400),
        ],
    )
    def test_bad_requests_are_json_errors(self, simulator, command, args, status):
        response = _sim(simulator, command, **args)
        assert response.status_code == status
        assert orjson.loads(response.content)["error"]

    def test_body_must_be_an_object(self, simulator):
        response = httpx.post(f"{simulator.url}/_sim/step", content=b"[1]")
        assert response.status_code == 400


class TestReads:
    def test_state_has_no_secret(self, simulator, sim_account):
        simulator.world.set_no_master("ap-beijing", simulator.world.streams("ap-beijing")[0].name)
        response = httpx.get(f"{simulator.url}/_sim/state")
        state = orjson.loads(response.content)
        assert state["accounts"] == [sim_account.secret_id]
        assert state["regions"]["ap-beijing"]["streams"] == 3
        assert state["regions"]["ap-beijing"]["without_master"] == 1
        assert sim_account.secret_key.encode() not in response.content

    def test_streams(self, simulator):
        payload = orjson.loads(
            httpx.get(f"{simulator.url}/_sim/streams", params={"region": "ap-bangkok"}).content
        )
        assert [g["StreamName"] for g in payload["StreamInfoList"]] == [
            s.name for s in simulator.world.streams("ap-bangkok")
        ]

    def test_requests_summary(self, simulator, sign, sim_account):
        for _ in range(3):
            headers, body = sign(timestamp=time.time(), host=f"127.0.0.1:{simulator.port}")
            httpx.post(simulator.url, headers=headers, content=body)
        summary = orjson.loads(httpx.get(f"{simulator.url}/_sim/requests").content)
        assert summary["count"] == 3
        assert summary["codes"] == {"OK": 3}
        assert summary["max_in_window"][sim_account.secret_id] >= 1
        _result(_sim(simulator, "clear_requests"))
        assert len(simulator.request_log) == 0

    def test_control_traffic_is_not_vendor_traffic(self, simulator):
        httpx.get(f"{simulator.url}/_sim/state")
        _sim(simulator, "step")
        assert len(simulator.request_log) == 0

    def test_unknown_paths(self, simulator):
        assert httpx.get(f"{simulator.url}/_sim/nothing").status_code == 404
        assert httpx.get(f"{simulator.url}/metrics").status_code == 404


def test_tick_thread_steps_the_world():
    world = World(regions=["ap-beijing"], streams_per_region=5, seed=1)
    initial = world.version
    with SimulatorServer(world, tick_seconds=0.01):
        deadline = time.monotonic() + 5
        while world.version == initial and time.monotonic() < deadline:
            time.sleep(0.01)  # polling a condition with a deadline, not waiting for a guess
        assert world.version > initial


def test_stop_is_prompt_even_with_a_reply_pending(simulator, sign):
    """A delayed reply must not hold stop() hostage (tests would hang at teardown)."""
    import threading

    from exporter.simulator import Fault, FaultKind

    simulator.world.inject(Fault(kind=FaultKind.DELAY, delay=30))
    headers, body = sign(timestamp=time.time(), host=f"127.0.0.1:{simulator.port}")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(simulator.url, headers=headers, content=body, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while not len(simulator.request_log) and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    simulator.stop()
    caller.join(timeout=5)
    assert time.monotonic() - started < 2
    assert errors and isinstance(errors[0], httpx.ReadError)
