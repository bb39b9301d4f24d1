"""Every way the vendor (or the network) can let a poll down, against the real simulator.

The promise under test (SPEC 2 and 5): a failed, throttled, slow or malformed reply is
"unknown", never data. For each fault, after a baseline poll the failing poll must leave every
per-stream and region series exactly as it was, count no event, set ``up`` 0, count the right
``api_requests_total{code}``, and say so in exactly one log line (no traceback); the next good
poll sets ``up`` back to 1 and still changes nothing, since the world did not change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
from structlog.testing import capture_logs

from exporter.simulator import Fault, FaultKind, SimulatorServer

ACTION_CODES = (
    "FailedOperation.CallOtherSvrFailed",
    "InternalError",
    "InternalError.CallOtherSvrError",
    "InternalError.ConfigNotExist",
    "InternalError.GetBizidError",
    "InternalError.GetStreamInfoError",
    "InternalError.GetUpstreamInfoError",
    "InternalError.NotPermmitOperat",
    "InternalError.StreamStatusError",
    "InternalError.UpdateDataError",
    "InvalidParameter",
    "InvalidParameterValue",
    "MissingParameter",
    "ResourceNotFound.ForbidService",
    "ResourceNotFound.FreezeService",
    "ResourceNotFound.StopService",
    "ResourceNotFound.UserDisableService",
    "ResourceNotFound.UserNotExist",
)
COMMON_CODES = ("RequestLimitExceeded", "AuthFailure.SignatureExpire")
SLOW_TIMEOUT = 0.3  # request_timeout of the slow-reply case; the reply comes 10x later


@dataclass(frozen=True)
class Case:
    id: str
    fault: Fault
    code: str  # the api_requests_total{code} label it must count
    request_timeout: float = 2.0


CASES = (
    *(Case(c, Fault(kind=FaultKind.ERROR, code=c), c) for c in (*ACTION_CODES, *COMMON_CODES)),
    *(Case(f"http-{s}", Fault(kind=FaultKind.HTTP_STATUS, status=s), "HTTPError") for s in (500, 502, 503)),
    Case("html-body", Fault(kind=FaultKind.HTML), "BadResponse"),
    Case("truncated-json", Fault(kind=FaultKind.TRUNCATED), "BadResponse"),
    Case("wrong-shape", Fault(kind=FaultKind.WRONG_SHAPE), "BadResponse"),
    Case("slow-reply", Fault(kind=FaultKind.DELAY, delay=10 * SLOW_TIMEOUT), "Timeout", SLOW_TIMEOUT),
    Case("connection-reset", Fault(kind=FaultKind.RESET), "NetworkError"),
)
LOUD = ("warning", "error", "critical")


def api_counts(rig: Any) -> dict[str, float]:
    return {
        dict(labels)["code"]: value
        for (name, labels), value in rig.health_samples().items()
        if name == "tencent_live_api_requests_total"
    }


def deltas(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {code: n - before.get(code, 0.0) for code, n in after.items() if n != before.get(code, 0.0)}


def assert_one_failure_line(logs: list[Any], kit: Any, code: str) -> dict[str, Any]:
    """Exactly one warning-or-worse line for the failed poll, naming account, region and code.

    A throttle also lowers the account's budget, which is news of its own (one more line).
    """
    allowed = {"rate_limit_lowered"} if code.startswith("RequestLimitExceeded") else set()
    loud = [e for e in logs if e["log_level"] in LOUD and e["event"] not in allowed]
    assert len(loud) == 1, loud
    line = loud[0]
    assert (line.get("account"), line.get("region"), line.get("code")) == (kit.ACCOUNT, kit.REGION, code)
    for entry in logs:
        assert "exc_info" not in entry and "exception" not in entry, entry
        assert "Traceback" not in repr(entry), entry
    return line  # type: ignore[no-any-return]


async def failing_poll(rig: Any, kit: Any, code: str, inject: Any) -> dict[str, Any]:
    """Baseline, one failing poll (checked), one good poll (checked); returns the failure line."""
    assert await rig.poll()
    assert rig.up() == 1
    baseline = rig.store_samples()
    events = rig.events.recent()
    counts = api_counts(rig)
    sent = rig.sim_requests()

    inject()
    with capture_logs() as logs:
        assert not await rig.poll()
    rig.server.world.faults.clear()

    assert rig.store_samples() == baseline
    assert rig.events.recent() == events
    assert rig.up() == 0
    counted = deltas(api_counts(rig), counts)
    assert set(counted) == {code}
    assert counted[code] == rig.sim_requests() - sent >= 1  # every try counted, once
    line = assert_one_failure_line(logs, kit, code)

    counts = api_counts(rig)
    assert await rig.poll()
    assert rig.up() == 1
    assert rig.store_samples() == baseline
    assert rig.events.recent() == events
    assert deltas(api_counts(rig), counts) == {"OK": 1.0}
    return line


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_failed_poll_changes_nothing_but_health(
    case: Case, simulator: SimulatorServer, sim_credential: Any, kit: Any
) -> None:
    async def scenario() -> None:
        async with kit.open_rig(simulator, sim_credential, request_timeout=case.request_timeout) as rig:
            # As many uses as the poll has tries, so retries fail too; the rest is cleared after.
            fault = replace(case.fault, times=kit.FAST_RETRY.attempts, region=kit.REGION)
            await failing_poll(rig, kit, case.code, lambda: simulator.world.inject(fault))

    kit.run(scenario())


def test_connection_refused_is_a_network_error(
    simulator: SimulatorServer, sim_credential: Any, kit: Any
) -> None:
    """The endpoint's port closed (the vendor unreachable), then open again with the same world."""
    port = simulator.port
    revived: list[SimulatorServer] = []

    async def scenario() -> None:
        # No keep-alive: each try must connect, so the closed port is really what it meets.
        async with kit.open_rig(simulator, sim_credential, keepalive=False) as rig:
            assert await rig.poll()
            assert rig.up() == 1
            baseline = rig.store_samples()
            counts = api_counts(rig)
            simulator.stop()
            with capture_logs() as logs:
                assert not await rig.poll()
            assert rig.store_samples() == baseline
            assert rig.up() == 0
            assert deltas(api_counts(rig), counts) == {"NetworkError": float(kit.FAST_RETRY.attempts)}
            line = assert_one_failure_line(logs, kit, "NetworkError")
            assert "ConnectError" in line["error"]

            revived.append(SimulatorServer(simulator.world, host="127.0.0.1", port=port).start())
            assert await rig.poll()
            assert rig.up() == 1
            assert rig.store_samples() == baseline

    try:
        kit.run(scenario())
    finally:
        for server in revived:
            server.stop()


