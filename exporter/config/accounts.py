"""``accounts:`` entries: label, regions, budget, endpoint, watch list, proxy and credential settings.

Credentials are only *described* here (``CredentialSettings``); resolving them (environment,
profile file, instance role, STS) is ``exporter.credentials``' job at startup, so a config that
reads fine on a laptop also reads fine on the CVM it is meant for. What can be checked without the
environment is checked: unknown ``credential_source`` values, a ``*_file`` given with its inline
twin, keys that the chosen source never uses, ``static`` without a key, and unreadable key files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from exporter.config.loader import Context, Invalid, Reader, Reported, Section, did_you_mean, key, kind, model
from exporter.config.values import choice, duration, list_of, number, path, secret_text, text
from exporter.credentials import SOURCES, CredentialSettings, Secret, SecretFileError, read_secret_file

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_REGIONS",
    "KNOWN_REGIONS",
    "AccountConfig",
    "read_accounts",
]

DEFAULT_REGIONS: Final[tuple[str, ...]] = (
    "ap-bangkok",
    "ap-beijing",
    "ap-guangzhou",
    "ap-hongkong",
    "ap-shanghai",
)
# The vendor page also lists these two; never polled by default (SPEC 2). Any other well-formed id
# is accepted with a warning: the vendor opens regions faster than we release.
KNOWN_REGIONS: Final[tuple[str, ...]] = (*DEFAULT_REGIONS, "ap-seoul", "ap-tokyo")
DEFAULT_ENDPOINT: Final = "https://live.tencentcloudapi.com"
_REGION: Final = re.compile(r"[a-z]{2,}(-[a-z0-9]+)+")
_ROLE_ARN: Final = re.compile(r"qcs::cam::uin/\d+:role(Name)?/.+")
_SESSION_NAME: Final = re.compile(r"[\w+=,.@-]{2,128}")
_SESSION_NAME_EXAMPLE: Final = "tencent-live-exporter (2-128 of: letters digits + = , . @ _ -)"
_MAX_ROLE_DURATION: Final = 43200.0  # STS AssumeRole DurationSeconds ceiling (12 h)


def _region(node: Node, path: str, ctx: Context) -> str:
    value = text(node, path, ctx)
    if _REGION.fullmatch(value) is None:
        raise Invalid(f'malformed region "{value[:60]}" (region ids look like ap-guangzhou)')
    if value not in KNOWN_REGIONS:
        hint = did_you_mean(value, KNOWN_REGIONS, f'region "{value}"').removeprefix("unknown ")
        ctx.report.warning(node, path, f"undocumented {hint}; polled as written")
    return value


def _regions(node: Node, path: str, ctx: Context) -> tuple[str, ...]:
    regions = list_of(_region)(node, path, ctx)
    if not regions:
        raise Invalid("is empty; list at least one region, or omit it for the default five")
    return regions


def _stream_name(node: Node, path: str, ctx: Context) -> str:
    value = text(node, path, ctx)
    if not value:
        raise Invalid("is an empty stream name")
    return value


def url(*, example: str, path_allowed: bool = False, userinfo: bool = False) -> Reader[str]:
    """An http(s) URL; without ``path_allowed`` only scheme://host[:port], stored without a trailing /."""

    def read_url(node: Node, key_path: str, ctx: Context) -> str:
        value = text(node, key_path, ctx)
        parts = urlsplit(value)
        has_userinfo = parts.username is not None or parts.password is not None
        if has_userinfo and userinfo and parts.password:
            ctx.report.secrets.add(parts.password)
        shown = "" if "@" in value else f' (got "{value}")'  # user:password@ would be a credential
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Invalid(f"must be an http:// or https:// URL such as {example}{shown}")
        if has_userinfo and not userinfo:
            raise Invalid("must not contain user:password; credentials belong in secret_id and secret_key")
        try:
            parts.port  # noqa: B018  (property raises on a bad port)
        except ValueError:
            raise Invalid(f"has an invalid port{shown}") from None
        if not path_allowed and (parts.path not in ("", "/") or parts.query or parts.fragment):
            raise Invalid(f"must be scheme://host[:port] only: the API is served at /{shown}")
        return value if path_allowed else value.rstrip("/")

    return read_url


