"""One ``DescribeBackupStreamList`` call over httpx: the body of an HTTP 200, or a PollError.

This is the boundary where transport failures become our own exception tree (as httpx maps
httpcore errors in one place). Nothing httpx-shaped leaves this module: the mapped error is
raised *outside* the ``except`` block, so it carries neither ``__cause__`` nor ``__context__``
pointing at an httpx exception (whose ``.request`` holds the signed headers and the token).
Parsing lives in ``exporter.parse``; this module never looks inside the body.

The credential comes from a ``CredentialProvider`` at every request (``current()``), so a
renewed token is used as soon as it exists; ``client.credentials`` is exposed so the poll
step can force one renewal after a credentials-class failure. Every request sends
``X-TC-Language: en-US`` so the vendor's messages in our logs are English.

**Reply memory.** The body is read into one ``io.BytesIO`` (grown in place; ``getvalue()``
hands over its buffer without a copy) and refused once it passes ``max_body_bytes``. The cap
defaults to :data:`MAX_BODY_BYTES`, 64 MiB: the vendor documents the action for at most
20,000 streams (~9 MB of JSON), so anything near the cap is not a reply we can use.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable

import httpx
import orjson

from exporter import __version__
from exporter.credentials import CredentialProvider
from exporter.redaction import SECRETS
from exporter.tencent.errors import BadResponse, HTTPStatusError, NetworkError, PollError, PollTimeout
from exporter.tencent.signing import tc3_headers

__all__ = ["ACTION", "DEFAULT_ENDPOINT", "LANGUAGE", "MAX_BODY_BYTES", "SERVICE", "VERSION", "TencentClient"]

ACTION = "DescribeBackupStreamList"
VERSION = "2018-08-01"
SERVICE = "live"
DEFAULT_ENDPOINT = "https://live.tencentcloudapi.com"
# 20,000 streams with a few publishers each is ~10 MiB of JSON; anything near this cap is not
# a reply we can use, and reading it unbounded would let a broken proxy exhaust our memory.
MAX_BODY_BYTES = 64 * 1024 * 1024
LANGUAGE = "en-US"
_EMPTY_BODY = b"{}"
_MAX_DETAIL = 200


class TencentClient:
    """Signs and sends ``DescribeBackupStreamList`` for one account through one endpoint.

    Args:
        http: shared client built by the composition root; tests hand in a MockTransport.
        endpoint: ``https://live.tencentcloudapi.com`` or a loopback simulator URL.
        credentials: the account's credential source; ``current()`` is read at every request
            and only ``tc3_headers`` ever reveals the key.
        timeout: the whole exchange (connect, send, wait, read the full body) must fit in it.
        clock: Unix seconds; its integer part is the signed ``X-TC-Timestamp``.
        max_body_bytes: a larger (decoded) body is a ``BadResponse``.

    Raises:
        ValueError: ``endpoint`` is not an absolute http(s) URL without query.
    """

    __slots__ = ("_clock", "_credentials", "_host", "_http", "_max_body", "_timeout", "_url")

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoint: str,
        credentials: CredentialProvider,
        timeout: float,
        clock: Callable[[], float] = time.time,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        try:
            url = httpx.URL(endpoint)
        except httpx.InvalidURL as exc:
            raise ValueError(f"endpoint {endpoint!r}: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host or url.query:
            raise ValueError(f"endpoint {endpoint!r}: want http(s)://host[:port] without query")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._http = http
        self._url = url
        # Signed, so it must be byte-equal to the Host header httpx puts on the wire.
        self._host = url.netloc.decode("ascii")
        self._credentials = credentials
        self._timeout = timeout
        self._clock = clock
        self._max_body = max_body_bytes

    def __repr__(self) -> str:
        return f"TencentClient(endpoint={str(self._url)!r}, credentials={self._credentials!r})"

    @property
    def credentials(self) -> CredentialProvider:
        """The account's credential source (the poll step calls ``renew()`` on it)."""
        return self._credentials

    async def describe_backup_stream_list(self, region: str, stream_name: str | None = None) -> bytes:
        """POST one signed request and return the body of an HTTP 200 reply.

        Args:
            region: the ``X-TC-Region`` value.
            stream_name: exact-match query (watch-list mode); ``None`` lists every online stream.

        Raises:
            PollTimeout: no complete reply within ``timeout``.
            NetworkError: refused, reset, DNS failure, TLS or HTTP protocol error.
            HTTPStatusError: any status other than 200 (``retryable`` for 5xx and 429).
            BadResponse: the body is larger than the cap or its content-encoding is broken.
            CredentialError: the provider has no valid credential (not a PollError: nothing
                was sent).
        """
        credential = self._credentials.current()
        payload = _EMPTY_BODY if stream_name is None else orjson.dumps({"StreamName": stream_name})
        headers = tc3_headers(
            credential=credential,
            host=self._host,
            service=SERVICE,
            action=ACTION,
            version=VERSION,
            region=region,
            payload=payload,
            timestamp=int(self._clock()),
        )
        headers["User-Agent"] = f"tencent-live-exporter/{__version__}"
        headers["X-TC-Language"] = LANGUAGE
        failure: PollError
        try:
            async with asyncio.timeout(self._timeout):
                return await self._exchange(payload, headers)
        except PollError:
            raise
        except (TimeoutError, httpx.TimeoutException) as exc:
            failure = PollTimeout(
                f"POST {self._host}: no complete reply within {self._timeout:g}s ({type(exc).__name__})"
            )
        except httpx.DecodingError as exc:
            failure = BadResponse(f"POST {self._host}: undecodable body: {self._detail(exc)}")
        except httpx.HTTPError as exc:
            # TransportError covers connect/read/write/close errors, protocol errors, proxy
            # errors and unsupported schemes: all "the network failed us".
            failure = NetworkError(f"POST {self._host}: {type(exc).__name__}: {self._detail(exc)}")
        raise failure

    async def _exchange(self, payload: bytes, headers: dict[str, str]) -> bytes:
        async with self._http.stream(
            "POST", self._url, content=payload, headers=headers, timeout=self._timeout
        ) as response:
            if response.status_code != 200:
                raise HTTPStatusError(response.status_code, response.reason_phrase[:64])
            return await self._read_capped(response)

    async def _read_capped(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            raise BadResponse(f"reply of {declared} bytes exceeds the {self._max_body}-byte cap")
        # One growing buffer, no list of chunks to join: the peak is the body plus one chunk.
        buffer = io.BytesIO()
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self._max_body:
                raise BadResponse(f"reply exceeds the {self._max_body}-byte cap")
            buffer.write(chunk)
        return buffer.getvalue()

    def _detail(self, exc: BaseException) -> str:
        """A short, secret-free rendering of a transport error for the operator."""
        text = str(exc) or _TRANSPORT_HINTS.get(type(exc).__name__, "no detail from the transport")
        try:
            secrets = self._credentials.current().secret_values()
        except Exception:  # no valid credential now: the process-wide store still scrubs
            secrets = ()
        for secret in secrets:
            text = text.replace(secret, "<redacted>")
        return SECRETS.scrub_text(text)[:_MAX_DETAIL]


# httpx often raises these with an empty message; say what they usually mean.
_TRANSPORT_HINTS = {
    "ReadError": "connection reset or closed by the server before a reply",
    "WriteError": "connection reset or closed while sending the request",
    "ConnectError": "connection refused or host unreachable",
    "RemoteProtocolError": "the server broke the HTTP protocol (closed mid-reply?)",
}
