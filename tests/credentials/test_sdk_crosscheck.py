"""The official SDK's own credential classes against our simulator, and our client beside them.

``CVMRoleCredential``, ``STSAssumeRoleCredential`` and ``OIDCRoleArnCredential`` are pointed at
the simulator on loopback (their endpoint attributes patched, plain HTTP). What the SDK accepts,
our simulator serves; the credential each obtains is then used by the SDK's own LiveClient
against the simulator's Live API; and our provider, fed by the same simulator, must come out
with a credential the Live API accepts just the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tencentcloud.common import credential as sdk_credential
from tencentcloud.common.credential import Credential as SdkCredential
from tencentcloud.common.credential import (
    CVMRoleCredential,
    OIDCRoleArnCredential,
    STSAssumeRoleCredential,
)
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.live.v20180801 import live_client, models

from exporter.credentials import CredentialSettings, Secret, build_provider
from exporter.simulator import Account, Simulator, SimulatorServer, World

BASE = Account(secret_id="AKIDsdkCROSScheck0123456789abcdef", secret_key="sdk-cross-check-secret-0123456")


@pytest.fixture
def real_server() -> Iterator[SimulatorServer]:
    """The SDK reads time.time(): this simulator runs on the real clock."""
    world = World(accounts=[BASE], streams_per_region=2, seed=5)
    server = SimulatorServer(world, simulator=Simulator(world, seed=5)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _plain_http_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK builds its STS HttpProfile itself (https by default): make it speak plain HTTP."""

    class LoopbackProfile(HttpProfile):  # type: ignore[misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs.setdefault("protocol", "http")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(sdk_credential, "HttpProfile", LoopbackProfile)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def _sdk_lists_streams(server: SimulatorServer, cred: object) -> int:
    """The SDK's LiveClient with ``cred`` against the simulator: the number of groups listed."""
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=f"127.0.0.1:{server.port}", protocol="http"))
    client = live_client.LiveClient(cred, "ap-guangzhou", profile)
    reply = client.DescribeBackupStreamList(models.DescribeBackupStreamListRequest())
    return len(reply.StreamInfoList or [])


def _ours(run, settings: CredentialSettings, env: dict[str, str] | None = None):
    async def main(http):
        provider = build_provider(settings, account="x", env=env or {}, http=http, clock=time.time)
        await provider.start(background=False)  # type: ignore[call-arg]
        return provider.current(), provider.expiry

    return run(main)


def _as_sdk(credential) -> SdkCredential:
    token = credential.token.reveal() if credential.token else None
    return SdkCredential(credential.secret_id, credential.secret_key.reveal(), token)


def test_cvm_role(run, real_server: SimulatorServer) -> None:
    identity = real_server.simulator.identity
    identity.set_instance_role("sdk-role")
    metadata = real_server.url + "/latest/meta-data/"
    sdk = CVMRoleCredential()
    sdk._role_endpoint = metadata + "cam/security-credentials/"
    secret_id, secret_key, token = sdk.get_credential_info()
    issued = identity.instance_credential()
    assert issued is not None
    assert (secret_id, secret_key, token) == (
        issued.account.secret_id,
        issued.account.secret_key,
        issued.account.token,
    )
    assert sdk.role == "sdk-role"
    assert _sdk_lists_streams(real_server, sdk) > 0

    ours, expiry = _ours(run, CredentialSettings(source="cvm_role", metadata_endpoint=metadata))
    assert (ours.secret_id, ours.secret_key.reveal(), ours.token.reveal()) == (secret_id, secret_key, token)
    assert expiry == sdk._expired_ts
    assert _sdk_lists_streams(real_server, _as_sdk(ours)) > 0


def test_sts_assume_role(run, real_server: SimulatorServer) -> None:
    identity = real_server.simulator.identity
    arn = identity.add_role("sdk-assumed", principals=frozenset({BASE.secret_id}))
    endpoint = f"127.0.0.1:{real_server.port}"
    sdk = STSAssumeRoleCredential(
        BASE.secret_id, BASE.secret_key, arn, "sdk-session", 3600, endpoint=endpoint
    )
    secret_id, _, token = sdk.get_credential_info()
    assert identity.issued[-1].account.secret_id == secret_id and token
    assert _sdk_lists_streams(real_server, sdk) > 0  # the SDK signed AssumeRole (sts) the way we verify

    ours, expiry = _ours(
        run,
        CredentialSettings(
            secret_id=BASE.secret_id,
            secret_key=Secret(BASE.secret_key),
            role_arn=arn,
            role_duration=3600,
            sts_endpoint=real_server.url,
        ),
    )
    assert ours.secret_id == identity.issued[-1].account.secret_id != secret_id
    assert expiry is not None and abs(expiry - (time.time() + 3600)) < 5
    assert _sdk_lists_streams(real_server, _as_sdk(ours)) > 0


