"""Renewal with an injected clock: when it happens, what a failure keeps, backoff, forced renewal,
file rotation and the SIGHUP hook. No sleeps: each test drives ``step()`` (one iteration of the
background loop) after moving the clock, with the background task left out.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.credentials import (
    CredentialError,
    CredentialSettings,
    RenewingProvider,
    Secret,
    build_provider,
    renew_all,
)
from exporter.credentials.renewing import RENEW_BEFORE, RETRY_FIRST
from exporter.redaction import SECRETS


async def _cvm(http, clock, metadata_url, refreshes=None) -> RenewingProvider:
    """A ``cvm_role`` provider after its first fetch, with no background task (tests call step())."""
    provider = build_provider(
        CredentialSettings(source="cvm_role", metadata_endpoint=metadata_url),
        account="acct",
        env={},
        http=http,
        clock=clock,
        on_refresh=None if refreshes is None else lambda *a: refreshes.append(a),
    )
    assert isinstance(provider, RenewingProvider)
    await provider.start(background=False)
    return provider


class TestTemporaryCredentials:
    def test_renewed_before_fewer_than_five_minutes_remain(self, run, identity, metadata_url, clock) -> None:
        identity.lifetime = 3600
        identity.set_instance_role("r")
        refreshes: list[tuple[str, str, float | None]] = []

        async def main(http):
            provider = await _cvm(http, clock, metadata_url, refreshes)
            first, first_expiry = provider.current(), provider.expiry
            assert first_expiry is not None
            clock.now = first_expiry - RENEW_BEFORE - 1
            assert await provider.step() is False  # not due yet
            assert provider.current() == first
            clock.now = first_expiry - RENEW_BEFORE
            assert first_expiry - clock() > 300  # still more than five minutes of validity
            assert await provider.step() is True
            return first, first_expiry, provider.current(), provider.expiry

        first, first_expiry, second, second_expiry = run(main)
        assert second != first
        assert second_expiry == first_expiry - RENEW_BEFORE + 3600
        assert [r[1] for r in refreshes] == ["ok", "ok"]
        assert refreshes[-1] == ("acct", "ok", second_expiry)
        # every secret ever loaded stays redacted, the superseded one included
        assert first.token is not None and second.token is not None
        assert SECRETS.contains(first.token.reveal()) and SECRETS.contains(second.token.reveal())

    def test_failed_renewal_keeps_the_valid_credential_and_backs_off(
        self, run, identity, metadata_url, clock, logs
    ) -> None:
        identity.lifetime = 3600
        identity.set_instance_role("r")
        refreshes: list[tuple[str, str, float | None]] = []

        async def main(http):
            provider = await _cvm(http, clock, metadata_url, refreshes)
            first, expiry = provider.current(), provider.expiry
            assert expiry is not None
            identity.set_instance_role(None)  # the role is detached: renewals fail
            clock.now = expiry - RENEW_BEFORE
            assert await provider.step() is True
            assert provider.current() == first  # still valid, still served
            assert provider.renew_at == clock() + RETRY_FIRST
            clock.advance(RETRY_FIRST - 0.5)
            assert await provider.step() is False  # backing off
            clock.advance(0.5)
            assert await provider.step() is True
            assert provider.renew_at == clock() + 2 * RETRY_FIRST  # exponential
            identity.set_instance_role("r")
            clock.advance(2 * RETRY_FIRST)
            assert await provider.step() is True
            return first, provider.current()

        first, recovered = run(main)
        assert recovered != first
        assert [r[1] for r in refreshes] == ["ok", "error", "error", "ok"]
        failed = [e for e in logs if e["event"] == "credential_refresh_failed"]
        assert len(failed) == 2
        assert failed[0]["account"] == "acct" and failed[0]["source"] == "cvm_role"
        assert "no CAM role is bound" in failed[0]["error"]
        text = repr(logs)
        assert first.secret_key.reveal() not in text and "Traceback" not in text

    def test_expired_with_renewal_failing_is_a_clear_error(self, run, identity, metadata_url, clock) -> None:
        identity.lifetime = 1200
        identity.set_instance_role("r")

        async def main(http):
            provider = await _cvm(http, clock, metadata_url)
            identity.set_instance_role(None)
            assert provider.expiry is not None
            clock.now = provider.expiry
            await provider.step()
            provider.current()

        with pytest.raises(CredentialError) as info:
            run(main)
        message = str(info.value)
        assert message.startswith('account "acct": credential source cvm_role: credential expired at ')
        assert "renewal failing: metadata service" in message

    def test_renew_forces_a_fetch_and_concurrent_callers_share_it(
        self, run, server, identity, base_account, clock
    ) -> None:
        arn = identity.add_role("target")

        async def main(http):
            import asyncio

            provider = build_provider(
                CredentialSettings(
                    secret_id=base_account.secret_id,
                    secret_key=Secret(base_account.secret_key),
                    role_arn=arn,
                    sts_endpoint=server.url,
                ),
                account="acct",
                env={},
                http=http,
                clock=clock,
            )
            await provider.start(background=False)  # type: ignore[call-arg]
            before = provider.current()
            a, b = await asyncio.gather(provider.renew(), provider.renew())
            return before, a, b

        before, a, b = run(main)
        assert a == b != before
        assert len(identity.issued) == 2  # one at start, one shared by both renew() calls


class TestFiles:
    @pytest.fixture
    def key_file(self, tmp_path: Path) -> Path:
        path = tmp_path / "key"
        path.write_text("first-secret-key-0123\n")
        return path

    def _static(self, http, clock, key_file):
        return build_provider(
            CredentialSettings(source="static", secret_id="AKIDfile", secret_key_file=key_file),
            account="acct",
            env={},
            http=http,
            clock=clock,
        )

    def test_rotated_file_is_reread_without_restart(self, run, clock, key_file: Path) -> None:
        async def main(http):
            provider = self._static(http, clock, key_file)
            await provider.start(background=False)
            first = provider.current().secret_key.reveal()
            # Kubernetes swaps the file (a new inode behind the symlink), content changes
            replacement = key_file.with_name("key.new")
            replacement.write_text("second-secret-key-4567\n")
            os.replace(replacement, key_file)
            clock.advance(1.5)
            assert provider.current().secret_key.reveal() == first  # noticed, re-read by the task
            assert await provider.step() is True
            return first, provider.current().secret_key.reveal()

        assert run(main) == ("first-secret-key-0123", "second-secret-key-4567")

    def test_unchanged_file_is_not_reread(self, run, clock, key_file: Path) -> None:
        async def main(http):
            provider = self._static(http, clock, key_file)
            await provider.start(background=False)
            clock.advance(3600)
            provider.current()
            return await provider.step()

        assert run(main) is False

    def test_sighup_rereads_even_when_the_stamp_is_unchanged(self, run, clock, key_file: Path) -> None:
        async def main(http):
            provider = self._static(http, clock, key_file)
            await provider.start(background=False)
            st = key_file.stat()
            with key_file.open("r+") as f:  # same inode, same size, mtime put back
                f.write("other0")
            os.utime(key_file, ns=(st.st_atime_ns, st.st_mtime_ns))
            clock.advance(10)
            assert await provider.step() is False
            await renew_all([provider])
            return provider.current().secret_key.reveal()

        assert run(main) == "other0secret-key-0123"

    def test_broken_rotation_keeps_the_previous_key(self, run, clock, key_file: Path, logs) -> None:
        async def main(http):
            provider = self._static(http, clock, key_file)
            await provider.start(background=False)
            key_file.write_text("   \n")
            clock.advance(2)
            await provider.step()
            return provider.current().secret_key.reveal()

        assert run(main) == "first-secret-key-0123"
        failed = [e for e in logs if e["event"] == "credential_refresh_failed"]
        assert failed and f'"{key_file}" is empty' in failed[0]["error"]


def test_background_task_rereads_a_changed_file_noticed_by_current(run, clock, tmp_path: Path) -> None:
    import asyncio

    key_file = tmp_path / "key"
    key_file.write_text("first-secret-key-0123")

    async def main(http):
        provider = build_provider(
            CredentialSettings(secret_id="AKIDfile", secret_key_file=key_file),
            account="acct",
            env={},
            http=http,
            clock=clock,
        )
        await provider.start()  # with the background task
        try:
            key_file.write_text("second-secret-key-45678")
            clock.advance(1.5)
            deadline = asyncio.get_running_loop().time() + 5
            while provider.current().secret_key.reveal() != "second-secret-key-45678":
                assert asyncio.get_running_loop().time() < deadline, "not re-read"
                await asyncio.sleep(0.01)  # yield to the task; bounded by the deadline
        finally:
            await provider.stop()
        return provider.current().secret_key.reveal()

    assert run(main) == "second-secret-key-45678"
