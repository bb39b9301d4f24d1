"""The simulator's identity side: roles, STS (``AssumeRole``, ``AssumeRoleWithWebIdentity``) and the
temporary credentials they issue, which the Live API then accepts until they expire.

Vendor facts followed (STS API 2018-08-13, the official SDK's credential classes): ``AssumeRole``
is TC3-signed with service ``sts`` by the caller's key (a temporary caller sends its
``X-TC-Token``); ``AssumeRoleWithWebIdentity`` is unsigned (``Authorization: SKIP``). Both answer
``Response.Credentials.{Token,TmpSecretId,TmpSecretKey}``, ``ExpiredTime`` (Unix seconds) and
``Expiration`` (ISO 8601, UTC). ``DurationSeconds`` defaults to 7200 and is at most 43200.
A temporary credential used after its expiry is refused with ``AuthFailure.TokenFailure``.

``lifetime`` caps every issued credential's life, so demos and tests see rotation within
seconds or minutes rather than hours. The clock is the protocol core's (Unix seconds).
"""

from __future__ import annotations

import hmac
import random
import string
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

import orjson

from exporter.simulator.errors import VendorError
from exporter.simulator.gateway import authenticate, error_body, json_params, only
from exporter.simulator.values import Account, format_publish_time
from exporter.simulator.world import World

__all__ = [
    "DEFAULT_DURATION",
    "MAX_DURATION",
    "STS_ACTIONS",
    "STS_SERVICE",
    "STS_VERSION",
    "Identity",
    "IssuedCredential",
    "role_arn",
]

STS_SERVICE: Final = "sts"
STS_VERSION: Final = "2018-08-13"
STS_ACTIONS: Final = frozenset({"AssumeRole", "AssumeRoleWithWebIdentity"})
DEFAULT_DURATION: Final = 7200
MAX_DURATION: Final = 43200
_OWNER_UIN: Final = "100000000001"
_ASSUME_PARAMS: Final = frozenset(
    {"RoleArn", "RoleSessionName", "DurationSeconds", "Policy", "ExternalId", "Tags", "SourceIdentity"}
)
_WEB_PARAMS: Final = frozenset(
    {"ProviderId", "WebIdentityToken", "RoleArn", "RoleSessionName", "DurationSeconds"}
)
_ALNUM: Final = string.ascii_letters + string.digits


def role_arn(name: str, uin: str = _OWNER_UIN) -> str:
    """The vendor's role ARN form ``qcs::cam::uin/<uin>:roleName/<name>``."""
    return f"qcs::cam::uin/{uin}:roleName/{name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedCredential:
    """One temporary credential as issued: the account the Live API accepts, and its expiry."""

    account: Account
    expires_at: int
    role: str

    def to_vendor(self) -> dict[str, Any]:
        return {
            "TmpSecretId": self.account.secret_id,
            "TmpSecretKey": self.account.secret_key,
            "Token": self.account.token,
        }


@dataclass(slots=True, kw_only=True)
class _Role:
    name: str
    arn: str
    principals: frozenset[str] | None  # SecretIds allowed to AssumeRole; None: any known key
    web_identities: dict[str, str] = field(default_factory=dict)  # ProviderId -> accepted token


