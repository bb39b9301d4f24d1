"""The vendor protocol through ``Simulator.handle``: checks, their order, and reply shapes."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from typing import Any

import orjson
import pytest

from exporter.credentials import Credential, Secret
from exporter.simulator import Account, Simulator, World


def _call(
    core: Simulator, headers: dict[str, str], body: bytes, method: str = "POST"
) -> tuple[int, dict[str, str], Any]:
    status, reply_headers, raw = core.handle(method, "/", headers, body)
    return (
        status,
        reply_headers,
        orjson.loads(raw) if reply_headers.get("Content-Type") == "application/json" else raw,
    )


def _error_code(core: Simulator, headers: dict[str, str], body: bytes) -> str:
    status, reply_headers, payload = _call(core, headers, body)
    assert status == 200
    assert reply_headers["Content-Type"] == "application/json"
    assert set(payload["Response"]) == {"Error", "RequestId"}
    uuid.UUID(payload["Response"]["RequestId"])
    return str(payload["Response"]["Error"]["Code"])


class TestSuccess:
    def test_reply_is_shaped_like_the_vendor_example(self, core, sign, sim_world):
        status, headers, payload = _call(core, *sign())
        assert status == 200
        # The official SDK only looks for Response.Error under exactly this content type.
        assert headers["Content-Type"] == "application/json"
        response = payload["Response"]
        assert set(response) == {"StreamInfoList", "RequestId"}
        assert uuid.UUID(response["RequestId"]).version == 4
        groups = response["StreamInfoList"]
        assert [g["StreamName"] for g in groups] == [s.name for s in sim_world.streams("ap-guangzhou")]
        for group in groups:
            assert set(group) == {"StreamName", "OptimalEnable", "HostGroupName", "BackupList"}
            assert isinstance(group["OptimalEnable"], int)
            assert isinstance(group["HostGroupName"], str)
            for backup in group["BackupList"]:
                assert set(backup) == {
                    "DomainName",
                    "AppName",
                    "PublishTime",
                    "UpstreamSequence",
                    "SourceFrom",
                    "MasterFlag",
                }
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", backup["PublishTime"])
                assert re.fullmatch(r"\d+", backup["UpstreamSequence"])
                assert backup["MasterFlag"] in (0, 1)
                assert backup["SourceFrom"] == "直推流" or re.fullmatch(
                    r"拉流转推\(\d+\)", backup["SourceFrom"]
                )

    def test_values_follow_the_world(self, core, sign, sim_world):
        stream = sim_world.add_stream("ap-hongkong", "news", publishers=2)
        _, _, payload = _call(core, *sign({"StreamName": "news"}, region="ap-hongkong"))
        (group,) = payload["Response"]["StreamInfoList"]
        assert group["StreamName"] == "news"
        assert [b["UpstreamSequence"] for b in group["BackupList"]] == [
            p.upstream_sequence for p in stream.publishers
        ]
        assert [b["MasterFlag"] for b in group["BackupList"]] == [1, 0]

    def test_stream_name_is_an_exact_match(self, core, sign, sim_world):
        sim_world.add_stream("ap-beijing", "match")
        sim_world.add_stream("ap-beijing", "match-not")
        _, _, payload = _call(core, *sign({"StreamName": "match"}, region="ap-beijing"))
        assert [g["StreamName"] for g in payload["Response"]["StreamInfoList"]] == ["match"]

    def test_stream_name_not_online_is_null(self, core, sign):
        _, _, payload = _call(core, *sign({"StreamName": "nobody"}))
        assert payload["Response"]["StreamInfoList"] is None

    def test_empty_region_is_null_not_empty_list(self, core, sign, sim_world):
        for stream in sim_world.streams("ap-bangkok"):
            sim_world.remove_stream("ap-bangkok", stream.name)
        _, _, payload = _call(core, *sign(region="ap-bangkok"))
        assert payload["Response"]["StreamInfoList"] is None

    def test_seoul_and_tokyo_are_served_even_when_unpopulated(self, core, sign):
        _, _, payload = _call(core, *sign(region="ap-tokyo"))
        assert payload["Response"]["StreamInfoList"] is None

    def test_request_ids_are_seeded(self, sim_world, sign, wall, mono):
        def ids(seed: int) -> list[str]:
            core = Simulator(sim_world, clock=wall, monotonic=mono, seed=seed, rate_limit=100)
            return [_call(core, *sign())[2]["Response"]["RequestId"] for _ in range(3)]

        assert ids(5) == ids(5)
        assert ids(5) != ids(6)
        assert len(set(ids(5))) == 3


class TestVendorChecks:
    @pytest.mark.parametrize(
        ("override", "code"),
        [
            ({"action": "DescribeLiveStreamOnlineList"}, "InvalidAction"),
            ({"version": "2017-03-12"}, "NoSuchVersion"),
            # A real region where the action is not offered vs. a string that is no region.
            ({"region": "ap-singapore"}, "UnsupportedRegion"),
            ({"region": "ap-mars"}, "InvalidParameterValue"),
        ],
    )
    def test_common_parameters(self, core, sign, override, code):
        assert _error_code(core, *sign(**override)) == code

    @pytest.mark.parametrize(
        ("header", "code"),
        [
            ("X-TC-Action", "MissingParameter"),
            ("X-TC-Version", "MissingParameter"),
            ("X-TC-Region", "MissingParameter"),
            ("X-TC-Timestamp", "MissingParameter"),
            ("Authorization", "AuthFailure.InvalidAuthorization"),
        ],
    )
    def test_missing_header(self, core, sign, header, code):
        headers, body = sign()
        del headers[header]
        assert _error_code(core, headers, body) == code

    @pytest.mark.parametrize(
        ("params", "code"),
        [
            ({"StreamName": 7}, "InvalidParameter"),
            ({"Offset": 0}, "UnknownParameter"),
            ([], "InvalidParameter"),
        ],
    )
    def test_parameters(self, core, sign, params, code):
        assert _error_code(core, *sign(params)) == code

    def test_body_that_is_no_json(self, core, sign):
        assert _error_code(core, *sign(raw=b"StreamName=x")) == "InvalidParameter"

    def test_null_stream_name_means_the_whole_list(self, core, sign, sim_world):
        _, _, payload = _call(core, *sign({"StreamName": None}))
        assert len(payload["Response"]["StreamInfoList"]) == len(sim_world.streams("ap-guangzhou"))

    def test_non_post_and_other_paths(self, core, sign):
        headers, body = sign()
        assert core.handle("GET", "/", headers, b"")[0] == 405
        assert core.handle("POST", "/v2", headers, body)[0] == 404


class TestAuthentication:
    def test_our_signer_is_accepted(self, core, sign):
        status, _, payload = _call(core, *sign())
        assert status == 200 and "Error" not in payload["Response"]

    def test_wrong_key(self, core, sign, sim_account):
        wrong = Credential(sim_account.secret_id, Secret("not-the-key"))
        assert _error_code(core, *sign(credential=wrong)) == "AuthFailure.SignatureFailure"

    def test_unknown_secret_id(self, core, sign):
        stranger = Credential("AKIDstranger", Secret("whatever"))
        assert _error_code(core, *sign(credential=stranger)) == "AuthFailure.SecretIdNotFound"

    def test_tampered_body(self, core, sign):
        headers, _ = sign()
        assert _error_code(core, headers, b'{"StreamName":"x"}') == "AuthFailure.SignatureFailure"

    def test_tampered_host(self, core, sign):
        headers, body = sign()
        headers["Host"] = "live.tencentcloudapi.com"
        assert _error_code(core, headers, body) == "AuthFailure.SignatureFailure"

    def test_tampered_signature(self, core, sign):
        headers, body = sign()
        auth = headers["Authorization"]
        flipped = "0" if auth[-1] != "0" else "1"
        headers["Authorization"] = auth[:-1] + flipped
        assert _error_code(core, headers, body) == "AuthFailure.SignatureFailure"

    @pytest.mark.parametrize("skew", [301, -301])
    def test_timestamp_more_than_300s_off_is_expired(self, core, sign, wall, skew):
        assert _error_code(core, *sign(timestamp=wall.now + skew)) == "AuthFailure.SignatureExpire"

    @pytest.mark.parametrize("skew", [300, -300])
    def test_timestamp_300s_off_is_still_valid(self, core, sign, wall, skew):
        _, _, payload = _call(core, *sign(timestamp=wall.now + skew))
        assert "Error" not in payload["Response"]

    def test_scope_date_must_be_the_utc_date_of_the_timestamp(self, core, sign):
        headers, body = sign()
        headers["Authorization"] = re.sub(r"/\d{4}-\d\d-\d\d/", "/2000-01-01/", headers["Authorization"])
        assert _error_code(core, headers, body) == "AuthFailure.SignatureFailure"

    @pytest.mark.parametrize(
        "authorization",
        [
            "HMAC-SHA1 Credential=x",
            "TC3-HMAC-SHA256 Credential=AKID/2023-11-14/live, SignedHeaders=content-type;host, Signature=ab",
            "TC3-HMAC-SHA256 Credential=AKID/2023-11-14/live/tc3_request, SignedHeaders=host, Signature=ab",
        ],
    )
    def test_malformed_authorization(self, core, sign, authorization):
        headers, body = sign()
        headers["Authorization"] = authorization
        assert _error_code(core, headers, body) == "AuthFailure.InvalidAuthorization"

    def test_temporary_credentials_need_their_token(self, wall, mono, sign):
        account = Account(secret_id="AKIDtemp", secret_key="temp-key", token="session-token")
        core = Simulator(World(accounts=[account]), clock=wall, monotonic=mono)
        good = Credential("AKIDtemp", Secret("temp-key"), Secret("session-token"))
        bad = Credential("AKIDtemp", Secret("temp-key"), Secret("other-token"))
        none = Credential("AKIDtemp", Secret("temp-key"))
        assert "Error" not in _call(core, *sign(credential=good))[2]["Response"]
        assert _error_code(core, *sign(credential=bad)) == "AuthFailure.TokenFailure"
        assert _error_code(core, *sign(credential=none)) == "AuthFailure.TokenFailure"

    def test_no_secret_in_any_error(self, core, sign, sim_account):
        wrong = Credential(sim_account.secret_id, Secret("not-the-key"))
        headers, body = sign(credential=wrong)
        _, _, raw = core.handle("POST", "/", headers, body)
        assert sim_account.secret_key.encode() not in raw
        assert b"not-the-key" not in raw
        assert headers["Authorization"].rsplit("=", 1)[1].encode() not in raw

    def test_unsigned_payload_is_verified_as_the_vendor_does(self, core, sim_credential, wall):
        """``X-TC-Content-SHA256: UNSIGNED-PAYLOAD``: the payload hash is over that literal.

        Signed here by hand from the vendor's page, since neither our signer nor the default
        SDK profile produces this variant.
        """
        ts = int(wall.now)
        date = time.strftime("%Y-%m-%d", time.gmtime(ts))
        canonical = "\n".join(
            (
                "POST",
                "/",
                "",
                "content-type:application/json\nhost:127.0.0.1\n",
                "content-type;host",
                hashlib.sha256(b"UNSIGNED-PAYLOAD").hexdigest(),
            )
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        scope = f"{date}/live/tc3_request"
        to_sign = f"TC3-HMAC-SHA256\n{ts}\n{scope}\n{digest}"

        def mac(key: bytes, msg: str) -> bytes:
            return hmac.new(key, msg.encode(), hashlib.sha256).digest()

        key = mac(
            mac(mac(("TC3" + sim_credential.secret_key.reveal()).encode(), date), "live"), "tc3_request"
        )
        sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "Host": "127.0.0.1",
            "X-TC-Action": "DescribeBackupStreamList",
            "X-TC-Version": "2018-08-01",
            "X-TC-Region": "ap-guangzhou",
            "X-TC-Timestamp": str(ts),
            "X-TC-Content-SHA256": "UNSIGNED-PAYLOAD",
            "Authorization": f"TC3-HMAC-SHA256 Credential={sim_credential.secret_id}/{scope}, "
            f"SignedHeaders=content-type;host, Signature={sig}",
        }
        assert "Error" not in _call(core, headers, b'{"StreamName":"any"}')[2]["Response"]
        del headers["X-TC-Content-SHA256"]
        assert _error_code(core, headers, b"{}") == "AuthFailure.SignatureFailure"


class TestRequestLog:
    def test_every_vendor_request_is_logged_with_its_outcome(self, core, sign, mono, sim_account):
        _call(core, *sign({"StreamName": "a"}, region="ap-beijing"))
        mono.advance(0.25)
        _call(core, *sign(region="ap-mars"))
        core.handle("GET", "/_sim/state", {}, b"")  # control traffic is not vendor traffic
        records = core.request_log.records()
        assert [(r.arrival, r.secret_id, r.region, r.stream_name, r.code) for r in records] == [
            (1000.0, sim_account.secret_id, "ap-beijing", "a", "OK"),
            (1000.25, sim_account.secret_id, None, None, "InvalidParameterValue"),
        ]
