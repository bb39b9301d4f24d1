"""Each fault kind, over a real socket and through the MockTransport mount."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest

from exporter.simulator import Fault, FaultKind, FaultQueue, Simulator, SimulatorServer, mock_transport


@pytest.fixture
def post(simulator: SimulatorServer, sign):
    """Send one signed DescribeBackupStreamList to the running simulator."""

    def _post(region: str = "ap-guangzhou", timeout: float = 5.0, **params: object) -> httpx.Response:
        headers, body = sign(
            params or None, region=region, timestamp=time.time(), host=f"127.0.0.1:{simulator.port}"
        )
        with httpx.Client(timeout=timeout) as client:
            return client.post(simulator.url + "/", headers=headers, content=body)

    return _post


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200
    payload: dict[str, Any] = orjson.loads(response.content)["Response"]
    assert "Error" not in payload
    return payload


class TestFaultKinds:
    def test_error_code(self, simulator, post):
        simulator.world.inject(
            Fault(kind=FaultKind.ERROR, code="InternalError.GetStreamInfoError", message="boom")
        )
        response = post()
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        error = orjson.loads(response.content)["Response"]["Error"]
        assert error == {"Code": "InternalError.GetStreamInfoError", "Message": "boom"}
        _ok(post())  # one-shot: the next reply is normal

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_http_status(self, simulator, post, status):
        simulator.world.inject(Fault(kind=FaultKind.HTTP_STATUS, status=status))
        response = post()
        assert response.status_code == status
        assert response.headers["content-type"] == "text/html"
        assert b"<html>" in response.content

    def test_html_body_with_200(self, simulator, post):
        simulator.world.inject(Fault(kind=FaultKind.HTML))
        response = post()
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html"
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(response.content)

    def test_truncated_json(self, simulator, post):
        simulator.world.inject(Fault(kind=FaultKind.TRUNCATED))
        response = post()
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.content.startswith(b'{"Response":')
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(response.content)

    def test_wrong_shape(self, simulator, post):
        simulator.world.inject(Fault(kind=FaultKind.WRONG_SHAPE))
        payload = orjson.loads(post().content)["Response"]
        assert "Error" not in payload
        assert not isinstance(payload["StreamInfoList"], list)

    def test_null_list_while_streams_are_online(self, simulator, post):
        assert simulator.world.streams("ap-guangzhou")
        simulator.world.inject(Fault(kind=FaultKind.NULL_LIST))
        assert _ok(post())["StreamInfoList"] is None
        assert _ok(post())["StreamInfoList"]

    def test_slow_reply(self, simulator, post):
        simulator.world.inject(Fault(kind=FaultKind.DELAY, delay=0.3))
        started = time.monotonic()
        payload = _ok(post())
        assert time.monotonic() - started >= 0.3
        assert payload["StreamInfoList"]

    def test_slow_reply_trips_a_client_timeout(self, simulator, post):
        simulator.world.inject(Fault(kind=FaultKind.DELAY, delay=2.0))
        with pytest.raises(httpx.ReadTimeout):
            post(timeout=0.2)

    def test_connection_reset(self, simulator, post):
        simulator.world.inject(Fault(kind=FaultKind.RESET))
        with pytest.raises(httpx.ReadError):  # a real RST, not a polite close
            post()
        _ok(post())
        assert [r.code for r in simulator.request_log.records()] == ["Reset", "OK"]


class TestMatching:
    def test_times(self, simulator, post):
        simulator.world.inject(Fault(kind=FaultKind.ERROR, code="InternalError", times=2))
        codes = [orjson.loads(post().content)["Response"].get("Error", {}).get("Code") for _ in range(3)]
        assert codes == ["InternalError", "InternalError", None]

    def test_region_and_account(self, simulator, post, sim_account):
        world = simulator.world
        world.inject(Fault(kind=FaultKind.ERROR, code="InternalError", region="ap-beijing"))
        world.inject(
            Fault(kind=FaultKind.ERROR, code="FailedOperation.CallOtherSvrFailed", secret_id="AKIDother")
        )
        _ok(post(region="ap-guangzhou"))
        assert orjson.loads(post(region="ap-beijing").content)["Response"]["Error"]["Code"] == "InternalError"
        assert len(world.faults) == 1  # the other account's fault still waits

    def test_throttled_requests_do_not_consume_faults(self, sim_world, sign):
        core = Simulator(sim_world, rate_limit=1, monotonic=lambda: 0.0)
        core.handle("POST", "/", *sign(timestamp=time.time()))
        sim_world.inject(Fault(kind=FaultKind.HTML))
        assert orjson.loads(core.handle("POST", "/", *sign(timestamp=time.time()))[2])["Response"]["Error"]
        assert len(sim_world.faults) == 1

    def test_queue_is_fifo_among_matches(self):
        queue = FaultQueue()
        queue.add(Fault(kind=FaultKind.HTML, region="ap-beijing"))
        queue.add(Fault(kind=FaultKind.RESET))
        queue.add(Fault(kind=FaultKind.TRUNCATED))

        def kinds(region: str) -> list[FaultKind]:
            return [t.fault.kind for t in queue.take("A", region)]

        assert kinds("ap-guangzhou") == [FaultKind.RESET]  # a replacing fault ends the list
        assert kinds("ap-beijing") == [FaultKind.HTML]
        assert kinds("ap-beijing") == [FaultKind.TRUNCATED]
        assert kinds("ap-beijing") == []

    def test_changing_faults_compose_up_to_a_replacing_one(self):
        queue = FaultQueue()
        for kind in (FaultKind.DELAY, FaultKind.NULL_LIST, FaultKind.ERROR, FaultKind.TRUNCATED):
            queue.add(Fault(kind=kind))
        assert [t.fault.kind for t in queue.take("A", "r")] == [
            FaultKind.DELAY,
            FaultKind.NULL_LIST,
            FaultKind.ERROR,
        ]
        assert [t.fault.kind for t in queue.take("A", "r")] == [FaultKind.TRUNCATED]

    def test_times_zero_lasts_until_cleared_and_every_skips(self):
        queue = FaultQueue()
        queue.add(Fault(kind=FaultKind.NULL_LIST, times=0, every=3))
        hits = [bool(queue.take("A", "r")) for _ in range(7)]
        assert hits == [True, False, False, True, False, False, True]
        assert len(queue) == 1
        queue.clear()
        assert queue.take("A", "r") == []

    def test_scope_matches_list_or_by_name_requests(self):
        queue = FaultQueue()
        queue.add(Fault(kind=FaultKind.RESET, scope="name"))
        assert queue.take("A", "r", by_name=False) == []
        assert [t.fault.kind for t in queue.take("A", "r", by_name=True)] == [FaultKind.RESET]

    @pytest.mark.parametrize(
        "fields",
        [
            {"times": -1},
            {"every": 0},
            {"status": 200},
            {"delay": -1},
            {"code": ""},
            {"kind": "meteor"},
            {"scope": "both"},
            {"kind": "edit"},  # an edit without a field
            {"code": "{pad:99999999999}"},
        ],
    )
    def test_invalid_faults(self, fields):
        with pytest.raises(ValueError):
            Fault(**({"kind": FaultKind.ERROR} | fields))

    def test_from_dict_rejects_unknown_fields(self):
        assert Fault.from_dict({"kind": "reset", "times": 2}) == Fault(kind=FaultKind.RESET, times=2)
        with pytest.raises(ValueError, match="colour"):
            Fault.from_dict({"kind": "reset", "colour": "red"})


class TestMockTransport:
    def test_delay_and_reset_keep_their_meaning(self, core, sign, sim_world):
        async def scenario() -> None:
            async with httpx.AsyncClient(
                transport=mock_transport(core), base_url="http://127.0.0.1"
            ) as client:
                headers, body = sign()
                ok = await client.post("/", headers=headers, content=body)
                assert orjson.loads(ok.content)["Response"]["StreamInfoList"]
                sim_world.inject(Fault(kind=FaultKind.RESET))
                with pytest.raises(httpx.ReadError):
                    await client.post("/", headers=headers, content=body)
                sim_world.inject(Fault(kind=FaultKind.DELAY, delay=5.0))
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(client.post("/", headers=headers, content=body), 0.05)

        asyncio.run(scenario())

    def test_handle_raises_on_reset_and_sleeps_on_delay(self, sim_world, sign, wall, mono):
        slept: list[float] = []
        core = Simulator(sim_world, clock=wall, monotonic=mono, sleep=slept.append)
        sim_world.inject(Fault(kind=FaultKind.DELAY, delay=1.5))
        assert core.handle("POST", "/", *sign())[0] == 200
        assert slept == [1.5]
        sim_world.inject(Fault(kind=FaultKind.RESET))
        with pytest.raises(ConnectionResetError):
            core.handle("POST", "/", *sign())
