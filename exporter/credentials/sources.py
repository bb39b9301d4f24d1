"""Credential sources: one small class per place a credential can come from, same signature each.

Every source has a ``name`` (the ``source`` field of log lines and error messages) and
``async load() -> Loaded``. A source with nothing to offer (no variables set, no profile file,
no metadata service) raises ``SourceSkipped`` with the reason, so ``AutoSource`` can try the next
one and, if all are skipped, say why for each. Any other ``CredentialError`` means the source is
there but failed.

The order of ``AutoSource`` is the official SDKs' (``DefaultCredentialProvider``): environment,
profile file, CVM role, TKE OIDC; keys in the config, when there are any, come first.
"""

from __future__ import annotations

import configparser
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from exporter.credentials.files import read_secret_file
from exporter.credentials.remote import (
    assume_role,
    assume_role_with_web_identity,
    cvm_role_credential,
)
from exporter.credentials.secret import Credential, CredentialError, Secret, SecretFileError
from exporter.credentials.settings import CredentialSettings
from exporter.credentials.static import ENV_SECRET_ID, ENV_SECRET_KEY, resolve_credential

__all__ = [
    "PROFILE_PATHS",
    "TKE_ENV",
    "AutoSource",
    "CvmRoleSource",
    "EnvSource",
    "Loaded",
    "ProfileSource",
    "RoleSource",
    "Source",
    "SourceSkipped",
    "StaticSource",
    "TkeOidcSource",
]

PROFILE_PATHS = ("~/.tencentcloud/credentials", "/etc/tencentcloud/credentials")
TKE_ENV = ("TKE_REGION", "TKE_PROVIDER_ID", "TKE_WEB_IDENTITY_TOKEN_FILE", "TKE_ROLE_ARN")
_SESSION_PREFIX = "tencent-live-exporter-"


