"""Independent TC3-HMAC-SHA256 verification, written from the vendor's signature-v3 page.

Deliberately shares no code with ``exporter.tencent.signing``: the simulator is the check
on our signer, so a mistake copied into both would pass every test. Only ``hashlib`` and
``hmac`` are used.

Vendor rules applied here: canonical URI ``/``, empty canonical query for POST, every header
named in ``SignedHeaders`` (which must include ``content-type`` and ``host``) written as
``name:value`` with name and value lower-cased and trimmed, the payload hash over the exact
body bytes (or over ``UNSIGNED-PAYLOAD`` when ``X-TC-Content-SHA256`` says so), the credential
scope date being the UTC date of ``X-TC-Timestamp``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from exporter.simulator.errors import VendorError

__all__ = [
    "ALGORITHM",
    "AuthorizationFields",
    "expected_signature",
    "parse_authorization",
    "verify_signature",
]

ALGORITHM: Final = "TC3-HMAC-SHA256"
_REQUIRED_SIGNED: Final = frozenset({"content-type", "host"})
_UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
_INVALID = "AuthFailure.InvalidAuthorization"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationFields:
    """What a client claims in its Authorization header (nothing here is secret)."""

    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str | None) -> AuthorizationFields:
    """Split ``TC3-HMAC-SHA256 Credential=.../tc3_request, SignedHeaders=..., Signature=...``.

    Raises:
        VendorError: AuthFailure.InvalidAuthorization, as the vendor does for a missing or
            non-standard header.
    """
    if not value:
        raise VendorError(_INVALID, "The Authorization header is missing.")
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise VendorError(_INVALID, f"Authorization must use {ALGORITHM}.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, field_value = part.strip().partition("=")
        if sep:
            fields[name] = field_value
    scope = fields.get("Credential", "").split("/")
    signed = tuple(fields.get("SignedHeaders", "").split(";"))
    sig = fields.get("Signature", "")
    if len(scope) != 4 or scope[3] != "tc3_request" or not all(scope) or not all(signed) or not sig:
        raise VendorError(_INVALID, "Authorization does not follow the TC3-HMAC-SHA256 format.")
    if not set(signed) >= _REQUIRED_SIGNED:
        raise VendorError(_INVALID, "SignedHeaders must include content-type and host.")
    return AuthorizationFields(
        secret_id=scope[0], date=scope[1], service=scope[2], signed_headers=signed, signature=sig
    )


def _hmac_sha256(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def expected_signature(
    *,
    secret_key: str,
    method: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    payload: bytes,
    timestamp: str,
    date: str,
    service: str,
) -> str:
    """The hex signature the vendor computes for this request under ``secret_key``.

    ``headers`` must have lower-case names (as the protocol core normalises them).

    Raises:
        VendorError: AuthFailure.SignatureFailure when a signed header is absent.
    """
    try:
        canonical_headers = "".join(f"{name}:{headers[name].strip().lower()}\n" for name in signed_headers)
    except KeyError:
        raise VendorError(
            "AuthFailure.SignatureFailure", "A header listed in SignedHeaders is missing."
        ) from None
    if headers.get("x-tc-content-sha256", "").strip().upper() == _UNSIGNED_PAYLOAD:
        payload = _UNSIGNED_PAYLOAD.encode("ascii")
    canonical = "\n".join(
        (
            method.upper(),
            "/",
            "",
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(payload).hexdigest(),
        )
    )
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join((ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()))
    key = _hmac_sha256(("TC3" + secret_key).encode("utf-8"), date)
    key = _hmac_sha256(key, service)
    key = _hmac_sha256(key, "tc3_request")
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def verify_signature(
    fields: AuthorizationFields,
    *,
    secret_key: str,
    method: str,
    headers: Mapping[str, str],
    payload: bytes,
    timestamp: int,
    service: str,
) -> None:
    """Check scope and signature of an already parsed Authorization header.

    Raises:
        VendorError: AuthFailure.SignatureFailure for a wrong service, a scope date that is not
            the UTC date of the timestamp, or a signature mismatch (compared in constant time).
    """
    failure = "AuthFailure.SignatureFailure"
    message = "The provided credentials could not be validated. Please check your signature is correct."
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    if fields.service != service or fields.date != date:
        raise VendorError(failure, message)
    wanted = expected_signature(
        secret_key=secret_key,
        method=method,
        headers=headers,
        signed_headers=fields.signed_headers,
        payload=payload,
        timestamp=str(timestamp),
        date=date,
        service=service,
    )
    if not hmac.compare_digest(wanted.encode("ascii"), fields.signature.encode("ascii", "replace")):
        raise VendorError(failure, message)