def test_null_stream_list_is_success_and_counts_toward_drops(
    simulator: SimulatorServer, sim_credential: Any, kit: Any
) -> None:
    """``StreamInfoList: null`` means "nothing online": up stays 1, and two of them drop everything."""
    online = len(simulator.world.streams(kit.REGION))
    region = {"account": kit.ACCOUNT, "region": kit.REGION}

    async def scenario() -> None:
        async with kit.open_rig(simulator, sim_credential) as rig:
            assert await rig.poll()
            null = Fault(kind=FaultKind.NULL_LIST, region=kit.REGION)
            counts = api_counts(rig)
            simulator.world.inject(null)
            assert await rig.poll()
            assert rig.up() == 1
            assert deltas(api_counts(rig), counts) == {"OK": 1.0}
            assert rig.stat("tencent_live_region_streams", **region) == 0
            assert rig.stat("tencent_live_region_stream_drops_total", **region) == 0  # 1 of 2
            simulator.world.inject(null)
            assert await rig.poll()
            assert rig.stat("tencent_live_region_stream_drops_total", **region) == online
            kinds = [e["kind"] for e in rig.events.recent()]
            assert kinds == ["stream_drop"] * online

    kit.run(scenario())


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind=FaultKind.ERROR, code="InternalError", times=9),
        Fault(kind=FaultKind.WRONG_SHAPE, times=9),
        Fault(kind=FaultKind.RESET, times=9),
    ],
    ids=lambda f: str(f.kind),
)
def test_absent_failed_absent_is_one_drop(
    fault: Fault, simulator: SimulatorServer, sim_credential: Any, kit: Any
) -> None:
    """A failed poll neither confirms nor resets a pending drop (SPEC 5)."""
    region = {"account": kit.ACCOUNT, "region": kit.REGION}
    name = simulator.world.streams(kit.REGION)[0].name

    async def scenario() -> None:
        async with kit.open_rig(simulator, sim_credential, drop_confirmations=2) as rig:
            assert await rig.poll()
            simulator.world.remove_stream(kit.REGION, name)
            assert await rig.poll()  # absent once
            assert rig.stat("tencent_live_region_stream_drops_total", **region) == 0
            simulator.world.inject(fault)
            assert not await rig.poll()
            simulator.world.faults.clear()
            assert rig.stat("tencent_live_region_stream_drops_total", **region) == 0
            assert await rig.poll()  # absent twice: confirmed
            assert rig.stat("tencent_live_region_stream_drops_total", **region) == 1
            assert rig.stat("tencent_live_stream_online", **region, stream=name) == 0
            events = [(e["kind"], e["stream"]) for e in rig.events.recent()]
            assert events == [("stream_drop", name)]

    kit.run(scenario())


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind=FaultKind.ERROR, code="InternalError", times=9),
        Fault(kind=FaultKind.TRUNCATED, times=9),
        Fault(kind=FaultKind.HTTP_STATUS, status=503, times=9),
    ],
    ids=lambda f: str(f.kind),
)
def test_absent_failed_back_is_nothing(
    fault: Fault, simulator: SimulatorServer, sim_credential: Any, kit: Any
) -> None:
    """Absent (a null list), a failure, then the same streams again: no drop, no start, no event."""

    async def scenario() -> None:
        async with kit.open_rig(simulator, sim_credential, drop_confirmations=2) as rig:
            assert await rig.poll()
            baseline = rig.store_samples()
            simulator.world.inject(Fault(kind=FaultKind.NULL_LIST, region=kit.REGION))
            assert await rig.poll()
            simulator.world.inject(fault)
            assert not await rig.poll()
            simulator.world.faults.clear()
            assert await rig.poll()
            assert rig.store_samples() == baseline
            assert rig.events.recent() == []

    kit.run(scenario())
