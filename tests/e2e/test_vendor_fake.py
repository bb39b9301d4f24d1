"""The fake itself must be right before it can judge the exporter.

Its signature check is pinned to the vendor's published worked example and to the official
SDK (which signs ``x-tc-action`` too, so the lower-cased-value rule is exercised); its window
counting, rate limit and script stepping are checked directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from tencentcloud.common.credential import Credential as SdkCredential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.live.v20180801 import live_client, models

from .vendor_fake import Fault, Group, Listing, Pub, VendorFake, expected_signature, max_in_window

SID, KEY = "AKIDfakeVendorTest0001", "fake-vendor-secret-key-0001"


@pytest.fixture
def fake() -> Iterator[VendorFake]:
    with VendorFake({SID: KEY}) as server:
        yield server


def _sdk(fake: VendorFake, region: str, *, sid: str = SID, key: str = KEY) -> live_client.LiveClient:
    port = fake.url.rsplit(":", 1)[1]
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=f"127.0.0.1:{port}", protocol="http"))
    return live_client.LiveClient(SdkCredential(sid, key), region, profile)


def _call(client: live_client.LiveClient, name: str | None = None) -> models.DescribeBackupStreamListResponse:
    request = models.DescribeBackupStreamListRequest()
    if name is not None:
        request.StreamName = name
    return client.DescribeBackupStreamList(request)


def test_signature_matches_the_vendor_worked_example() -> None:
    # The example of the vendor's "Signature v3" page (CVM DescribeInstances, 2019-02-25).
    payload = '{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    assert hashlib.sha256(payload.encode()).hexdigest() == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    signature = expected_signature(
        secret_key="Gu5t9xGARNpq86cd98joQYCN3*******",
        timestamp=1551113065,
        service="cvm",
        headers={"Content-Type": "application/json; charset=utf-8", "Host": "cvm.tencentcloudapi.com"},
        signed_headers=["content-type", "host"],
        payload=payload.encode(),
    )
    assert signature == "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"


def test_official_sdk_is_accepted_and_parses_the_reply(fake: VendorFake) -> None:
    group = Group("s1", (Pub("111", master=True), Pub("222")), host_group="hg", optimal_enable=0)
    fake.script("ap-guangzhou", [Listing.of(group)])
    reply = _call(_sdk(fake, "ap-guangzhou"))
    assert [g.StreamName for g in reply.StreamInfoList] == ["s1"]
    assert [(b.UpstreamSequence, b.MasterFlag) for b in reply.StreamInfoList[0].BackupList] == [
        ("111", 1),
        ("222", 0),
    ]
    assert fake.codes() == {"OK": 1}
    assert _call(_sdk(fake, "ap-guangzhou"), "nope").StreamInfoList == []


@pytest.mark.parametrize(
    ("sid", "key", "region", "code"),
    [
        (SID, "wrong-key", "ap-guangzhou", "AuthFailure.SignatureFailure"),
        ("AKIDnobody", KEY, "ap-guangzhou", "AuthFailure.SecretIdNotFound"),
        (SID, KEY, "ap-mars", "UnsupportedRegion"),
    ],
)
def test_rejections(fake: VendorFake, sid: str, key: str, region: str, code: str) -> None:
    with pytest.raises(TencentCloudSDKException) as info:
        _call(_sdk(fake, region, sid=sid, key=key))
    assert info.value.get_code() == code


def test_rate_limit_is_a_sliding_window_per_secret_id(fake: VendorFake) -> None:
    client = _sdk(fake, "ap-beijing")
    for _ in range(20):
        _call(client)
    if fake.max_window(SID) == 20:  # all twenty inside one second: the 21st must bounce
        with pytest.raises(TencentCloudSDKException) as info:
            _call(client)
        assert info.value.get_code() == "RequestLimitExceeded"


def test_max_in_window() -> None:
    assert max_in_window([]) == 0
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.5]) == 3
    assert max_in_window([0.0, 1.0, 2.0]) == 1


def test_script_modes(fake: VendorFake) -> None:
    one = Listing.of(Group("a", (Pub("1", master=True),)))
    fake.script("ap-hongkong", [one, Fault("InternalError"), Listing(None)], mode="request")
    client = _sdk(fake, "ap-hongkong")
    assert [g.StreamName for g in _call(client).StreamInfoList] == ["a"]
    with pytest.raises(TencentCloudSDKException) as info:
        _call(client)
    assert info.value.get_code() == "InternalError"
    assert _call(client).StreamInfoList is None
    assert _call(client).StreamInfoList is None  # the last step repeats
    assert fake.served("ap-hongkong", 2) == 2

    fake.script("ap-shanghai", [one, Listing(())])  # manual: served until advanced
    shanghai = _sdk(fake, "ap-shanghai")
    assert len(_call(shanghai).StreamInfoList) == 1
    assert len(_call(shanghai).StreamInfoList) == 1
    fake.goto("ap-shanghai", 1)
    assert _call(shanghai).StreamInfoList == []