class SourceSkipped(CredentialError):
    """The source has nothing to offer here (not configured); ``auto`` moves on to the next."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """A credential, when it stops working (None: permanent) and the files it was read from."""

    credential: Credential
    expiry: float | None = None
    files: tuple[Path, ...] = field(default=())


class Source(Protocol):
    @property
    def name(self) -> str: ...

    async def load(self) -> Loaded: ...


def _present(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name) or None


class StaticSource:
    """Keys from the config (inline or ``*_file``), the environment filling gaps (SPEC section 3)."""

    name = "static"

    def __init__(self, settings: CredentialSettings, env: Mapping[str, str]) -> None:
        self._settings = settings
        self._env = env

    async def load(self) -> Loaded:
        s = self._settings
        files = tuple(p for p in (s.secret_id_file, s.secret_key_file, s.session_token_file) if p)
        return Loaded(credential=resolve_credential(s, self._env), files=files)


class EnvSource:
    """``TENCENTCLOUD_SECRET_ID``/``_SECRET_KEY`` (+ ``_SESSION_TOKEN`` or tccli's ``TENCENTCLOUD_TOKEN``)."""

    name = "env"

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    async def load(self) -> Loaded:
        missing = [n for n in (ENV_SECRET_ID, ENV_SECRET_KEY) if not _present(self._env, n)]
        if missing:
            raise SourceSkipped(f"{' and '.join(missing)} not set")
        return Loaded(credential=resolve_credential(CredentialSettings(), self._env))


class ProfileSource:
    """An INI profile file, as the SDK's ``ProfileCredential``: keys ``secret_id`` and ``secret_key``.

    The first of ``~/.tencentcloud/credentials`` and ``/etc/tencentcloud/credentials`` that exists
    is read; the section is ``profile`` (default ``default``).
    """

    name = "profile"

    def __init__(
        self, profile: str | None, env: Mapping[str, str], paths: Sequence[str] = PROFILE_PATHS
    ) -> None:
        self._section = profile or "default"
        home = env.get("HOME") or str(Path.home())
        self._paths = tuple(Path(p.replace("~", home, 1)) if p.startswith("~") else Path(p) for p in paths)

    async def load(self) -> Loaded:
        path = next((p for p in self._paths if p.exists()), None)
        if path is None:
            raise SourceSkipped(f"no profile file ({', '.join(str(p) for p in self._paths)})")
        try:
            text = read_secret_file(path).reveal()
        except SecretFileError as exc:
            raise CredentialError(str(exc)) from None
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(text, source=str(path))
        except configparser.Error:
            raise CredentialError(f'"{path}" is not a valid INI file') from None
        if not parser.has_section(self._section):
            raise SourceSkipped(f'"{path}" has no [{self._section}] section')
        section = parser[self._section]
        secret_id = section.get("secret_id", "").strip().strip('"')
        secret_key = section.get("secret_key", "").strip().strip('"')
        if not secret_id or not secret_key:
            raise SourceSkipped(f'"{path}" [{self._section}] lacks secret_id or secret_key')
        return Loaded(credential=Credential(secret_id, Secret(secret_key)), files=(path,))


class CvmRoleSource:
    """The CAM role bound to this CVM instance, from the instance metadata service."""

    name = "cvm_role"

    def __init__(self, metadata_endpoint: str) -> None:
        self._endpoint = metadata_endpoint

    async def load(self) -> Loaded:
        issued = await cvm_role_credential(self._endpoint)
        return Loaded(credential=issued.credential, expiry=issued.expiry)


class TkeOidcSource:
    """A TKE service account: the ``TKE_*`` variables the pod identity webhook injects, then
    STS ``AssumeRoleWithWebIdentity`` (unsigned) with the projected token file.
    """

    name = "tke_oidc"

    def __init__(
        self,
        settings: CredentialSettings,
        env: Mapping[str, str],
        http: httpx.AsyncClient,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._env = env
        self._http = http
        self._clock = clock

    async def load(self) -> Loaded:
        missing = [n for n in TKE_ENV if not _present(self._env, n)]
        if missing:
            raise SourceSkipped(f"{', '.join(missing)} not set")
        token_file = Path(self._env["TKE_WEB_IDENTITY_TOKEN_FILE"])
        try:
            token = read_secret_file(token_file)
        except SecretFileError as exc:
            raise CredentialError(f"TKE_WEB_IDENTITY_TOKEN_FILE: {exc}") from None
        s = self._settings
        issued = await assume_role_with_web_identity(
            self._http,
            endpoint=s.sts_endpoint,
            region=self._env["TKE_REGION"],
            provider_id=self._env["TKE_PROVIDER_ID"],
            web_identity_token=token,
            role_arn=self._env["TKE_ROLE_ARN"],
            session_name=s.role_session_name or f"{_SESSION_PREFIX}{int(self._clock())}",
            duration=s.role_duration,
            clock=self._clock,
        )
        return Loaded(credential=issued.credential, expiry=issued.expiry, files=(token_file,))


class RoleSource:
    """``role_arn`` on top of any source: its credential signs an STS ``AssumeRole``."""

    def __init__(
        self,
        inner: Source,
        settings: CredentialSettings,
        http: httpx.AsyncClient,
        clock: Callable[[], float],
    ) -> None:
        assert settings.role_arn is not None
        self._inner = inner
        self._settings = settings
        self._http = http
        self._clock = clock

    @property
    def name(self) -> str:
        return f"{self._inner.name}+role_arn"

    async def load(self) -> Loaded:
        base = await self._inner.load()
        s = self._settings
        assert s.role_arn is not None
        issued = await assume_role(
            self._http,
            endpoint=s.sts_endpoint,
            credential=base.credential,
            role_arn=s.role_arn,
            session_name=s.role_session_name or f"{_SESSION_PREFIX}{int(self._clock())}",
            duration=s.role_duration,
            clock=self._clock,
        )
        # The assumed credential lives on its own; the base one is fetched afresh at each renewal.
        return Loaded(credential=issued.credential, expiry=issued.expiry, files=base.files)


class AutoSource:
    """The official SDKs' order; the first source that yields a credential is kept for renewals.

    Raises (from ``load``):
        CredentialError: every source skipped or failed; one message lists each and why.
    """

    def __init__(self, candidates: Sequence[Source]) -> None:
        self._candidates = tuple(candidates)
        self._chosen: Source | None = None

    @property
    def name(self) -> str:
        return self._chosen.name if self._chosen is not None else "auto"

    async def load(self) -> Loaded:
        if self._chosen is not None:
            return await self._chosen.load()
        reasons: list[str] = []
        for source in self._candidates:
            try:
                loaded = await source.load()
            except CredentialError as exc:
                reasons.append(f"{source.name}: {exc}")
                continue
            self._chosen = source
            return loaded
        raise CredentialError("no credentials found; tried " + "; ".join(reasons))

    @property
    def skipped(self) -> tuple[str, ...]:
        """Names of the sources tried before the chosen one (for the startup log line)."""
        names = []
        for source in self._candidates:
            if source is self._chosen:
                break
            names.append(source.name)
        return tuple(names)
