"""TC3-HMAC-SHA256 request signing (Tencent Cloud API 3.0), as pure functions.

Everything here is a function of its arguments: no clock, no environment, no I/O. The client
passes the timestamp it took from its injected clock, so a test can pin every byte of a
signed request, and the simulator can recompute the very same pieces to verify one.

The shape follows the vendor's "signature v3" page and, where the page leaves room, the
official ``tencentcloud-sdk-python-common`` signer (``AbstractClient._get_tc3_signature``):
POST, canonical URI ``/``, empty query, signed headers ``content-type;host``, credential
scope ``<UTC date>/<service>/tc3_request``. ``tests/tencent/test_signing.py`` holds us to
byte equality with that SDK.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from exporter.credentials import Credential

__all__ = [
    "ALGORITHM",
    "JSON_CONTENT_TYPE",
    "SIGNED_HEADERS",
    "ParsedAuthorization",
    "SignedParts",
    "authorization_header",
    "canonical_request",
    "credential_scope",
    "parse_authorization",
    "sign",
    "signature",
    "signing_date",
    "string_to_sign",
    "tc3_headers",
]

ALGORITHM = "TC3-HMAC-SHA256"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
SIGNED_HEADERS: tuple[str, ...] = ("content-type", "host")


def signing_date(timestamp: int) -> str:
    """The UTC calendar date of ``timestamp``: the vendor rejects a scope dated in local time."""
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def credential_scope(date: str, service: str) -> str:
    return f"{date}/{service}/tc3_request"


def canonical_request(
    *,
    headers: Mapping[str, str],
    payload: bytes,
    signed_headers: Sequence[str] = SIGNED_HEADERS,
    method: str = "POST",
    uri: str = "/",
    query: str = "",
) -> str:
    """Build the canonical request text.

    Args:
        headers: header name -> value; names are matched case-insensitively, so a verifier
            can pass the headers exactly as they arrived.
        payload: the exact body bytes sent; its SHA-256 is what binds the body to the signature.
        signed_headers: lower-case names, in the order they appear in ``SignedHeaders``.

    Raises:
        KeyError: a signed header is missing from ``headers``.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    # Vendor rule: header names and values lower-cased and trimmed, one "name:value\n" each.
    canonical_headers = "".join(f"{name}:{lowered[name].strip().lower()}\n" for name in signed_headers)
    return "\n".join(
        (
            method,
            uri,
            query,
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(payload).hexdigest(),
        )
    )


def string_to_sign(*, canonical: str, timestamp: int, service: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    scope = credential_scope(signing_date(timestamp), service)
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signature(*, secret_key: str, date: str, service: str, to_sign: str) -> str:
    """Hex HMAC of ``to_sign`` under the key derived from secret, date and service."""
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    k_service = _hmac(k_date, service)
    k_signing = _hmac(k_service, "tc3_request")
    return hmac.new(k_signing, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(*, secret_id: str, date: str, service: str, sig: str) -> str:
    return (
        f"{ALGORITHM} Credential={secret_id}/{credential_scope(date, service)}, "
        f"SignedHeaders={';'.join(SIGNED_HEADERS)}, Signature={sig}"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedParts:
    """Every intermediate of one signature, for verifiers and for debugging a mismatch.

    Holds no secret: the derived key never leaves ``signature()``.
    """

    canonical_request: str
    string_to_sign: str
    date: str
    signature: str


def sign(
    *,
    secret_key: str,
    service: str,
    timestamp: int,
    headers: Mapping[str, str],
    payload: bytes,
    signed_headers: Sequence[str] = SIGNED_HEADERS,
) -> SignedParts:
    """Compute canonical request, string to sign and signature in one go.

    The simulator calls this with the headers it received, the body bytes and the secret it
    knows for the claimed SecretId, then compares ``signature`` in constant time.
    """
    canonical = canonical_request(headers=headers, payload=payload, signed_headers=signed_headers)
    to_sign = string_to_sign(canonical=canonical, timestamp=timestamp, service=service)
    date = signing_date(timestamp)
    sig = signature(secret_key=secret_key, date=date, service=service, to_sign=to_sign)
    return SignedParts(canonical_request=canonical, string_to_sign=to_sign, date=date, signature=sig)


def tc3_headers(
    *,
    credential: Credential,
    host: str,
    service: str,
    action: str,
    version: str,
    region: str,
    payload: bytes,
    timestamp: int,
    content_type: str = JSON_CONTENT_TYPE,
) -> dict[str, str]:
    """All headers of one signed API 3.0 request.

    ``host`` must be exactly the ``Host`` header that goes on the wire (``host[:port]``,
    default port omitted), since it is signed. ``X-TC-Token`` is added only for temporary
    credentials; it is not signed, as in the official SDK.
    """
    headers = {
        "Content-Type": content_type,
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Version": version,
        "X-TC-Region": region,
        "X-TC-Timestamp": str(timestamp),
    }
    if credential.token is not None:
        headers["X-TC-Token"] = credential.token.reveal()
    parts = sign(
        secret_key=credential.secret_key.reveal(),
        service=service,
        timestamp=timestamp,
        headers=headers,
        payload=payload,
    )
    headers["Authorization"] = authorization_header(
        secret_id=credential.secret_id, date=parts.date, service=service, sig=parts.signature
    )
    return headers


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedAuthorization:
    """The fields of an ``Authorization: TC3-HMAC-SHA256 ...`` header."""

    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> ParsedAuthorization:
    """Split an Authorization header into its fields, for a verifier.

    Raises:
        ValueError: not a TC3 header, or a field is missing or malformed. The message never
            repeats the header (it carries a signature).
    """
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise ValueError("authorization: unsupported algorithm")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, field_value = item.strip().partition("=")
        if not sep:
            raise ValueError("authorization: malformed field")
        fields[name] = field_value
    try:
        credential, headers, sig = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
    except KeyError as exc:
        raise ValueError(f"authorization: missing {exc.args[0]}") from None
    scope = credential.split("/")
    if len(scope) != 4 or scope[3] != "tc3_request" or not scope[0]:
        raise ValueError("authorization: malformed credential scope")
    signed = tuple(headers.split(";"))
    if not sig or not all(signed):
        raise ValueError("authorization: empty signature or signed header")
    return ParsedAuthorization(
        secret_id=scope[0], date=scope[1], service=scope[2], signed_headers=signed, signature=sig
    )
