"""The vendor's official Python SDK against a SimulatorServer on loopback.

If the SDK, which the vendor keeps in step with its real API, parses our replies into its
models (with warnings as errors: it warns on any unexpected field) and maps our errors to
the same codes, the simulator speaks the protocol.
"""

from __future__ import annotations

import pytest
from tencentcloud.common.credential import Credential as SdkCredential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.live.v20180801 import live_client, models

from exporter.simulator import Account, Simulator, SimulatorServer, World


def _client(server: SimulatorServer, secret_id: str, key: str, region: str, token: str | None = None):
    # endpoint is host:port without scheme; protocol "http" makes the SDK skip TLS. The
    # SDK signs Host = endpoint, which is exactly what it sends.
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=f"127.0.0.1:{server.port}", protocol="http"))
    return live_client.LiveClient(SdkCredential(secret_id, key, token), region, profile)


def _list(client, stream_name: str | None = None):
    request = models.DescribeBackupStreamListRequest()
    if stream_name is not None:
        request.StreamName = stream_name
    return client.DescribeBackupStreamList(request)


def test_full_list_parses_into_the_sdk_model(simulator, sim_account):
    world = simulator.world
    world.add_stream("ap-shanghai", "sdk-stream", publishers=3, host_group="hg", optimal_enable=1)
    world.handover("ap-shanghai", "sdk-stream")
    client = _client(simulator, sim_account.secret_id, sim_account.secret_key, "ap-shanghai")
    reply = _list(client)
    expected = {s.name: s for s in world.streams("ap-shanghai")}
    assert [g.StreamName for g in reply.StreamInfoList] == list(expected)
    group = next(g for g in reply.StreamInfoList if g.StreamName == "sdk-stream")
    stream = expected["sdk-stream"]
    assert (group.HostGroupName, group.OptimalEnable) == ("hg", 1)
    assert [
        (b.UpstreamSequence, b.MasterFlag, b.DomainName, b.AppName, b.SourceFrom) for b in group.BackupList
    ] == [(p.upstream_sequence, int(p.master), p.domain, p.app, p.source_from) for p in stream.publishers]
    assert [b.MasterFlag for b in group.BackupList] == [0, 1, 0]
    assert all(b.PublishTime.endswith("Z") for b in group.BackupList)
    assert reply.RequestId


def test_stream_name_filter(simulator, sim_account):
    simulator.world.add_stream("ap-beijing", "only-me")
    client = _client(simulator, sim_account.secret_id, sim_account.secret_key, "ap-beijing")
    assert [g.StreamName for g in _list(client, "only-me").StreamInfoList] == ["only-me"]
    assert _list(client, "not-online").StreamInfoList is None


def test_no_streams_is_none(simulator, sim_account):
    client = _client(simulator, sim_account.secret_id, sim_account.secret_key, "ap-seoul")
    assert _list(client).StreamInfoList is None


@pytest.mark.parametrize(
    ("secret_id", "key", "region", "code"),
    [
        (None, "wrong-key", "ap-guangzhou", "AuthFailure.SignatureFailure"),
        ("AKIDnobody", "whatever", "ap-guangzhou", "AuthFailure.SecretIdNotFound"),
        (None, None, "ap-singapore", "UnsupportedRegion"),
    ],
)
def test_errors_reach_the_sdk_as_its_exception(simulator, sim_account, secret_id, key, region, code):
    client = _client(simulator, secret_id or sim_account.secret_id, key or sim_account.secret_key, region)
    with pytest.raises(TencentCloudSDKException) as info:
        _list(client)
    assert info.value.get_code() == code
    assert info.value.get_request_id()
    assert sim_account.secret_key not in str(info.value)


def test_temporary_credentials_with_token():
    account = Account(secret_id="AKIDtmp", secret_key="tmp-key", token="tmp-token")
    world = World(accounts=[account], streams_per_region=1, seed=3)
    with SimulatorServer(world) as server:
        ok = _client(server, "AKIDtmp", "tmp-key", "ap-guangzhou", token="tmp-token")
        assert len(_list(ok).StreamInfoList) == 1
        with pytest.raises(TencentCloudSDKException) as info:
            _list(_client(server, "AKIDtmp", "tmp-key", "ap-guangzhou", token="stale-token"))
        assert info.value.get_code() == "AuthFailure.TokenFailure"


def test_burst_over_20_per_second_is_throttled_across_regions(sim_world, sim_account):
    # Arrivals all at one monotonic instant: the burst is "within a second" by construction,
    # however slow the machine running the test.
    simulator = Simulator(sim_world, monotonic=lambda: 500.0)
    with SimulatorServer(sim_world, simulator=simulator) as server:
        clients = [
            _client(server, sim_account.secret_id, sim_account.secret_key, region)
            for region in ("ap-guangzhou", "ap-beijing")
        ]
        codes = []
        for i in range(23):
            try:
                _list(clients[i % 2])
                codes.append("OK")
            except TencentCloudSDKException as exc:
                codes.append(exc.get_code())
        assert codes == ["OK"] * 20 + ["RequestLimitExceeded"] * 3
        assert [r.code for r in server.request_log.records()][-3:] == ["RequestLimitExceeded"] * 3
