"""Tencent Cloud credentials: where they come from, how they are renewed, types that never print them.

Modules: ``secret`` (Secret, Credential, errors), ``settings`` (CredentialSettings, endpoints),
``files`` (bounded secret-file reads, change stamps), ``static`` (config keys + environment),
``provider`` (the CredentialProvider protocol, StaticCredentials), ``sources`` (env, profile,
CVM role, TKE OIDC, role_arn, auto), ``remote`` (metadata and STS calls), ``renewing``
(background renewal, file watching), ``build`` (settings -> provider).
"""

from __future__ import annotations

from exporter.credentials.build import build_provider
from exporter.credentials.files import MAX_SECRET_FILE_BYTES, read_secret_file
from exporter.credentials.provider import CredentialProvider, StaticCredentials
from exporter.credentials.renewing import RenewingProvider, renew_all
from exporter.credentials.secret import (
    Credential,
    CredentialError,
    CredentialProblem,
    Secret,
    SecretFileError,
)
from exporter.credentials.settings import (
    DEFAULT_METADATA_ENDPOINT,
    DEFAULT_STS_ENDPOINT,
    SOURCES,
    CredentialSettings,
)
from exporter.credentials.static import (
    ENV_SECRET_ID,
    ENV_SECRET_KEY,
    ENV_SESSION_TOKEN,
    ENV_TOKEN_TCCLI,
    credential_from_env,
    resolve_credential,
)

__all__ = [
    "DEFAULT_METADATA_ENDPOINT",
    "DEFAULT_STS_ENDPOINT",
    "ENV_SECRET_ID",
    "ENV_SECRET_KEY",
    "ENV_SESSION_TOKEN",
    "ENV_TOKEN_TCCLI",
    "MAX_SECRET_FILE_BYTES",
    "SOURCES",
    "Credential",
    "CredentialError",
    "CredentialProblem",
    "CredentialProvider",
    "CredentialSettings",
    "RenewingProvider",
    "Secret",
    "SecretFileError",
    "StaticCredentials",
    "build_provider",
    "credential_from_env",
    "read_secret_file",
    "renew_all",
    "resolve_credential",
]