class Identity:
    """Roles, web identities, the instance role, and every temporary credential issued.

    Args:
        world: issued credentials are added to it as accounts (with their token).
        clock: Unix seconds (the protocol core's clock).
        seed: seeds generated ids and keys.
        lifetime: cap on each issued credential's life in seconds (None: as requested).
    """

    def __init__(
        self,
        world: World,
        *,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
        lifetime: float | None = None,
    ) -> None:
        self.world = world
        self.lifetime = lifetime
        self._clock = clock
        self._rng = random.Random(seed ^ 0x5715)
        self._lock = threading.RLock()
        self._roles: dict[str, _Role] = {}
        self._issued: dict[str, IssuedCredential] = {}
        self.instance_role: str | None = None
        self._instance_current: IssuedCredential | None = None

    # ----- setup (tests, demo) -----------------------------------------------------------

    def add_role(self, name: str, *, principals: frozenset[str] | None = None) -> str:
        """Create a role; returns its ARN. ``principals``: SecretIds allowed to assume it."""
        arn = role_arn(name)
        with self._lock:
            self._roles[arn] = _Role(name=name, arn=arn, principals=principals)
        return arn

    def add_web_identity(self, arn: str, *, provider_id: str, token: str) -> None:
        """Let holders of ``token`` from identity provider ``provider_id`` assume role ``arn``."""
        with self._lock:
            self._roles[arn].web_identities[provider_id] = token

    def set_instance_role(self, name: str | None) -> None:
        """Bind a CAM role to the simulated instance (None: no role, metadata answers 404)."""
        with self._lock:
            if name is not None and role_arn(name) not in self._roles:
                self.add_role(name)
            self.instance_role = name
            self._instance_current = None

    # ----- issued credentials ------------------------------------------------------------

    @property
    def issued(self) -> tuple[IssuedCredential, ...]:
        with self._lock:
            return tuple(self._issued.values())

    def issue(self, role: str, duration: float = DEFAULT_DURATION) -> IssuedCredential:
        """Mint a temporary credential for ``role`` living ``duration`` s (capped by ``lifetime``)."""
        life = min(duration, self.lifetime) if self.lifetime is not None else duration
        with self._lock:
            rng = self._rng
            account = Account(
                secret_id="AKID" + "".join(rng.choice(_ALNUM) for _ in range(32)),
                secret_key="".join(rng.choice(_ALNUM) for _ in range(32)),
                token="".join(rng.choice(_ALNUM) for _ in range(96)),
            )
            issued = IssuedCredential(account=account, expires_at=int(self._clock() + life), role=role)
            self._issued[account.secret_id] = issued
        self.world.add_account(account)
        return issued

    def expire(self, secret_id: str | None = None) -> int:
        """End issued credentials now (one, or all): a revoked session, or a clock jump.

        Returns how many were ended; the instance role hands out a fresh one on the next read.
        """
        now = int(self._clock())
        with self._lock:
            ended = [i for i in self._issued.values() if secret_id in (None, i.account.secret_id)]
            for issued in ended:
                ended_now = replace(issued, expires_at=min(issued.expires_at, now))
                self._issued[issued.account.secret_id] = ended_now
            self._instance_current = None
        return len(ended)

    def check_live(self, secret_id: str) -> None:
        """Refuse an issued credential after its expiry (the hook the Live API calls).

        Raises:
            VendorError: AuthFailure.TokenFailure.
        """
        issued = self._issued.get(secret_id)
        if issued is not None and self._clock() >= issued.expires_at:
            raise VendorError("AuthFailure.TokenFailure", "The token has expired.")

    def instance_credential(self) -> IssuedCredential | None:
        """The instance role's current credential, rotated once less than half its life remains."""
        with self._lock:
            if self.instance_role is None:
                return None
            current = self._instance_current
            full = self.lifetime if self.lifetime is not None else DEFAULT_DURATION
            if current is None or current.expires_at - self._clock() <= full / 2:
                current = self.issue(role_arn(self.instance_role), DEFAULT_DURATION)
                self._instance_current = current
            return current

    # ----- STS ---------------------------------------------------------------------------

    def handle_sts(self, method: str, headers: Mapping[str, str], body: bytes) -> bytes:
        """One STS request (lower-case ``headers``); returns the JSON body (errors included)."""
        try:
            if method.upper() != "POST":
                raise VendorError("InvalidParameter", "STS actions are called with POST here.")
            action = headers.get("x-tc-action", "")
            version = headers.get("x-tc-version", "").strip()
            if version != STS_VERSION:
                raise VendorError(
                    "NoSuchVersion", f"The requested version `{version}` of service `sts` does not exist."
                )
            if not headers.get("x-tc-region", "").strip():
                raise VendorError("MissingParameter", "The request is missing a required parameter `Region`.")
            params = json_params(body)
            if action == "AssumeRole":
                caller = authenticate(
                    headers,
                    body,
                    method="POST",
                    service=STS_SERVICE,
                    account=self.world.account,
                    check_live=self.check_live,
                    now=self._clock(),
                )
                issued = self._assume_role(caller, params)
            else:
                issued = self._assume_role_with_web_identity(params)
        except VendorError as err:
            return error_body(err.code, err.message, self._id())
        return orjson.dumps(
            {
                "Response": {
                    "Credentials": issued.to_vendor(),
                    "ExpiredTime": issued.expires_at,
                    "Expiration": format_publish_time(issued.expires_at),
                    "RequestId": self._id(),
                }
            }
        )

    def _role(self, params: Mapping[str, Any]) -> _Role:
        arn = params.get("RoleArn")
        session = params.get("RoleSessionName")
        if not isinstance(arn, str) or not arn or not isinstance(session, str) or not session:
            raise VendorError("InvalidParameter.ParamError", "RoleArn and RoleSessionName are required.")
        role = self._roles.get(arn)
        if role is None:
            raise VendorError("ResourceNotFound.RoleNotFound", f"The role `{arn}` does not exist.")
        return role

    def _assume_role(self, caller: str, params: Mapping[str, Any]) -> IssuedCredential:
        only(params, _ASSUME_PARAMS)
        role = self._role(params)
        if role.principals is not None and caller not in role.principals:
            raise VendorError("UnauthorizedOperation", "The caller is not allowed to assume this role.")
        return self.issue(role.arn, _duration(params))

    def _assume_role_with_web_identity(self, params: Mapping[str, Any]) -> IssuedCredential:
        only(params, _WEB_PARAMS)
        role = self._role(params)
        provider = params.get("ProviderId")
        token = params.get("WebIdentityToken")
        if not isinstance(provider, str) or not isinstance(token, str) or not provider or not token:
            raise VendorError("InvalidParameter.ParamError", "ProviderId and WebIdentityToken are required.")
        wanted = role.web_identities.get(provider)
        if wanted is None or not hmac.compare_digest(wanted.encode(), token.encode()):
            raise VendorError("InvalidParameter.WebIdentityTokenError", "The WebIdentityToken is invalid.")
        return self.issue(role.arn, _duration(params))

    def _id(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


def _duration(params: Mapping[str, Any]) -> int:
    value = params.get("DurationSeconds", DEFAULT_DURATION)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_DURATION:
        raise VendorError("InvalidParameter.ParamError", f"DurationSeconds must be 1 to {MAX_DURATION}.")
    return value
