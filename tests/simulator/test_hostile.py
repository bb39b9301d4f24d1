"""The unkind vendor: every named fault, through the protocol core, as a client would see it.

Requests are signed by our real signer (the ``sign`` fixture) and answered by the core on
fake clocks; each test reads the reply as JSON and checks what the fault promised to do to it,
and that the reply is otherwise the normal one.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from exporter.credentials import Credential, Secret
from exporter.simulator import Account, Fault, FaultKind, Simulator, World
from exporter.simulator.__main__ import build_parser
from exporter.simulator.__main__ import main as simulator_main
from exporter.simulator.catalogue import PRESETS, TRANSIENT_CODES
from exporter.simulator.errors import ACTION_CODES, DOCUMENTED_CODES

REGION = "ap-guangzhou"
TOKEN = "session-token-0123456789abcdef"
TEMP_ID = "AKIDtemporaryKEYabcdefghijklmnop5678"
TEMP_KEY = "temporary-secret-key-0123456789"


@pytest.fixture
def world(sim_account: Account) -> World:
    temporary = Account(secret_id=TEMP_ID, secret_key=TEMP_KEY, token=TOKEN)
    return World(accounts=[sim_account, temporary], regions=[REGION], streams_per_region=5, seed=3)


@pytest.fixture
def call(world: World, sign, wall, mono):
    """One signed request through the core; returns (status, decoded body or None, raw body)."""
    core = Simulator(world, clock=wall, monotonic=mono, seed=1)
    temporary = Credential(TEMP_ID, Secret(TEMP_KEY), Secret(TOKEN))

    def _call(params: object = None, *, temp: bool = False) -> tuple[int, Any, bytes]:
        mono.advance(1.0)  # never throttled
        headers, body = sign(params, region=REGION, credential=temporary if temp else None)
        status, _, raw = core.handle("POST", "/", headers, body)
        try:
            return status, orjson.loads(raw), raw
        except orjson.JSONDecodeError:
            return status, None, raw

    _call.core = core  # type: ignore[attr-defined]
    return _call


def _groups(payload: Any) -> list[dict[str, Any]]:
    groups = payload["Response"]["StreamInfoList"]
    assert isinstance(groups, list)
    return groups


def _inject(world: World, name: str, **overrides: Any) -> None:
    world.inject(Fault.from_dict({"preset": name, **overrides}, PRESETS))


# name -> (what to read from the first group, the value it must have)
ODD_RECORDS = {
    "null-optimal-enable": (lambda g: g["OptimalEnable"], None),
    "null-host-group": (lambda g: g["HostGroupName"], None),
    "null-stream-name": (lambda g: g["StreamName"], None),
    "empty-stream-name": (lambda g: g["StreamName"], ""),
    "null-backup-list": (lambda g: g["BackupList"], None),
    "null-upstream-sequence": (lambda g: g["BackupList"][0]["UpstreamSequence"], None),
    "empty-upstream-sequence": (lambda g: g["BackupList"][0]["UpstreamSequence"], ""),
    "null-publish-time": (lambda g: {p["PublishTime"] for p in g["BackupList"]}, {None}),
    "null-master-flag": (lambda g: g["BackupList"][0]["MasterFlag"], None),
    "master-flag-2": (lambda g: g["BackupList"][0]["MasterFlag"], 2),
    "publish-time-millis": (lambda g: g["BackupList"][0]["PublishTime"], "2026-01-05T08:00:00.250Z"),
    "publish-time-offset": (lambda g: g["BackupList"][0]["PublishTime"], "2026-01-05T16:00:00+08:00"),
    "publish-time-beijing": (lambda g: g["BackupList"][0]["PublishTime"], "2026-01-05 16:00:00"),
    "publish-time-garbage": (lambda g: g["BackupList"][0]["PublishTime"], "yesterday"),
}


class TestOddRecords:
    @pytest.mark.parametrize("name", sorted(ODD_RECORDS))
    def test_first_group_only_then_normal_again(self, world, call, name):
        _, normal, _ = call()
        _inject(world, name)
        status, payload, _ = call()
        read, expected = ODD_RECORDS[name]
        assert status == 200
        edited = _groups(payload)
        assert read(edited[0]) == expected
        assert read(_groups(normal)[0]) != expected
        assert edited[1:] == _groups(normal)[1:]  # one odd record, the rest untouched
        assert _groups(call()[1]) == _groups(normal)  # one-shot

    def test_all_groups_and_a_named_one(self, world, call):
        world.inject(Fault(kind=FaultKind.EDIT, field="OptimalEnable", value=None, groups=0))
        assert {g["OptimalEnable"] for g in _groups(call()[1])} == {None}
        target = world.streams(REGION)[3].name
        world.inject(Fault(kind=FaultKind.EDIT, field="HostGroupName", value=None, stream=target))
        edited = {g["StreamName"]: g["HostGroupName"] for g in _groups(call()[1])}
        assert edited.pop(target) is None
        assert None not in edited.values()

    def test_edits_compose_and_apply_to_by_name_replies(self, world, call):
        name = world.streams(REGION)[0].name
        _inject(world, "null-optimal-enable")
        _inject(world, "master-flag-2")
        (group,) = _groups(call({"StreamName": name})[1])
        assert group["StreamName"] == name
        assert group["OptimalEnable"] is None
        assert group["BackupList"][0]["MasterFlag"] == 2


class TestDuplicateNames:
    def test_twin_with_other_sequences_and_order_flipping_per_reply(self, world, call):
        _inject(world, "duplicate-stream-name", times=0)
        replies = [_groups(call()[1]) for _ in range(3)]
        first, second, third = ([g["StreamName"] for g in r] for r in replies)
        name = first[0]
        assert first.count(name) == 2 and len(first) == len(world.streams(REGION)) + 1
        original, twin = replies[0][0], replies[0][1]
        assert twin["BackupList"] != original["BackupList"]
        assert {p["UpstreamSequence"] for p in twin["BackupList"]}.isdisjoint(
            p["UpstreamSequence"] for p in original["BackupList"]
        )
        assert replies[1][:2] == [twin, original]  # same two groups, the other order
        assert replies[2][:2] == [original, twin]
        assert first == second == third  # names alone never tell the replies apart


class TestHostileStrings:
    def test_long_code(self, world, call):
        _inject(world, "long-code")
        error = call()[1]["Response"]["Error"]
        assert error["Code"].startswith("InternalError.") and len(error["Code"]) > 65536
        assert len(error["Message"]) == 65536

    def test_random_codes_differ_per_reply_and_repeat_per_seed(self, world, sim_account, sign, wall, mono):
        def codes() -> list[str]:
            fresh = World(accounts=[sim_account], regions=[REGION], streams_per_region=1, seed=3)
            fresh.inject(Fault.from_dict({"preset": "random-unknown-code", "times": 0}, PRESETS))
            core = Simulator(fresh, clock=wall, monotonic=mono, seed=9)
            out = []
            for _ in range(3):
                mono.advance(1)
                out.append(orjson.loads(core.handle("POST", "/", *sign())[2])["Response"]["Error"]["Code"])
            return out

        first = codes()
        assert len(set(first)) == 3
        assert codes() == first

    def test_reflected_token_lands_in_code_message_and_request_id(self, world, call):
        _inject(world, "reflect-token", times=2)
        response = call(temp=True)[1]["Response"]
        assert response["Error"]["Code"] == TOKEN
        assert TOKEN in response["Error"]["Message"]
        assert response["RequestId"] == TOKEN
        # Without a token the placeholder is empty, not an error of the simulator.
        assert call()[1]["Response"]["Error"]["Code"] == ""
        log = call.core.request_log.records()
        assert all(TOKEN not in r.code for r in log)  # the log keeps the template

    def test_reflected_secret_id(self, world, call, sim_account):
        _inject(world, "reflect-secret-id")
        response = call()[1]["Response"]
        assert response["Error"]["Code"] == f"AuthFailure.{sim_account.secret_id}"
        assert response["RequestId"] == sim_account.secret_id
        assert "Signature=" in response["Error"]["Message"]

    def test_reflected_into_stream_name(self, world, call):
        _inject(world, "reflect-stream-name")
        assert _groups(call(temp=True)[1])[0]["StreamName"] == TOKEN + TEMP_ID

    def test_long_stream_name_and_huge_request_id(self, world, call):
        _inject(world, "long-stream-name")
        _inject(world, "huge-request-id")
        status, payload, raw = call()
        assert status == 200 and len(raw) > 10_000_000
        assert len(_groups(payload)[0]["StreamName"]) == 5_000_000
        assert len(payload["Response"]["RequestId"]) == 5_000_000

    def test_huge_body_is_valid_json(self, world, call):
        _inject(world, "huge-body")
        _, payload, raw = call()
        assert len(raw) > 100_000_000
        assert _groups(payload)  # still a normal list


class TestErrorCodes:
    @pytest.mark.parametrize("code", sorted(DOCUMENTED_CODES))
    def test_every_documented_code(self, world, call, code):
        _inject(world, f"error:{code}")
        status, payload, _ = call()
        assert status == 200
        assert payload["Response"]["Error"] == {"Code": code, "Message": DOCUMENTED_CODES[code]}
        assert payload["Response"]["RequestId"]

    def test_catalogue_covers_the_spec_codes_and_transient_ones(self):
        spec = {
            "FailedOperation.CallOtherSvrFailed",
            "InternalError.NotPermmitOperat",
            "ResourceNotFound.UserNotExist",
            "ServiceUnavailable",
            "ResourceUnavailable",
            "ResourceInsufficient",
            "LimitExceeded",
            "ResponseSizeLimitExceeded",
            "UnsupportedRegion",
            "IpNotInWhitelist",
            "IpInBlacklist",
        }
        assert spec <= set(DOCUMENTED_CODES)
        assert set(TRANSIENT_CODES) <= set(DOCUMENTED_CODES)
        assert len(ACTION_CODES) == 18

    @pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
    def test_http_statuses(self, world, call, status):
        _inject(world, f"http-{status}")
        got, payload, raw = call()
        assert got == status and payload is None and b"<html>" in raw


class TestScopeAndListLimit:
    def test_scope_name_hits_only_by_name_requests(self, world, call):
        world.inject(Fault(kind=FaultKind.ERROR, code="InternalError", scope="name", times=0))
        assert _groups(call()[1])
        name = world.streams(REGION)[0].name
        assert call({"StreamName": name})[1]["Response"]["Error"]["Code"] == "InternalError"

    def test_list_limit_cuts_full_lists_not_by_name_queries(self, world, call):
        for _ in range(5):
            world.add_stream(REGION)
        newest = world.streams(REGION)[-1].name
        world.set_list_limit(7)
        names = [g["StreamName"] for g in _groups(call()[1])]
        assert names == [s.name for s in world.streams(REGION)][:7]  # the newest are left out
        assert [g["StreamName"] for g in _groups(call({"StreamName": newest})[1])] == [newest]

    def test_vendor_ceiling_is_20000_groups(self, sim_account, sign, wall, mono):
        world = World(accounts=[sim_account], regions=[REGION], streams_per_region=20_001, seed=1)
        core = Simulator(world, clock=wall, monotonic=mono)
        payload = orjson.loads(core.handle("POST", "/", *sign(region=REGION))[2])
        assert len(payload["Response"]["StreamInfoList"]) == 20_000

    def test_null_list_and_truncation_compose(self, world, call):
        world.inject(Fault(kind=FaultKind.NULL_LIST))
        world.inject(Fault(kind=FaultKind.TRUNCATED))
        _, payload, raw = call()
        assert payload is None and raw.startswith(b'{"Response":')


class TestReplay:
    def test_cli_names_every_and_json(self):
        parse = build_parser().parse_args
        (fault,) = parse(["--fault", "error:ServiceUnavailable/5"]).fault
        assert (fault.code, fault.every, fault.times) == ("ServiceUnavailable", 5, 0)
        (fault,) = parse(["--fault", '{"kind": "edit", "field": "OptimalEnable", "groups": 0}']).fault
        assert (fault.kind, fault.groups, fault.times) == (FaultKind.EDIT, 0, 0)

    @pytest.mark.parametrize("bad", ["no-such-fault", "reset/zero", '{"kind": "edit"}', "[1]"])
    def test_cli_refuses_bad_faults(self, bad, capsys):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--fault", bad])
        assert "--fault" in capsys.readouterr().err

    def test_list_faults_names_every_preset(self, capsys):
        assert simulator_main(["--list-faults"], env={}) == 0
        listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
        assert listed == list(PRESETS)

    def test_control_api_takes_presets(self, simulator):
        def post(args: dict[str, Any]) -> httpx.Response:
            return httpx.post(f"{simulator.url}/_sim/fault", content=orjson.dumps(args))

        assert post({"preset": "master-flag-2", "times": 2, "region": REGION}).status_code == 200
        (pending,) = simulator.world.faults.pending()
        assert pending == (Fault(**(PRESETS["master-flag-2"].to_dict() | {"times": 2, "region": REGION})), 2)
        assert "no-such" in post({"preset": "no-such"}).json()["error"]
        listed = httpx.get(f"{simulator.url}/_sim/faults").json()
        assert set(listed["presets"]) == set(PRESETS)
        assert listed["pending"][0]["remaining"] == 2
