"""What the vendor's API gateway checks before any action, for every signed service alike.

One credential check for the Live API (``protocol.py``) and STS ``AssumeRole`` (``sts.py``):
Authorization format, timestamp and its skew, a known SecretId, a temporary credential still
live, the TC3 signature for the service, and the session token (temporary keys must carry
theirs, permanent ones none). Plus the request-shape helpers both share: a required header,
a JSON object body, no undefined parameter.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

import orjson

from exporter.simulator.errors import VendorError
from exporter.simulator.signature import parse_authorization, verify_signature
from exporter.simulator.values import Account

__all__ = ["MAX_SKEW_SECONDS", "authenticate", "error_body", "json_params", "only", "require"]

MAX_SKEW_SECONDS: Final = 300.0


def require(headers: Mapping[str, str], name: str, parameter: str) -> str:
    """The trimmed value of a required header (lower-case ``name``), else MissingParameter."""
    value = headers.get(name, "").strip()
    if not value:
        raise VendorError("MissingParameter", f"The request is missing a required parameter `{parameter}`.")
    return value


def json_params(body: bytes) -> dict[str, Any]:
    """The request parameters: a JSON object (an empty body is ``{}``), else InvalidParameter."""
    try:
        params = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise VendorError("InvalidParameter", "The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise VendorError("InvalidParameter", "The request body must be a JSON object.")
    return params


def only(params: Mapping[str, Any], allowed: Collection[str]) -> None:
    """UnknownParameter for any key the action does not define (the vendor rejects them)."""
    for key in params:
        if key not in allowed:
            raise VendorError("UnknownParameter", f"The parameter `{key}` is not recognized.")


def error_body(code: str, message: str, request_id: str) -> bytes:
    """The vendor's error envelope (HTTP 200, ``Response.Error``)."""
    return orjson.dumps({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}})


def authenticate(
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    service: str,
    account: Callable[[str], Account | None],
    check_live: Callable[[str], None],
    now: float,
    max_skew: float = MAX_SKEW_SECONDS,
) -> str:
    """The SecretId of a correctly signed request (lower-case ``headers``).

    Args:
        account: looks a SecretId up (the world's keys, issued temporary ones included).
        check_live: raises for an issued temporary credential past its expiry.
        now: the gateway's clock, Unix seconds.

    Raises:
        VendorError: AuthFailure.* (or a parameter error for the timestamp), as the vendor.
    """
    fields = parse_authorization(headers.get("authorization"))
    raw_timestamp = require(headers, "x-tc-timestamp", "Timestamp")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise VendorError(
            "InvalidParameterValue", f"The value `{raw_timestamp}` of parameter `Timestamp` is not valid."
        ) from None
    if abs(now - timestamp) > max_skew:
        raise VendorError(
            "AuthFailure.SignatureExpire",
            f"Signature expired. Timestamp is {timestamp}, server time is {int(now)}; "
            f"they may differ by at most {int(max_skew)} seconds.",
        )
    key = account(fields.secret_id)
    if key is None:
        raise VendorError(
            "AuthFailure.SecretIdNotFound",
            "The SecretId is not found, please ensure that your SecretId is correct.",
        )
    check_live(key.secret_id)
    verify_signature(
        fields,
        secret_key=key.secret_key,
        method=method,
        headers=headers,
        payload=body,
        timestamp=timestamp,
        service=service,
    )
    token = headers.get("x-tc-token", "").strip()
    if not hmac.compare_digest((key.token or "").encode(), token.encode()):
        raise VendorError("AuthFailure.TokenFailure", "The provided token is invalid.")
    return key.secret_id
