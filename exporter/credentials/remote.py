"""The network calls behind temporary credentials: CVM metadata, STS AssumeRole and AssumeRoleWithWebIdentity.

Field names, paths and parameters follow the official SDK (``tencentcloud.common.credential``:
``CVMRoleCredential``, ``STSAssumeRoleCredential``, ``OIDCRoleArnCredential``) and the STS API
(version 2018-08-13): the metadata service answers ``cam/security-credentials/`` with the role
name and ``cam/security-credentials/<role>`` with ``TmpSecretId``/``TmpSecretKey``/``Token``/
``ExpiredTime`` and ``Code: Success``; STS answers ``Response.Credentials.{TmpSecretId,
TmpSecretKey,Token}`` and ``Response.ExpiredTime``.

Every failure becomes a ``CredentialError`` whose message names the service and the reason,
raised outside the ``except`` block so no request (with its signed headers) rides along in a
traceback; vendor messages are scrubbed of known secrets and truncated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from exporter.credentials.secret import Credential, CredentialError, Secret
from exporter.redaction import SECRETS

__all__ = [
    "METADATA_TIMEOUT",
    "STS_REGION",
    "STS_TIMEOUT",
    "STS_VERSION",
    "Issued",
    "assume_role",
    "assume_role_with_web_identity",
    "cvm_role_credential",
]

METADATA_TIMEOUT = 1.0  # off Tencent Cloud the metadata host does not answer: fail fast
STS_TIMEOUT = 5.0
STS_VERSION = "2018-08-13"
STS_REGION = "ap-guangzhou"  # what the official SDK's STSAssumeRoleCredential signs with
_ROLE_PATH = "cam/security-credentials/"
_MAX_MESSAGE = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class Issued:
    """A temporary credential and the Unix second it stops working."""

    credential: Credential
    expiry: float


def _short(text: str) -> str:
    text = SECRETS.scrub_text(text.strip())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def _network_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return f"no answer within {timeout:g}s"
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {_short(detail)}" if detail else type(exc).__name__


def _issued(fields: Mapping[str, Any], expired_time: object, what: str) -> Issued:
    """The credential in ``fields`` (Tmp* names), added to the redaction store before anything else."""
    secret_id, key, token = fields.get("TmpSecretId"), fields.get("TmpSecretKey"), fields.get("Token")
    if not all(isinstance(v, str) and v for v in (secret_id, key, token)):
        raise CredentialError(f"{what}: reply lacks TmpSecretId, TmpSecretKey or Token")
    assert isinstance(secret_id, str) and isinstance(key, str) and isinstance(token, str)
    expiry = float(expired_time) if isinstance(expired_time, (int, float)) else None
    SECRETS.add_all((key, token), expires_at=expiry)
    if expiry is None or isinstance(expired_time, bool):
        raise CredentialError(f"{what}: reply lacks a numeric ExpiredTime")
    return Issued(credential=Credential(secret_id, Secret(key), Secret(token)), expiry=expiry)


async def cvm_role_credential(
    endpoint: str, *, role: str | None = None, timeout: float = METADATA_TIMEOUT
) -> Issued:
    """The instance's CAM role credential from the metadata service at ``endpoint``.

    A dedicated client with ``trust_env=False``: the metadata service is on the instance's own
    network and must not be sent through an HTTP proxy meant for public APIs.

    Raises:
        CredentialError: unreachable, no role bound (404), or a reply that is not a credential.
    """
    base = endpoint if endpoint.endswith("/") else endpoint + "/"
    what = f"metadata service {base}"
    failure: str | None = None
    try:
        async with asyncio.timeout(timeout), httpx.AsyncClient(trust_env=False, timeout=timeout) as http:
            if role is None:
                reply = await http.get(base + _ROLE_PATH)
                if reply.status_code == 404:
                    failure = f"{what}: no CAM role is bound to this instance"
                elif reply.status_code != 200:
                    failure = f"{what}: HTTP {reply.status_code} for {_ROLE_PATH}"
                else:
                    role = reply.text.strip().splitlines()[0].strip() if reply.text.strip() else None
                    if not role:
                        failure = f"{what}: no CAM role is bound to this instance"
            if failure is None:
                reply = await http.get(base + _ROLE_PATH + str(role))
                body = reply.content
                status = reply.status_code
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        failure = f"{what} unreachable: {_network_reason(exc, timeout)}"
    if failure is not None:
        raise CredentialError(failure)
    if status != 200:
        raise CredentialError(f'{what}: HTTP {status} for role "{role}"')
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CredentialError(f'{what}: role "{role}": reply is not a JSON object')
    if data.get("Code") != "Success":
        code = _short(str(data.get("Code")))
        raise CredentialError(f'{what}: role "{role}": Code is {code!r}, not Success')
    return _issued(data, data.get("ExpiredTime"), what)


def _host(endpoint: str) -> tuple[str, str]:
    url = httpx.URL(endpoint)
    if url.scheme not in ("http", "https") or not url.host:
        raise CredentialError(f"sts_endpoint {endpoint!r}: want http(s)://host[:port]")
    host = url.netloc.decode("ascii")
    return f"{url.scheme}://{host}/", host


async def _call_sts(
    http: httpx.AsyncClient, endpoint: str, action: str, headers: dict[str, str], payload: bytes
) -> Issued:
    url, _ = _host(endpoint)
    what = f"STS {action} at {endpoint}"
    headers = {**headers, "X-TC-Language": "en-US"}
    failure: str | None = None
    try:
        async with asyncio.timeout(STS_TIMEOUT):
            reply = await http.post(url, content=payload, headers=headers, timeout=STS_TIMEOUT)
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        failure = f"{what} unreachable: {_network_reason(exc, STS_TIMEOUT)}"
    if failure is not None:
        raise CredentialError(failure)
    try:
        data = json.loads(reply.content)
    except ValueError:
        data = None
    response = data.get("Response") if isinstance(data, dict) else None
    if not isinstance(response, dict):
        raise CredentialError(f"{what}: HTTP {reply.status_code}, not an API response")
    error = response.get("Error")
    if isinstance(error, dict):
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        raise CredentialError(f"{what}: {_short(code)}: {_short(message)}")
    fields = response.get("Credentials")
    if not isinstance(fields, dict):
        raise CredentialError(f"{what}: reply lacks Credentials")
    return _issued(fields, response.get("ExpiredTime"), what)


def _params(role_arn: str, session_name: str, duration: float | None, **extra: str) -> bytes:
    params: dict[str, object] = {**extra, "RoleArn": role_arn, "RoleSessionName": session_name}
    if duration is not None:
        params["DurationSeconds"] = int(duration)
    return json.dumps(params, separators=(",", ":")).encode("utf-8")


async def assume_role(
    http: httpx.AsyncClient,
    *,
    endpoint: str,
    credential: Credential,
    role_arn: str,
    session_name: str,
    duration: float | None,
    clock: Callable[[], float],
) -> Issued:
    """STS ``AssumeRole``, TC3-signed with service ``sts`` by ``credential``.

    Raises:
        CredentialError: STS unreachable, refusing (its code and message), or a malformed reply.
    """
    from exporter.tencent.signing import tc3_headers  # the signer imports this package

    payload = _params(role_arn, session_name, duration)
    _, host = _host(endpoint)
    headers = tc3_headers(
        credential=credential,
        host=host,
        service="sts",
        action="AssumeRole",
        version=STS_VERSION,
        region=STS_REGION,
        payload=payload,
        timestamp=int(clock()),
    )
    return await _call_sts(http, endpoint, "AssumeRole", headers, payload)


async def assume_role_with_web_identity(
    http: httpx.AsyncClient,
    *,
    endpoint: str,
    region: str,
    provider_id: str,
    web_identity_token: Secret,
    role_arn: str,
    session_name: str,
    duration: float | None,
    clock: Callable[[], float],
) -> Issued:
    """STS ``AssumeRoleWithWebIdentity``: unsigned (``Authorization: SKIP``, as the SDK sends it).

    Raises:
        CredentialError: STS unreachable, refusing (its code and message), or a malformed reply.
    """
    SECRETS.add(web_identity_token.reveal())
    payload = _params(
        role_arn,
        session_name,
        duration,
        ProviderId=provider_id,
        WebIdentityToken=web_identity_token.reveal(),
    )
    _, host = _host(endpoint)
    headers = {
        "Authorization": "SKIP",
        "Content-Type": "application/json",
        "Host": host,
        "X-TC-Action": "AssumeRoleWithWebIdentity",
        "X-TC-Version": STS_VERSION,
        "X-TC-Region": region,
        "X-TC-Timestamp": str(int(clock())),
    }
    return await _call_sts(http, endpoint, "AssumeRoleWithWebIdentity", headers, payload)
