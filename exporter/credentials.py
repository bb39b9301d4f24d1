"""Tencent Cloud credentials: where they come from, and a type that will not print them.

Why a ``Secret`` wrapper rather than a plain ``str`` with ``field(repr=False)``: a secret travels
(config -> client -> signer), and every hop is a chance to land in an f-string, a log field, an
exception message or a pickled object. A wrapper that renders as ``Secret('***')`` and refuses
to be pickled makes the safe thing the default; only ``reveal()`` hands out the value, and that
name is easy to grep for.

Resolution order per account (SPEC section 3), field by field:

- SecretId: config ``secret_id``, else ``TENCENTCLOUD_SECRET_ID``.
- SecretKey: config ``secret_key`` or ``secret_key_file`` (not both), else ``TENCENTCLOUD_SECRET_KEY``.
- Token: config ``session_token`` or ``session_token_file`` (not both); else, only when the key came
  from the environment too, ``TENCENTCLOUD_SESSION_TOKEN``, else tccli's ``TENCENTCLOUD_TOKEN``.
  A temporary token belongs to the temporary key it was issued with: pairing an environment token
  with a key written in the config would only produce ``AuthFailure`` on every poll.

``*_file`` contents are stripped of surrounding whitespace, as Prometheus does for its ``*_file``
settings (a trailing newline from ``echo`` or a Kubernetes secret must not become part of the key).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

__all__ = [
    "ENV_SECRET_ID",
    "ENV_SECRET_KEY",
    "ENV_SESSION_TOKEN",
    "ENV_TOKEN_TCCLI",
    "Credential",
    "CredentialError",
    "CredentialProblem",
    "CredentialSettings",
    "Secret",
    "SecretFileError",
    "credential_from_env",
    "read_secret_file",
    "resolve_credential",
]

# Variable names, not values (ruff's S105 cannot tell the difference).
ENV_SECRET_ID = "TENCENTCLOUD_SECRET_ID"  # noqa: S105
ENV_SECRET_KEY = "TENCENTCLOUD_SECRET_KEY"  # noqa: S105
ENV_SESSION_TOKEN = "TENCENTCLOUD_SESSION_TOKEN"  # noqa: S105
ENV_TOKEN_TCCLI = "TENCENTCLOUD_TOKEN"  # noqa: S105

_MASK = "Secret('***')"
_NO_KEY = f"no SecretKey: set secret_key or secret_key_file, or {ENV_SECRET_KEY} in the environment"


class Secret:
    """A string that prints as ``Secret('***')`` everywhere; ``reveal()`` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            # Checked at runtime because a bytes key would sign wrongly, far from here.
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """The plaintext; call it only where the value is consumed (signing, the log redactor)."""
        return self._value

    def __repr__(self) -> str:
        return _MASK

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time: equality is used on config reload paths, never worth a timing oracle.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        # A pickled Config (multiprocessing, a debug dump) would carry the key in plaintext.
        raise TypeError("Secret is not picklable: it would write the secret in plaintext")

    def __copy__(self) -> Secret:
        return self  # immutable; keeps copy.copy working despite the pickle refusal

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self


@dataclass(frozen=True, slots=True)
class Credential:
    """What the signer needs: SecretId in the clear (it is an identifier), key and token wrapped."""

    secret_id: str
    secret_key: Secret
    token: Secret | None = None

    def secret_values(self) -> tuple[str, ...]:
        """Plaintext key and token, for the log redactor; empty values are left out."""
        values = [self.secret_key.reveal()]
        if self.token is not None:
            values.append(self.token.reveal())
        return tuple(v for v in values if v)


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialSettings:
    """What one account's config says about credentials, before the environment fills the gaps.

    File paths are already absolute (config resolves them against the config file's directory).
    """

    secret_id: str | None = None
    secret_key: Secret | None = None
    secret_key_file: Path | None = None
    session_token: Secret | None = None
    session_token_file: Path | None = None


@dataclass(frozen=True, slots=True)
class CredentialProblem:
    """One reason credentials could not be built.

    ``key`` is the config key to blame (None: the account as a whole); ``message`` does not repeat
    it, so config can prefix its own key path.
    """

    key: str | None
    message: str


class CredentialError(Exception):
    """Every problem found while resolving one account's credentials (never a secret value)."""

    def __init__(self, problems: tuple[CredentialProblem, ...]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.key}: {p.message}" if p.key else p.message for p in problems))


class SecretFileError(ValueError):
    """A ``*_file`` secret that cannot be used; the message names the path, never the content."""


def read_secret_file(path: Path) -> Secret:
    """Read a secret file, stripped of surrounding whitespace as Prometheus ``*_file`` settings are.

    Raises:
        SecretFileError: unreadable, not UTF-8, or empty after stripping. The message never
            quotes the content (not even the bad byte a ``UnicodeDecodeError`` would show).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SecretFileError(f'cannot read "{path}": {reason}') from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretFileError(f'"{path}" is not valid UTF-8') from None
    text = text.strip()
    if not text:
        raise SecretFileError(f'"{path}" is empty')
    return Secret(text)


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
    if settings.secret_id is not None:
        if not settings.secret_id:
            problems.append(CredentialProblem("secret_id", "is empty"))
        return settings.secret_id
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
    """The credential the official SDKs would use: environment variables only.

    Raises:
        CredentialError: when ``TENCENTCLOUD_SECRET_ID`` or ``TENCENTCLOUD_SECRET_KEY`` is missing.
    """
    return resolve_credential(CredentialSettings(), env)
