"""Static keys: config values and ``*_file`` paths, the environment filling the gaps.

Resolution order per account (SPEC section 3), field by field:

- SecretId: config ``secret_id`` or ``secret_id_file`` (not both), else ``TENCENTCLOUD_SECRET_ID``.
- SecretKey: config ``secret_key`` or ``secret_key_file`` (not both), else ``TENCENTCLOUD_SECRET_KEY``.
- Token: config ``session_token`` or ``session_token_file`` (not both); else, only when the key came
  from the environment too, ``TENCENTCLOUD_SESSION_TOKEN``, else tccli's ``TENCENTCLOUD_TOKEN``.
  A temporary token belongs to the temporary key it was issued with: pairing an environment token
  with a key written in the config would only produce ``AuthFailure`` on every poll.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from exporter.credentials.files import read_secret_file
from exporter.credentials.secret import (
    Credential,
    CredentialError,
    CredentialProblem,
    Secret,
    SecretFileError,
)
from exporter.credentials.settings import CredentialSettings

__all__ = [
    "ENV_SECRET_ID",
    "ENV_SECRET_KEY",
    "ENV_SESSION_TOKEN",
    "ENV_TOKEN_TCCLI",
    "credential_from_env",
    "resolve_credential",
]

# Variable names, not values (ruff's S105 cannot tell the difference).
ENV_SECRET_ID = "TENCENTCLOUD_SECRET_ID"  # noqa: S105
ENV_SECRET_KEY = "TENCENTCLOUD_SECRET_KEY"  # noqa: S105
ENV_SESSION_TOKEN = "TENCENTCLOUD_SESSION_TOKEN"  # noqa: S105
ENV_TOKEN_TCCLI = "TENCENTCLOUD_TOKEN"  # noqa: S105

_NO_KEY = f"no SecretKey: set secret_key or secret_key_file, or {ENV_SECRET_KEY} in the environment"


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value or None  # an exported-but-empty variable is as good as unset


def _one_of(
    value: Secret | None, file: Path | None, *, key: str, problems: list[CredentialProblem]
) -> Secret | None:
    """The secret given inline or by file; both at once, an empty value or a bad file is a problem."""
    if value is not None and file is not None:
        problems.append(CredentialProblem(f"{key}_file", f"set either {key} or {key}_file, not both"))
        return None
    if value is not None:
        if not value.reveal():
            problems.append(CredentialProblem(key, "is empty"))
            return None
        return value
    if file is not None:
        try:
            return read_secret_file(file)
        except SecretFileError as exc:
            problems.append(CredentialProblem(f"{key}_file", str(exc)))
    return None


def _secret_id(
    settings: CredentialSettings, env: Mapping[str, str], problems: list[CredentialProblem]
) -> str:
    if settings.secret_id is not None or settings.secret_id_file is not None:
        inline = Secret(settings.secret_id) if settings.secret_id is not None else None
        value = _one_of(inline, settings.secret_id_file, key="secret_id", problems=problems)
        return value.reveal() if value is not None else ""
    from_env = _env(env, ENV_SECRET_ID)
    if from_env is None:
        problems.append(
            CredentialProblem(None, f"no SecretId: set secret_id, or {ENV_SECRET_ID} in the environment")
        )
        return ""
    return from_env


def resolve_credential(settings: CredentialSettings, env: Mapping[str, str]) -> Credential:
    """Build one account's credential from its config settings, the environment filling the gaps.

    Raises:
        CredentialError: with every problem found (missing id or key, both inline and file given,
            unreadable or empty file); messages name keys, variables and paths, never values.
    """
    s = settings
    problems: list[CredentialProblem] = []
    secret_id = _secret_id(s, env, problems)
    key_in_config = s.secret_key is not None or s.secret_key_file is not None
    secret_key = _one_of(s.secret_key, s.secret_key_file, key="secret_key", problems=problems)
    if not key_in_config:
        env_key = _env(env, ENV_SECRET_KEY)
        secret_key = Secret(env_key) if env_key is not None else None
        if secret_key is None:
            problems.append(CredentialProblem(None, _NO_KEY))
    token = _one_of(s.session_token, s.session_token_file, key="session_token", problems=problems)
    token_in_config = s.session_token is not None or s.session_token_file is not None
    if not token_in_config and not key_in_config:
        env_token = _env(env, ENV_SESSION_TOKEN) or _env(env, ENV_TOKEN_TCCLI)
        token = Secret(env_token) if env_token is not None else None
    if problems or secret_key is None:
        raise CredentialError(tuple(problems))
    return Credential(secret_id, secret_key, token)


def credential_from_env(env: Mapping[str, str]) -> Credential:
    """The credential the official SDKs would take from environment variables only.

    Raises:
        CredentialError: when ``TENCENTCLOUD_SECRET_ID`` or ``TENCENTCLOUD_SECRET_KEY`` is missing.
    """
    return resolve_credential(CredentialSettings(), env)
