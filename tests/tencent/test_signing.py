"""Our TC3 signer against the official ``tencentcloud-sdk-python-common`` signer.

The SDK is the vendor's own reference implementation: if our Authorization header differs
from the one it builds for the same inputs, the vendor would answer AuthFailure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from freezegun import freeze_time
from tencentcloud.common.abstract_client import AbstractClient
from tencentcloud.common.credential import Credential as SdkCredential
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.sign import Sign
from tencentcloud.live.v20180801.live_client import LiveClient

from exporter.credentials import Credential, Secret
from exporter.tencent.signing import (
    JSON_CONTENT_TYPE,
    ParsedAuthorization,
    authorization_header,
    canonical_request,
    parse_authorization,
    sign,
    signing_date,
    tc3_headers,
)

SECRET_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
SECRET_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
TOKEN = "temporary-session-token-EXAMPLE"
HOST = "live.tencentcloudapi.com"
ACTION = "DescribeBackupStreamList"
VERSION = "2018-08-01"
# 2018-06-29T19:00:00Z: late evening UTC, already the next day in Beijing.
TIMESTAMP = 1530298800

REGIONS = ["ap-guangzhou", "ap-beijing", "ap-hongkong", "ap-bangkok", "ap-shanghai", "ap-tokyo"]
PARAMS = [
    pytest.param({}, id="list-all"),
    pytest.param({"StreamName": "stream1"}, id="ascii-name"),
    pytest.param({"StreamName": "直播-频道_01"}, id="chinese-name"),
    pytest.param({"StreamName": 'a"b\\c d'}, id="escapes"),
]


def _credential(token: str | None) -> Credential:
    return Credential(SECRET_ID, Secret(SECRET_KEY), Secret(token) if token is not None else None)


def _headers(**overrides: Any) -> dict[str, str]:
    """``tc3_headers`` of an empty DescribeBackupStreamList in ap-guangzhou, with ``overrides``."""
    args: dict[str, Any] = {
        "credential": _credential(None),
        "host": HOST,
        "service": "live",
        "action": ACTION,
        "version": VERSION,
        "region": "ap-guangzhou",
        "payload": b"{}",
        "timestamp": TIMESTAMP,
    }
    return tc3_headers(**(args | overrides))


def _sdk_client(region: str, token: str | None) -> LiveClient:
    profile = ClientProfile(signMethod="TC3-HMAC-SHA256", httpProfile=HttpProfile(endpoint=HOST))
    return LiveClient(SdkCredential(SECRET_ID, SECRET_KEY, token), region, profile)


def _sdk_request(region: str, params: dict[str, str], token: str | None, timestamp: int) -> RequestInternal:
    """Let the SDK build a signed POST exactly as it would before sending it."""
    request = RequestInternal(HOST, "POST", "/")
    with freeze_time(datetime.fromtimestamp(timestamp, UTC)):
        _sdk_client(region, token)._build_req_with_tc3_signature(ACTION, params, request)
    return request


class TestAgainstOfficialSdk:
    @pytest.mark.parametrize("region", REGIONS)
    @pytest.mark.parametrize("params", PARAMS)
    @pytest.mark.parametrize("token", [None, TOKEN], ids=["permanent", "temporary"])
    def test_headers_equal_sdk_for_sdk_payload(
        self, region: str, params: dict[str, str], token: str | None
    ) -> None:
        # Same inputs as the SDK uses: its payload bytes (json.dumps) and its content type.
        sdk = _sdk_request(region, params, token, TIMESTAMP)
        ours = tc3_headers(
            credential=_credential(token),
            host=HOST,
            service="live",
            action=ACTION,
            version=VERSION,
            region=region,
            payload=sdk.data.encode("utf-8"),
            timestamp=TIMESTAMP,
            content_type=sdk.header["Content-Type"],
        )
        assert ours["Authorization"] == sdk.header["Authorization"]
        for name in ("Content-Type", "Host", "X-TC-Action", "X-TC-Version", "X-TC-Region", "X-TC-Timestamp"):
            assert ours[name] == sdk.header[name], name
        assert ours.get("X-TC-Token") == sdk.header.get("X-TC-Token")

    @pytest.mark.parametrize("params", PARAMS)
    @pytest.mark.parametrize("timestamp", [TIMESTAMP, 1700000000, 1704067199, 1704067200])
    def test_signature_equals_sdk_for_our_wire_format(self, params: dict[str, str], timestamp: int) -> None:
        # What we actually send: compact raw-UTF-8 JSON and "application/json; charset=utf-8".
        payload = orjson.dumps(params)
        ours = _headers(payload=payload, timestamp=timestamp)
        request = RequestInternal(HOST, "POST", "/", header=dict(ours), data=payload)
        date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
        expected = AbstractClient._get_tc3_signature(
            _sdk_client("ap-guangzhou", None), params, request, date, "live", SECRET_KEY
        )
        assert ours["Authorization"] == (
            f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{date}/live/tc3_request, "
            f"SignedHeaders=content-type;host, Signature={expected}"
        )
        assert ours["Content-Type"] == JSON_CONTENT_TYPE

    def test_signature_primitive_equals_sdk(self) -> None:
        parts = sign(
            secret_key=SECRET_KEY,
            service="live",
            timestamp=TIMESTAMP,
            headers={"Content-Type": JSON_CONTENT_TYPE, "Host": HOST},
            payload=b"{}",
        )
        assert parts.signature == Sign.sign_tc3(SECRET_KEY, parts.date, "live", parts.string_to_sign)


class TestCanFail:
    """The comparison above is only worth something if a wrong input changes the result."""

    @pytest.mark.parametrize(
        "override",
        [
            pytest.param({"credential": Credential(SECRET_ID, Secret(SECRET_KEY + "x"))}, id="wrong-key"),
            pytest.param({"payload": b'{"StreamName":"stream1"}'}, id="other-payload"),
            pytest.param({"host": "live.ap-guangzhou.tencentcloudapi.com"}, id="other-host"),
            pytest.param({"timestamp": TIMESTAMP + 1}, id="other-second"),
            pytest.param({"service": "cvm"}, id="other-service"),
            pytest.param({"content_type": "application/json"}, id="other-content-type"),
        ],
    )
    def test_any_signed_input_changes_the_signature(self, override: dict[str, object]) -> None:
        assert _headers(**override)["Authorization"] != _headers()["Authorization"]

    def test_sdk_disagrees_on_a_wrong_key(self) -> None:
        sdk = _sdk_request("ap-guangzhou", {}, None, TIMESTAMP)
        ours = _headers(
            credential=Credential(SECRET_ID, Secret("not-the-key")),
            payload=sdk.data.encode(),
            content_type=sdk.header["Content-Type"],
        )
        assert ours["Authorization"] != sdk.header["Authorization"]

    def test_region_and_token_are_not_signed(self) -> None:
        # As in the SDK: only content-type and host are signed headers.
        base = _headers()["Authorization"]
        assert _headers(region="ap-hongkong")["Authorization"] == base
        assert _headers(credential=_credential(TOKEN))["Authorization"] == base


class TestPieces:
    @pytest.fixture
    def shanghai_tz(self) -> Iterator[None]:
        # The scope date must come from UTC, not the host's zone.
        mp = pytest.MonkeyPatch()
        mp.setenv("TZ", "Asia/Shanghai")
        time.tzset()
        try:
            yield
        finally:
            mp.undo()
            time.tzset()

    @pytest.mark.usefixtures("shanghai_tz")
    def test_scope_date_is_utc(self) -> None:
        assert signing_date(TIMESTAMP) == "2018-06-29"  # 2018-06-30 03:00 in Beijing
        assert signing_date(1704067199) == "2023-12-31"
        assert signing_date(1704067200) == "2024-01-01"
        headers = _headers(region="ap-beijing")
        assert "/2018-06-29/live/tc3_request," in headers["Authorization"]

    def test_canonical_request_layout(self) -> None:
        text = canonical_request(headers={"Content-Type": JSON_CONTENT_TYPE, "Host": HOST}, payload=b"{}")
        assert text == (
            "POST\n/\n\n"
            f"content-type:{JSON_CONTENT_TYPE}\nhost:{HOST}\n\n"
            "content-type;host\n"
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"  # sha256(b"{}")
        )

    def test_token_header_only_with_token(self) -> None:
        assert "X-TC-Token" not in _headers(region="ap-shanghai")
        with_token = _headers(region="ap-shanghai", credential=_credential(TOKEN))
        assert with_token["X-TC-Token"] == TOKEN
        assert with_token["X-TC-Action"] == ACTION and with_token["X-TC-Version"] == VERSION
        assert with_token["X-TC-Timestamp"] == str(TIMESTAMP)
        assert with_token["X-TC-Region"] == "ap-shanghai"


class TestVerifierSide:
    """What the simulator does with a request it received."""

    def test_recompute_from_received_headers(self) -> None:
        payload = orjson.dumps({"StreamName": "直播"})
        sent = _headers(credential=_credential(TOKEN), host="127.0.0.1:8080", payload=payload)
        received = {name.lower(): value for name, value in sent.items()}  # servers lowercase names
        auth = parse_authorization(received["authorization"])
        assert auth == ParsedAuthorization(
            secret_id=SECRET_ID,
            date="2018-06-29",
            service="live",
            signed_headers=("content-type", "host"),
            signature=auth.signature,
        )
        parts = sign(
            secret_key=SECRET_KEY,
            service=auth.service,
            timestamp=int(received["x-tc-timestamp"]),
            headers=received,
            payload=payload,
            signed_headers=auth.signed_headers,
        )
        assert parts.signature == auth.signature
        assert (
            authorization_header(secret_id=SECRET_ID, date=parts.date, service="live", sig=parts.signature)
            == (sent["Authorization"])
        )
        tampered = sign(
            secret_key=SECRET_KEY,
            service="live",
            timestamp=TIMESTAMP,
            headers=received,
            payload=orjson.dumps({"StreamName": "直播2"}),
        )
        assert tampered.signature != auth.signature

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "HMAC-SHA256 Credential=a/2018-06-29/live/tc3_request, SignedHeaders=host, Signature=ab",
            "TC3-HMAC-SHA256 Credential=a/2018-06-29/live/tc3_request, SignedHeaders=host",
            "TC3-HMAC-SHA256 Credential=a/2018-06-29/live, SignedHeaders=host, Signature=ab",
            "TC3-HMAC-SHA256 Credential=a/2018-06-29/live/tc3_request, SignedHeaders=host, Signature",
            "TC3-HMAC-SHA256 Credential=a/2018-06-29/live/tc3_request, SignedHeaders=, Signature=ab",
        ],
    )
    def test_parse_authorization_rejects_malformed(self, value: str) -> None:
        with pytest.raises(ValueError, match=r"^authorization: ") as info:
            parse_authorization(value)
        assert "Signature=ab" not in str(info.value)