def _patterned(pattern: re.Pattern[str], example: str) -> Reader[str]:
    def read_patterned(node: Node, path: str, ctx: Context) -> str:
        value = text(node, path, ctx)
        if pattern.fullmatch(value) is None:
            raise Invalid(f"expected something like {example}")
        return value

    return read_patterned


def _secret(node: Node, path: str, ctx: Context) -> Secret:
    value = secret_text(node, path, ctx)
    if not value:
        raise Invalid("is empty")
    return Secret(value)


def _nonempty(node: Node, path: str, ctx: Context) -> str:
    value = text(node, path, ctx)
    if not value.strip():
        raise Invalid("is empty")
    return value


# Config key -> (CredentialSettings field, reader). One line per key: adding a credential key is
# a field in CredentialSettings and a line here.
_CREDENTIAL_KEYS: Final[Mapping[str, tuple[str, Reader[Any]]]] = {
    "credential_source": ("source", choice(SOURCES, "credential_source")),
    "secret_id": ("secret_id", _nonempty),
    "secret_key": ("secret_key", _secret),
    "session_token": ("session_token", _secret),
    "secret_id_file": ("secret_id_file", path),
    "secret_key_file": ("secret_key_file", path),
    "session_token_file": ("session_token_file", path),
    "profile": ("profile", _nonempty),
    "role_arn": ("role_arn", _patterned(_ROLE_ARN, "qcs::cam::uin/100000000001:roleName/exporter")),
    "role_session_name": ("role_session_name", _patterned(_SESSION_NAME, _SESSION_NAME_EXAMPLE)),
    "role_duration": ("role_duration", duration(positive=True, maximum=_MAX_ROLE_DURATION)),
    "metadata_endpoint": (
        "metadata_endpoint",
        url(example="http://metadata.tencentyun.com/latest/meta-data/", path_allowed=True),
    ),
    "sts_endpoint": ("sts_endpoint", url(example="https://sts.tencentcloudapi.com")),
}
_STATIC_KEYS: Final = ("secret_id", "secret_key", "session_token")
_ROLE_ONLY: Final = ("role_session_name", "role_duration")


def _check_credentials(section: Section) -> None:
    """Move the credential keys into one ``CredentialSettings``; report what is wrong statically."""
    values = section.values
    written = {k: values.pop(k) for k in _CREDENTIAL_KEYS if k in values}
    source = written.get("credential_source", "auto")
    if source in ("auto", "static"):
        _check_files(section, written)  # also registers their content for scrubbing
    if not section.ok:
        return  # a misspelt key (secret_kye) already says what is wrong; more would be noise
    for name in _STATIC_KEYS:
        if name in written and f"{name}_file" in written:
            section.problem(f"{name}_file", f"set either {name} or {name}_file, not both")
    for name in (*_STATIC_KEYS, *(f"{n}_file" for n in _STATIC_KEYS)):
        if name in written and source not in ("auto", "static"):
            section.problem(name, f"is used only with credential_source static or auto, not {source}")
    if "profile" in written and source not in ("auto", "profile"):
        section.problem("profile", f"is used only with credential_source profile or auto, not {source}")
    for name in _ROLE_ONLY:
        if name in written and "role_arn" not in written and source not in ("auto", "tke_oidc"):
            section.problem(name, "is used only with role_arn (or credential_source tke_oidc)")
    if source == "static" and "secret_key" not in written and "secret_key_file" not in written:
        section.problem(None, "credential_source static needs secret_key or secret_key_file")
    if section.ok:
        values["credentials"] = CredentialSettings(
            **{field_name: written[k] for k, (field_name, _) in _CREDENTIAL_KEYS.items() if k in written}
        )


