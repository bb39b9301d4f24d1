"""Each credential source against the simulator over loopback HTTP, through build_provider."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.credentials import (
    Credential,
    CredentialError,
    CredentialSettings,
    Secret,
    build_provider,
)
from exporter.redaction import SECRETS
from exporter.simulator.sts import role_arn
from exporter.tencent.signing import tc3_headers

ENV_KEYS = {"TENCENTCLOUD_SECRET_ID": "AKIDfromENV0123", "TENCENTCLOUD_SECRET_KEY": "env-key-0123456789"}


def _provider(settings, http, clock, env=None, on_refresh=None):
    return build_provider(
        settings, account="acct", env=env or {}, http=http, clock=clock, on_refresh=on_refresh
    )


async def _live_call(http: httpx.AsyncClient, url: str, credential: Credential, clock) -> Any:
    """One DescribeBackupStreamList signed with ``credential``: does the Live API accept it?"""
    host = url.removeprefix("http://")
    headers = tc3_headers(
        credential=credential,
        host=host,
        service="live",
        action="DescribeBackupStreamList",
        version="2018-08-01",
        region="ap-guangzhou",
        payload=b"{}",
        timestamp=int(clock()),
    )
    reply = await http.post(url + "/", content=b"{}", headers=headers)
    return reply.json()["Response"]


class TestCvmRole:
    def test_role_credential_is_fetched_and_accepted_by_the_live_api(
        self, run, server, identity, metadata_url, clock
    ) -> None:
        identity.set_instance_role("live-reader")
        refreshes: list[tuple[str, str, float | None]] = []

        async def main(http):
            settings = CredentialSettings(source="cvm_role", metadata_endpoint=metadata_url)
            provider = _provider(settings, http, clock, on_refresh=lambda *a: refreshes.append(a))
            await provider.start()
            try:
                credential = provider.current()
                return credential, provider.expiry, await _live_call(http, server.url, credential, clock)
            finally:
                await provider.stop()

        credential, expiry, response = run(main)
        issued = identity.issued[-1]
        assert credential.secret_id == issued.account.secret_id
        assert credential.token is not None and credential.token.reveal() == issued.account.token
        assert expiry == issued.expires_at
        assert "Error" not in response
        assert refreshes == [("acct", "ok", issued.expires_at)]
        assert SECRETS.contains(issued.account.token)  # text scrubbing knows it

    def test_no_role_bound_is_a_clear_error(self, run, metadata_url, clock) -> None:
        async def main(http):
            settings = CredentialSettings(source="cvm_role", metadata_endpoint=metadata_url)
            await _provider(settings, http, clock).start()

        with pytest.raises(CredentialError) as info:
            run(main)
        assert str(info.value) == (
            f'account "acct": credential source cvm_role: metadata service {metadata_url}: '
            "no CAM role is bound to this instance"
        )

    def test_unreachable_metadata_names_account_and_source(self, run, dead_url, clock) -> None:
        async def main(http):
            settings = CredentialSettings(source="cvm_role", metadata_endpoint=dead_url)
            await _provider(settings, http, clock).start()

        with pytest.raises(CredentialError) as info:
            run(main)
        message = str(info.value)
        assert message.startswith(f'account "acct": credential source cvm_role: metadata service {dead_url}')
        assert "unreachable" in message and "Traceback" not in message
        assert info.value.__cause__ is None and info.value.__suppress_context__

    def test_expired_credential_is_refused_by_the_live_api(self, run, server, identity, clock) -> None:
        issued = identity.issue(role_arn("x"), 900)
        credential = Credential(
            issued.account.secret_id, Secret(issued.account.secret_key), Secret(issued.account.token or "")
        )

        async def main(http):
            ok = await _live_call(http, server.url, credential, clock)
            clock.advance(901)
            return ok, await _live_call(http, server.url, credential, clock)

        before, after = run(main)
        assert "Error" not in before
        assert after["Error"]["Code"] == "AuthFailure.TokenFailure"


class TestRoleArn:
    def test_assume_role_signed_with_static_keys(self, run, server, identity, base_account, clock) -> None:
        arn = identity.add_role("live-exporter", principals=frozenset({base_account.secret_id}))

        async def main(http):
            settings = CredentialSettings(
                source="static",
                secret_id=base_account.secret_id,
                secret_key=Secret(base_account.secret_key),
                role_arn=arn,
                role_session_name="test-session",
                role_duration=1800,
                sts_endpoint=server.url,
            )
            provider = _provider(settings, http, clock)
            await provider.start()
            credential = provider.current()
            await provider.stop()
            return credential, provider.expiry, await _live_call(http, server.url, credential, clock)

        credential, expiry, response = run(main)
        issued = identity.issued[-1]
        assert credential.secret_id == issued.account.secret_id != base_account.secret_id
        assert expiry == clock() + 1800 == issued.expires_at
        assert "Error" not in response

    def test_assume_role_on_top_of_the_cvm_role(self, run, server, identity, metadata_url, clock) -> None:
        identity.set_instance_role("instance")
        arn = identity.add_role("target")

        async def main(http):
            settings = CredentialSettings(
                source="cvm_role", metadata_endpoint=metadata_url, role_arn=arn, sts_endpoint=server.url
            )
            provider = _provider(settings, http, clock)
            await provider.start()
            return provider.current()

        credential = run(main)
        roles = [i.role for i in identity.issued]
        assert roles == [role_arn("instance"), arn]  # the instance credential signed the AssumeRole
        assert credential.secret_id == identity.issued[-1].account.secret_id

    def test_refusal_carries_the_sts_code(self, run, server, identity, base_account, clock) -> None:
        arn = identity.add_role("locked", principals=frozenset({"AKIDsomeoneElse"}))

        async def main(http):
            settings = CredentialSettings(
                secret_id=base_account.secret_id,
                secret_key=Secret(base_account.secret_key),
                role_arn=arn,
                sts_endpoint=server.url,
            )
            await _provider(settings, http, clock).start()

        with pytest.raises(CredentialError) as info:
            run(main)
        assert 'account "acct": credential source static+role_arn: STS AssumeRole' in str(info.value)
        assert "UnauthorizedOperation" in str(info.value)
        assert base_account.secret_key not in str(info.value)


class TestTkeOidc:
    @pytest.fixture
    def tke_env(self, tmp_path: Path, identity) -> dict[str, str]:
        arn = identity.add_role("tke-pod")
        identity.add_web_identity(arn, provider_id="cls-abc123", token="eyJ.oidc-token.sig-0123456789")
        token_file = tmp_path / "token"
        token_file.write_text("eyJ.oidc-token.sig-0123456789\n")
        return {
            "TKE_REGION": "ap-guangzhou",
            "TKE_PROVIDER_ID": "cls-abc123",
            "TKE_WEB_IDENTITY_TOKEN_FILE": str(token_file),
            "TKE_ROLE_ARN": arn,
        }

    def test_web_identity_credential_is_accepted_by_the_live_api(
        self, run, server, identity, clock, tke_env
    ) -> None:
        async def main(http):
            settings = CredentialSettings(source="tke_oidc", sts_endpoint=server.url)
            provider = _provider(settings, http, clock, env=tke_env)
            await provider.start()
            credential = provider.current()
            return credential, await _live_call(http, server.url, credential, clock)

        credential, response = run(main)
        assert credential.secret_id == identity.issued[-1].account.secret_id
        assert "Error" not in response
        assert SECRETS.contains("eyJ.oidc-token.sig-0123456789")  # the web identity token is a secret

    def test_wrong_token_is_refused(self, run, server, clock, tke_env) -> None:
        Path(tke_env["TKE_WEB_IDENTITY_TOKEN_FILE"]).write_text("eyJ.someone-elses-token")

        async def main(http):
            settings = CredentialSettings(source="tke_oidc", sts_endpoint=server.url)
            await _provider(settings, http, clock, env=tke_env).start()

        with pytest.raises(CredentialError, match=r"InvalidParameter\.WebIdentityTokenError"):
            run(main)

    def test_missing_variables_are_named(self, run, server, clock) -> None:
        async def main(http):
            settings = CredentialSettings(source="tke_oidc", sts_endpoint=server.url)
            await _provider(settings, http, clock, env={"TKE_REGION": "ap-guangzhou"}).start()

        with pytest.raises(CredentialError) as info:
            run(main)
        assert "TKE_PROVIDER_ID, TKE_WEB_IDENTITY_TOKEN_FILE, TKE_ROLE_ARN not set" in str(info.value)


class TestProfileAndEnv:
    def test_profile_section_from_home(self, run, tmp_path: Path, clock) -> None:
        (tmp_path / ".tencentcloud").mkdir()
        (tmp_path / ".tencentcloud" / "credentials").write_text(
            "[default]\nsecret_id = AKIDdefault\nsecret_key = default-key-0123456\n"
            "[prod]\nsecret_id = AKIDprod\nsecret_key = prod-key-0123456789\n"
        )

        async def main(http):
            settings = CredentialSettings(source="profile", profile="prod")
            provider = _provider(settings, http, clock, env={"HOME": str(tmp_path)})
            await provider.start()
            return provider.current(), provider.expiry

        credential, expiry = run(main)
        assert (credential.secret_id, credential.secret_key.reveal(), expiry) == (
            "AKIDprod",
            "prod-key-0123456789",
            None,
        )

    def test_env_source(self, run, clock) -> None:
        async def main(http):
            provider = _provider(CredentialSettings(source="env"), http, clock, env=ENV_KEYS)
            await provider.start()
            return provider.current()

        assert run(main).secret_id == "AKIDfromENV0123"

    def test_keys_with_a_keyless_source_are_refused(self, run, clock) -> None:
        async def main(http):
            _provider(CredentialSettings(source="cvm_role", secret_id="AKIDx"), http, clock)

        with pytest.raises(CredentialError, match="cvm_role does not use secret_id"):
            run(main)


class TestAuto:
    def test_sdk_order_env_before_profile_before_cvm(
        self, run, tmp_path: Path, identity, metadata_url, clock
    ) -> None:
        identity.set_instance_role("r")
        (tmp_path / ".tencentcloud").mkdir()
        (tmp_path / ".tencentcloud" / "credentials").write_text(
            "[default]\nsecret_id = AKIDprofile\nsecret_key = profile-key-012345\n"
        )
        settings = CredentialSettings(metadata_endpoint=metadata_url)

        async def pick(http, env):
            provider = _provider(settings, http, clock, env=env)
            await provider.start()
            return provider.source, provider.current().secret_id

        assert run(lambda http: pick(http, {**ENV_KEYS, "HOME": str(tmp_path)})) == ("env", "AKIDfromENV0123")
        assert run(lambda http: pick(http, {"HOME": str(tmp_path)})) == ("profile", "AKIDprofile")
        assert run(lambda http: pick(http, {"HOME": str(tmp_path / "nobody")}))[0] == "cvm_role"

    def test_config_keys_come_first(self, run, clock) -> None:
        async def main(http):
            settings = CredentialSettings(secret_id="AKIDconfig", secret_key=Secret("config-key-0123456"))
            provider = _provider(settings, http, clock, env=ENV_KEYS)
            await provider.start()
            return provider.source, provider.current().secret_id

        assert run(main) == ("static", "AKIDconfig")

    def test_nothing_anywhere_fails_fast_listing_each_source(self, run, tmp_path: Path, clock) -> None:
        # The default metadata host: off Tencent Cloud it does not resolve or answer; the 1 s
        # budget must hold whichever.
        settings = CredentialSettings()

        async def main(http):
            await _provider(settings, http, clock, env={"HOME": str(tmp_path)}).start()

        started = time.monotonic()
        with pytest.raises(CredentialError) as info:
            run(main)
        elapsed = time.monotonic() - started
        assert elapsed < 1.5
        message = str(info.value)
        assert message.startswith('account "acct": credential source auto: no credentials found; tried ')
        for fragment in (
            "env: TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY not set",
            f"profile: no profile file ({tmp_path}/.tencentcloud/credentials, /etc/tencentcloud/credentials)",
            "cvm_role: metadata service http://metadata.tencentyun.com/latest/meta-data/",
            "tke_oidc: TKE_REGION, TKE_PROVIDER_ID, TKE_WEB_IDENTITY_TOKEN_FILE, TKE_ROLE_ARN not set",
        ):
            assert fragment in message
        assert message.index("env:") < message.index("profile:") < message.index("cvm_role:")


def test_providers_run_concurrently_without_sharing_state(run, server, identity, metadata_url, clock):
    identity.set_instance_role("r")

    async def main(http):
        providers = [
            _provider(CredentialSettings(source="cvm_role", metadata_endpoint=metadata_url), http, clock)
            for _ in range(3)
        ]
        await asyncio.gather(*(p.start() for p in providers))
        return {p.current().secret_id for p in providers}

    assert len(run(main)) == 1  # the instance credential is the same for all until it rotates


def test_silent_metadata_service_times_out_within_a_second(run, clock) -> None:
    """A host that accepts the connection and never answers: the metadata timeout bounds the wait."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nobody ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/latest/meta-data/"

        async def main(http):
            settings = CredentialSettings(source="cvm_role", metadata_endpoint=url)
            await _provider(settings, http, clock).start()

        started = time.monotonic()
        with pytest.raises(CredentialError) as info:
            run(main)
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 1.5
    assert str(info.value).endswith(f"metadata service {url} unreachable: no answer within 1s")
