"""What one account's config says about credentials (read by config, consumed by build_provider).

Kept free of I/O: config builds it while validating, and a reload compares two of them to decide
whether the account's provider must be rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporter.credentials.secret import Secret

__all__ = [
    "DEFAULT_METADATA_ENDPOINT",
    "DEFAULT_STS_ENDPOINT",
    "SOURCES",
    "CredentialSettings",
]

# The official SDKs' CVMRoleCredential base URL and STS endpoint (common/credential.py).
DEFAULT_METADATA_ENDPOINT = "http://metadata.tencentyun.com/latest/meta-data/"
DEFAULT_STS_ENDPOINT = "https://sts.tencentcloudapi.com"

SOURCES = ("auto", "static", "env", "profile", "cvm_role", "tke_oidc")


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialSettings:
    """One account's credential settings, as written; the environment fills gaps later.

    File paths are already absolute (config resolves them against the config file's directory).
    ``role_duration`` is in seconds; ``None`` leaves STS its default.
    """

    source: str = "auto"
    secret_id: str | None = None
    secret_key: Secret | None = None
    session_token: Secret | None = None
    secret_id_file: Path | None = None
    secret_key_file: Path | None = None
    session_token_file: Path | None = None
    profile: str | None = None
    role_arn: str | None = None
    role_session_name: str | None = None
    role_duration: float | None = None
    metadata_endpoint: str = DEFAULT_METADATA_ENDPOINT
    sts_endpoint: str = DEFAULT_STS_ENDPOINT

    def has_static_keys(self) -> bool:
        """True when the config itself names a key (inline or by file): ``auto`` then uses it."""
        return any(
            v is not None
            for v in (
                self.secret_id,
                self.secret_key,
                self.session_token,
                self.secret_id_file,
                self.secret_key_file,
                self.session_token_file,
            )
        )
