"""Every way a poll can fail, as one exception tree.

::

    PollError                    code label = class attribute or the vendor code
    ├── ApiError                 HTTP 200 with Response.Error {Code, Message}
    │   └── Throttled            RequestLimitExceeded*
    ├── PollTimeout              "Timeout"
    ├── NetworkError             "NetworkError" (refused, reset, DNS)
    ├── HTTPStatusError          "HTTPError" (non-200 status)
    └── BadResponse              "BadResponse" (non-JSON, wrong shape, HTML)

A failure is never data: the runner catches ``PollError`` and leaves the previous snapshot,
the gauges and pending drops exactly as they were. No httpx exception leaves the client.
Messages carry the vendor's words and RequestId but never a request header, so a secret
cannot leak through ``str(exc)`` or a traceback.
"""

from __future__ import annotations

__all__ = [
    "OK_CODE",
    "ApiError",
    "BadResponse",
    "HTTPStatusError",
    "NetworkError",
    "PollError",
    "PollTimeout",
    "Throttled",
    "is_retryable_code",
]

# The ``code`` label of a successful request (SPEC section 6); every failure has its own below.
OK_CODE = "OK"

_RETRYABLE_PREFIXES = ("InternalError", "RequestLimitExceeded", "FailedOperation.CallOtherSvrFailed")


def is_retryable_code(code: str) -> bool:
    """Whether a vendor error code is worth retrying within the same poll.

    Server-side hiccups and throttling are; anything about credentials, permissions,
    parameters or the account's service state will fail the same way again.
    """
    return code.startswith(_RETRYABLE_PREFIXES)


class PollError(Exception):
    """A poll that produced no snapshot. ``code`` is the ``api_requests_total`` label."""

    code: str = "Error"
    retryable: bool = True

    def __init__(self, message: str, *, request_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


class ApiError(PollError):
    """The vendor answered with ``Response.Error``."""

    def __init__(self, code: str, message: str, *, request_id: str = "") -> None:
        super().__init__(f"{code}: {message}", request_id=request_id)
        self.code = code
        self.retryable = is_retryable_code(code)


class Throttled(ApiError):
    """``RequestLimitExceeded*``: retryable, and a signal to slow the account down."""


class PollTimeout(PollError):
    code = "Timeout"


class NetworkError(PollError):
    code = "NetworkError"


class HTTPStatusError(PollError):
    code = "HTTPError"

    def __init__(self, status: int, message: str = "", *, request_id: str = "") -> None:
        super().__init__(f"HTTP {status} {message}".strip(), request_id=request_id)
        self.status = status
        self.retryable = status >= 500 or status == 429


class BadResponse(PollError):
    code = "BadResponse"


def api_error(code: str, message: str, *, request_id: str = "") -> ApiError:
    """Build the right ApiError subclass for a vendor code."""
    cls = Throttled if code.startswith("RequestLimitExceeded") else ApiError
    return cls(code, message, request_id=request_id)


__all__ += ["api_error"]
