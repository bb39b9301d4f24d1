"""Every way a poll can fail, as one exception tree, and every vendor code in one class.

::

    PollError                    .code = bounded label value, .error_class, .hint
    ├── ApiError                 HTTP 200 with Response.Error {Code, Message}
    │   └── Throttled            RequestLimitExceeded*
    ├── PollTimeout              "Timeout"
    ├── NetworkError             "NetworkError" (refused, reset, DNS, proxy)
    ├── HTTPStatusError          "HTTPError" (non-200 status)
    └── BadResponse              "BadResponse" (non-JSON, not this action's reply, too large)

A failure is never data: the runner catches ``PollError`` and leaves the previous snapshot,
the gauges and pending drops exactly as they were. No httpx exception leaves the client.

**Error classes** (SPEC section 9): what the poll step does next depends only on
:attr:`PollError.error_class`, looked up in one table (:data:`CODES`) that also renders the
README table (a test keeps the two equal):

- ``throttled``: lower the account's budget, retry within the poll;
- ``transient``: retry within the poll, then ``poll_failed`` at warning; any code not in the
  table is transient (a vendor that invents a code should not silence a region for good);
- ``credentials``: renew the credential once and retry, then treat as blocked;
- ``blocked``: something an operator must fix; ``poll_blocked`` at error with the hint,
  polled again at the normal cadence.

**Bounded strings** (vendor text is untrusted): ``.code`` is the label of
``api_requests_total``, so only the documented codes appear verbatim and anything else is
``Other`` (a vendor reflecting random codes cannot grow the series); the raw code is kept
truncated to :data:`MAX_CODE_CHARS` in ``.raw_code`` for logs. ``.message`` and
``.request_id`` are truncated too. Messages never carry a request header, so a secret cannot
leak through ``str(exc)`` or a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CODES",
    "MAX_CODE_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_REQUEST_ID_CHARS",
    "OK_CODE",
    "OTHER_CODE",
    "ApiError",
    "BadResponse",
    "CodeInfo",
    "ErrorClass",
    "HTTPStatusError",
    "NetworkError",
    "PollError",
    "PollTimeout",
    "Throttled",
    "api_error",
    "classify",
    "error_class_table",
    "hint_for",
    "label_code",
    "shorten",
]

#: The ``code`` label of a successful request (SPEC section 6).
OK_CODE = "OK"
#: The ``code`` label of every vendor code outside :data:`CODES`.
OTHER_CODE = "Other"
#: Raw vendor codes are cut to this many characters before they reach a log line.
MAX_CODE_CHARS = 64
#: Vendor messages and our own failure texts are cut to this many characters.
MAX_MESSAGE_CHARS = 500
#: RequestIds are 36-character UUIDs; anything longer is cut.
MAX_REQUEST_ID_CHARS = 64


class ErrorClass(StrEnum):
    """What the poll step does with a failure (SPEC section 9 "Error classes")."""

    THROTTLED = "throttled"
    TRANSIENT = "transient"
    CREDENTIALS = "credentials"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeInfo:
    """One row of the error-class table: a code (or a ``Prefix.*`` family) and what it means."""

    code: str
    error_class: ErrorClass
    hint: str | None = None


def _r(code: str, error_class: ErrorClass, hint: str | None = None) -> CodeInfo:
    return CodeInfo(code=code, error_class=error_class, hint=hint)


_T, _X, _C, _B = ErrorClass.THROTTLED, ErrorClass.TRANSIENT, ErrorClass.CREDENTIALS, ErrorClass.BLOCKED

_HINT_CREDENTIALS = (
    "the key or token was rejected even after one renewal: check secret_id/secret_key "
    "(or the role/profile the credentials come from)"
)
_HINT_PERMISSION = "grant live:DescribeBackupStreamList to this key or role in CAM"
_HINT_SERVICE = (
    "CSS is not usable for this account (not activated, frozen, stopped or in arrears): check the CSS console"
)
_HINT_PARAMETER = "the vendor rejected the request parameters: check the region and the watched stream_names"
_HINT_IP = "the key's CAM IP restriction does not admit this host's egress IP (or a proxy's)"
_HINT_ACTION = (
    "this endpoint does not offer DescribeBackupStreamList (the international site does not have it)"
)

#: Every code we know, in README order: SPEC section 2's action codes, the vendor's common
#: codes, and our own transport codes. A ``*`` row is a family matched by prefix (after
#: the exact codes); a code matched only by a family is labelled ``Other``.
CODES: tuple[CodeInfo, ...] = (
    # throttled
    _r("RequestLimitExceeded", _T, "lower rate_limit, or check other users of the same key"),
    _r("RequestLimitExceeded.GlobalRegionUinLimitExceeded", _T),
    _r("RequestLimitExceeded.IPLimitExceeded", _T),
    _r("RequestLimitExceeded.UinLimitExceeded", _T),
    _r("RequestLimitExceeded*", _T),
    # transient
    _r("InternalError", _X),
    _r("InternalError.CallOtherSvrError", _X),
    _r("InternalError.ConfigNotExist", _X),
    _r("InternalError.GetBizidError", _X),
    _r("InternalError.GetStreamInfoError", _X),
    _r("InternalError.GetUpstreamInfoError", _X),
    _r("InternalError.StreamStatusError", _X),
    _r("InternalError.UpdateDataError", _X),
    _r("InternalError*", _X),
    _r("FailedOperation", _X),
    _r("FailedOperation.CallOtherSvrFailed", _X),
    _r("FailedOperation*", _X),
    _r("ServiceUnavailable", _X),
    _r("ResourceUnavailable", _X),
    _r("ResourceInsufficient", _X),
    _r("ResourceInUse", _X),
    _r("LimitExceeded", _X),
    _r("HTTPError", _X, "a non-200 status, usually from a gateway or proxy"),
    _r("Timeout", _X, "no complete reply within request_timeout"),
    _r("NetworkError", _X, "connection refused, reset, DNS, TLS or proxy failure"),
    _r("BadResponse", _X, "the reply is not a DescribeBackupStreamList response"),
    # credentials
    _r("AuthFailure.TokenFailure", _C, _HINT_CREDENTIALS),
    _r("AuthFailure.SecretIdNotFound", _C, _HINT_CREDENTIALS),
    _r("AuthFailure.InvalidSecretId", _C, _HINT_CREDENTIALS),
    _r("AuthFailure.SignatureFailure", _C, _HINT_CREDENTIALS),
    # blocked
    _r(
        "AuthFailure.SignatureExpire",
        _B,
        "the request time is more than 5 minutes off the vendor's: check this host's clock (NTP)",
    ),
    _r("AuthFailure.UnauthorizedOperation", _B, _HINT_PERMISSION),
    _r("AuthFailure.InvalidAuthorization", _B, "the Authorization header was malformed"),
    _r("AuthFailure.MFAFailure", _B, "the key requires MFA, which an exporter cannot provide"),
    _r("AuthFailure.*", _B),
    _r("UnauthorizedOperation", _B, _HINT_PERMISSION),
    _r(
        "InternalError.NotPermmitOperat",
        _B,
        "the vendor does not permit this operation for the account: check CAM and the CSS service state",
    ),
    _r("ResourceNotFound.ForbidService", _B, _HINT_SERVICE),
    _r("ResourceNotFound.FreezeService", _B, _HINT_SERVICE),
    _r("ResourceNotFound.StopService", _B, _HINT_SERVICE),
    _r("ResourceNotFound.UserDisableService", _B, _HINT_SERVICE),
    _r("ResourceNotFound.UserNotExist", _B, _HINT_SERVICE),
    _r("ResourceNotFound", _B, _HINT_SERVICE),
    _r("ResourceNotFound.*", _B, _HINT_SERVICE),
    _r("InvalidParameter", _B, _HINT_PARAMETER),
    _r("InvalidParameterValue", _B, _HINT_PARAMETER),
    _r("InvalidParameter*", _B, _HINT_PARAMETER),
    _r("MissingParameter", _B, _HINT_PARAMETER),
    _r("UnknownParameter", _B, _HINT_PARAMETER),
    _r("UnsupportedRegion", _B, "this region does not offer the action: remove it from regions"),
    _r("IpNotInWhitelist", _B, _HINT_IP),
    _r("IpInBlacklist", _B, _HINT_IP),
    _r(
        "ResponseSizeLimitExceeded",
        _B,
        "the full list is too large for one reply: configure a watch list (stream_names) for this account",
    ),
    _r("RequestSizeLimitExceeded", _B),
    _r("InvalidAction", _B, _HINT_ACTION),
    _r("ActionOffline", _B, _HINT_ACTION),
    _r("NoSuchProduct", _B, _HINT_ACTION),
    _r("NoSuchVersion", _B, _HINT_ACTION),
    _r("UnsupportedOperation", _B),
    _r("UnsupportedProtocol", _B),
    _r("InvalidRequest", _B),
    _r("DryRunOperation", _B),
)

_EXACT: Mapping[str, CodeInfo] = {row.code: row for row in CODES if not row.code.endswith("*")}
# Longest prefix first, so "InternalError.NotPermmitOperat"-like exact rows win (above) and
# "InvalidParameter*" does not shadow a longer family.
_FAMILIES: tuple[tuple[str, CodeInfo], ...] = tuple(
    sorted(
        ((row.code.rstrip("*"), row) for row in CODES if row.code.endswith("*")),
        key=lambda item: -len(item[0]),
    )
)
_UNKNOWN = CodeInfo(code=OTHER_CODE, error_class=ErrorClass.TRANSIENT)
#: Worth retrying within the same poll as is; credentials need a renewal first, blocked ones
#: fail the same way again.
_RETRYABLE = frozenset((ErrorClass.THROTTLED, ErrorClass.TRANSIENT))


def _lookup(code: str) -> CodeInfo:
    row = _EXACT.get(code)
    if row is not None:
        return row
    for prefix, family in _FAMILIES:
        if code.startswith(prefix):
            return family
    return _UNKNOWN


def classify(code: str) -> ErrorClass:
    """The class of a vendor (or transport) code; an unknown code is ``transient``."""
    return _lookup(code).error_class


def hint_for(code: str) -> str | None:
    """What the operator should do about ``code``, when there is something to say."""
    return _lookup(code).hint


def label_code(code: str) -> str:
    """The bounded ``code`` label value: a documented code verbatim, anything else ``Other``."""
    return code if code in _EXACT else OTHER_CODE


def error_class_table() -> str:
    """The README "Error classes" table, rendered from :data:`CODES`."""
    lines = ["| code | class | what to do |", "| --- | --- | --- |"]
    for row in CODES:
        lines.append(f"| `{row.code}` | {row.error_class} | {row.hint or ''} |")
    lines.append(f"| any other code (label `{OTHER_CODE}`) | {ErrorClass.TRANSIENT} | |")
    return "\n".join(lines) + "\n"


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class PollError(Exception):
    """A poll that produced no snapshot.

    Attributes:
        code: the bounded ``api_requests_total`` label value.
        raw_code: the code as received, truncated, for logs.
        error_class: see :class:`ErrorClass`.
        hint: what an operator should do, or ``None``.
        retryable: ``error_class`` is throttled or transient.
    """

    code: str = "Error"

    def __init__(self, message: str, *, request_id: str = "") -> None:
        message = shorten(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.request_id = shorten(request_id, MAX_REQUEST_ID_CHARS)
        self.raw_code = self.code

    @property
    def error_class(self) -> ErrorClass:
        return classify(self.raw_code)

    @property
    def hint(self) -> str | None:
        return hint_for(self.raw_code)

    @property
    def retryable(self) -> bool:
        return self.error_class in _RETRYABLE


class ApiError(PollError):
    """The vendor answered with ``Response.Error``."""

    def __init__(self, code: str, message: str, *, request_id: str = "") -> None:
        raw = shorten(code, MAX_CODE_CHARS)
        super().__init__(f"{raw}: {message}", request_id=request_id)
        self.code = label_code(code)
        # Classified on the full code (a prefix family still matches a cut one), logged cut.
        self._class = classify(code)
        self._hint = hint_for(code)
        self.raw_code = raw

    @property
    def error_class(self) -> ErrorClass:
        return self._class

    @property
    def hint(self) -> str | None:
        return self._hint


class Throttled(ApiError):
    """``RequestLimitExceeded*``: retryable, and a signal to slow the account down."""


class PollTimeout(PollError):
    code = "Timeout"


class NetworkError(PollError):
    code = "NetworkError"


class HTTPStatusError(PollError):
    """A non-200 status. Transient whatever the status: a 400 or 403 from a gateway or proxy
    says nothing about the account, and the vendor itself answers HTTP 200 with an error."""

    code = "HTTPError"

    def __init__(self, status: int, message: str = "", *, request_id: str = "") -> None:
        super().__init__(f"HTTP {status} {message}".strip(), request_id=request_id)
        self.status = status


class BadResponse(PollError):
    code = "BadResponse"


def api_error(code: str, message: str, *, request_id: str = "") -> ApiError:
    """Build the right ApiError subclass for a vendor code."""
    cls = Throttled if classify(code) is ErrorClass.THROTTLED else ApiError
    return cls(code, message, request_id=request_id)
