"""The --demo credential hook: temporary credentials from the simulator's STS, renewed at half-life."""

from __future__ import annotations

from exporter.credentials import Credential, RenewingProvider, Secret, build_provider
from exporter.credentials.demo import DEMO_LIFETIME, demo_credentials


def test_demo_credentials_are_short_lived_and_renew(run, server, base_account, clock) -> None:
    settings = demo_credentials(server, Credential(base_account.secret_id, Secret(base_account.secret_key)))
    assert settings.role_arn and settings.sts_endpoint == server.url

    async def main(http):
        provider = build_provider(settings, account="demo", env={}, http=http, clock=clock)
        assert isinstance(provider, RenewingProvider)
        await provider.start(background=False)
        first, expiry = provider.current(), provider.expiry
        assert expiry == clock() + DEMO_LIFETIME
        clock.advance(DEMO_LIFETIME / 2)
        assert await provider.step() is True
        return first, provider.current()

    first, second = run(main)
    assert first != second
    assert first.secret_id != base_account.secret_id  # polls never use the permanent key
