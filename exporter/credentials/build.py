"""From one account's ``CredentialSettings`` to its ``CredentialProvider``: the sources composed.

``credential_source`` picks one source, or ``auto`` the official SDKs' order (keys in the config
first when there are any); ``role_arn`` wraps whichever source in STS ``AssumeRole``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import httpx

from exporter.credentials.provider import CredentialProvider
from exporter.credentials.renewing import OnRefresh, RenewingProvider
from exporter.credentials.secret import CredentialError
from exporter.credentials.settings import SOURCES, CredentialSettings
from exporter.credentials.sources import (
    AutoSource,
    CvmRoleSource,
    EnvSource,
    ProfileSource,
    RoleSource,
    Source,
    StaticSource,
    TkeOidcSource,
)

__all__ = ["build_provider", "build_source"]


def build_source(
    settings: CredentialSettings,
    *,
    env: Mapping[str, str],
    http: httpx.AsyncClient,
    clock: Callable[[], float],
) -> Source:
    """The source ``settings`` describe (no I/O yet).

    Raises:
        CredentialError: an unknown ``credential_source``, or keys given with a source that
            does not use them.
    """
    s = settings
    kind = s.source
    if kind not in SOURCES:
        raise CredentialError(f"unknown credential_source {kind!r}; use one of {', '.join(SOURCES)}")
    if kind not in ("auto", "static") and s.has_static_keys():
        raise CredentialError(f"credential_source {kind} does not use secret_id/secret_key/session_token")
    source: Source
    if kind == "static" or (kind == "auto" and s.has_static_keys()):
        source = StaticSource(s, env)
    elif kind == "env":
        source = EnvSource(env)
    elif kind == "profile":
        source = ProfileSource(s.profile, env)
    elif kind == "cvm_role":
        source = CvmRoleSource(s.metadata_endpoint)
    elif kind == "tke_oidc":
        source = TkeOidcSource(s, env, http, clock)
    else:
        source = AutoSource(
            (
                EnvSource(env),
                ProfileSource(s.profile, env),
                CvmRoleSource(s.metadata_endpoint),
                TkeOidcSource(s, env, http, clock),
            )
        )
    if s.role_arn:
        source = RoleSource(source, s, http, clock)
    return source


def build_provider(
    settings: CredentialSettings,
    *,
    account: str,
    env: Mapping[str, str],
    http: httpx.AsyncClient,
    clock: Callable[[], float] = time.time,
    on_refresh: OnRefresh | None = None,
) -> CredentialProvider:
    """One account's provider; call ``await provider.start()`` before the first ``current()``.

    Args:
        settings: what the config says (``AccountConfig.credentials``).
        account: the account name, for log lines, errors and ``on_refresh``.
        env: the process environment (the SDK variables, ``TKE_*``, ``HOME``).
        http: used for STS (proxy and CA settings apply); the metadata service is reached
            directly with its own short-lived client.
        clock: Unix seconds.
        on_refresh: ``(account, "ok" | "error", expiry)`` after each load attempt.

    Raises:
        CredentialError: settings that cannot work whatever the environment (see ``build_source``).
    """
    try:
        source = build_source(settings, env=env, http=http, clock=clock)
    except CredentialError as exc:
        raise CredentialError(f'account "{account}": {exc}') from None
    return RenewingProvider(source, account=account, clock=clock, on_refresh=on_refresh)