def _check_files(section: Section, written: Mapping[str, Any]) -> None:
    """Static key files must be readable now, or ``--check-config`` would pass a config that fails."""
    for name in _STATIC_KEYS:
        file_path = written.get(f"{name}_file")
        if file_path is None or name in written:
            continue
        try:
            content = read_secret_file(file_path).reveal()
        except SecretFileError as exc:
            section.problem(f"{name}_file", str(exc))
            continue
        if name != "secret_id":
            section.ctx.report.secrets.add(content)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountConfig:
    """One Tencent Cloud (sub-)account: its label, credential settings, regions and API budget."""

    name: str = field(metadata=key(_nonempty))
    credentials: CredentialSettings = field(default_factory=CredentialSettings)
    regions: tuple[str, ...] = field(default=DEFAULT_REGIONS, metadata=key(_regions))
    rate_limit: float = field(default=20.0, metadata=key(number))
    endpoint: str = field(default=DEFAULT_ENDPOINT, metadata=key(url(example=DEFAULT_ENDPOINT)))
    stream_names: tuple[str, ...] = field(default=(), metadata=key(list_of(_stream_name)))
    # May hold user:password, so it stays out of the repr.
    proxy_url: str | None = field(
        default=None,
        repr=False,
        metadata=key(url(example="http://proxy:3128", path_allowed=True, userinfo=True)),
    )


_account = model(AccountConfig, extra={k: reader for k, (_, reader) in _CREDENTIAL_KEYS.items()},
                 check=_check_credentials)  # fmt: skip


def read_accounts(node: Node, path: str, ctx: Context) -> tuple[AccountConfig, ...]:
    """The ``accounts`` list: each entry, then names unique and shared SecretIds warned about."""
    if not isinstance(node, SequenceNode):
        raise Invalid(f"expected a list, got {kind(node)}")
    if not node.value:
        raise Invalid("is empty; list at least one account, or omit accounts to use the environment")
    before = ctx.report.count()
    accounts: list[tuple[AccountConfig, Node]] = []
    for index, item in enumerate(node.value):
        try:
            accounts.append((_account(item, f"{path}[{index}]", ctx), item))
        except Invalid as exc:
            ctx.report.problem(item, f"{path}[{index}]", str(exc))
        except Reported:
            pass
    _check_names(node, path, ctx)
    if ctx.report.count() != before:
        raise Reported
    _warn_shared_budget(accounts, path, ctx)
    return tuple(account for account, _ in accounts)


def _check_names(node: SequenceNode, path: str, ctx: Context) -> None:
    """Account names are labels: unique, checked even in entries with other problems."""
    first: dict[str, int] = {}
    for index, item in enumerate(node.value):
        if not isinstance(item, MappingNode):
            continue
        # After read_section flattened merges, the last "name" pair is the one that counts.
        names = [v for k, v in item.value if k.value == "name" and isinstance(v, ScalarNode)]
        if not names or not names[-1].value:
            continue
        name, line = names[-1].value, names[-1].start_mark.line + 1
        if name in first:
            message = f'duplicate account name "{name}" (first on line {first[name]})'
            ctx.report.problem(names[-1], f"{path}[{index}].name", message)
        else:
            first[name] = line


def _identity(settings: CredentialSettings) -> tuple[str, object]:
    """What decides the SecretId an account will sign with, as far as the config tells."""
    if settings.secret_id is not None:
        return "the same secret_id", settings.secret_id
    if settings.secret_id_file is not None:
        return "the same secret_id_file", settings.secret_id_file
    # No key in the config: equal settings find the same credentials (environment, profile, role).
    return "the same credential settings", settings


def _warn_shared_budget(accounts: list[tuple[AccountConfig, Node]], path: str, ctx: Context) -> None:
    """The vendor counts requests per SecretId: two accounts sharing one also share its budget."""
    seen: dict[tuple[str, object, str], AccountConfig] = {}
    for index, (account, node) in enumerate(accounts):
        what, identity = _identity(account.credentials)
        other = seen.setdefault((what, identity, account.endpoint), account)
        if other is not account:
            ctx.report.warning(
                node,
                f"{path}[{index}]",
                f'accounts "{other.name}" and "{account.name}" use {what} and endpoint: '
                f"the vendor counts one request budget for both, so rate_limit {other.rate_limit:g} + "
                f"{account.rate_limit:g} may be throttled",
            )