def test_oidc_role_arn(run, real_server: SimulatorServer, tmp_path: Path) -> None:
    identity = real_server.simulator.identity
    arn = identity.add_role("tke")
    identity.add_web_identity(arn, provider_id="cls-sdk", token="eyJ.sdk-oidc.token-0123456789")
    sdk = OIDCRoleArnCredential(
        "ap-guangzhou",
        "cls-sdk",
        "eyJ.sdk-oidc.token-0123456789",
        arn,
        "sdk-session",
        7200,
        endpoint=f"127.0.0.1:{real_server.port}",
    )
    secret_id, _, token = sdk.get_credential_info()
    assert identity.issued[-1].account.secret_id == secret_id and token
    assert _sdk_lists_streams(real_server, sdk) > 0

    token_file = tmp_path / "token"
    token_file.write_text("eyJ.sdk-oidc.token-0123456789")
    env = {
        "TKE_REGION": "ap-guangzhou",
        "TKE_PROVIDER_ID": "cls-sdk",
        "TKE_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "TKE_ROLE_ARN": arn,
    }
    ours, _ = _ours(run, CredentialSettings(source="tke_oidc", sts_endpoint=real_server.url), env)
    assert ours.secret_id == identity.issued[-1].account.secret_id
    assert _sdk_lists_streams(real_server, _as_sdk(ours)) > 0


def test_the_sdk_refuses_what_the_simulator_refuses(real_server: SimulatorServer) -> None:
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

    identity = real_server.simulator.identity
    arn = identity.add_role("locked", principals=frozenset({"AKIDnotYou"}))
    sdk = STSAssumeRoleCredential(
        BASE.secret_id, BASE.secret_key, arn, "s", 900, endpoint=f"127.0.0.1:{real_server.port}"
    )
    with pytest.raises(TencentCloudSDKException) as info:
        sdk.get_credential_info()
    assert info.value.get_code() == "UnauthorizedOperation"


def test_the_documented_sts_reply_shape_is_accepted() -> None:
    """The reply shape of the STS API reference (ExpiredTime, Expiration, Credentials, RequestId)."""
    import asyncio
    import json

    import httpx

    from exporter.credentials.remote import assume_role_with_web_identity

    reply = {
        "Response": {
            "ExpiredTime": 1543914376,
            "Expiration": "2018-12-04T09:06:16Z",
            "Credentials": {
                "Token": "documented-shape-token-0123456789",
                "TmpSecretId": "AKIDdocumentedShape0123",
                "TmpSecretKey": "documented-shape-key-0123",
            },
            "RequestId": "f6e7cbcb-add1-47bd-9097-d08cf8f3a919",
        }
    }
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=reply)

    async def main():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            return await assume_role_with_web_identity(
                http,
                endpoint="https://sts.tencentcloudapi.com",
                region="ap-guangzhou",
                provider_id="OIDC",
                web_identity_token=Secret("eyJ.web.identity"),
                role_arn="qcs::cam::uin/100000000001:roleName/r",
                session_name="s",
                duration=None,
                clock=lambda: 1543907176.0,
            )

    issued = asyncio.run(main())
    assert issued.expiry == 1543914376
    assert issued.credential.secret_id == "AKIDdocumentedShape0123"
    request = seen[0]
    assert request.headers["Authorization"] == "SKIP"
    assert request.headers["X-TC-Action"] == "AssumeRoleWithWebIdentity"
    assert request.headers["X-TC-Version"] == "2018-08-13"
    assert request.headers["Host"] == "sts.tencentcloudapi.com"
    assert json.loads(request.content) == {
        "ProviderId": "OIDC",
        "WebIdentityToken": "eyJ.web.identity",
        "RoleArn": "qcs::cam::uin/100000000001:roleName/r",
        "RoleSessionName": "s",
    }
