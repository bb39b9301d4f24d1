"""TencentClient at the transport boundary: what goes on the wire, and how every failure maps.

The vendor is faked twice: by ``httpx.MockTransport`` around a plain handler (precise control
over each transport exception), and by a real HTTP server on 127.0.0.1 (real sockets, real
timeouts). Neither fakes any of our own code.
"""

from __future__ import annotations

import asyncio
import gzip
import http.server
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from exporter.credentials import Credential, Secret, StaticCredentials
from exporter.parse import parse_snapshot
from exporter.tencent.client import ACTION, VERSION, TencentClient
from exporter.tencent.errors import (
    OK_CODE,
    ApiError,
    BadResponse,
    HTTPStatusError,
    NetworkError,
    PollError,
    PollTimeout,
    Throttled,
)
from exporter.tencent.signing import parse_authorization, sign

FIXTURES = Path(__file__).parent.parent / "fixtures"
VENDOR_EXAMPLE = (FIXTURES / "describe_backup_stream_list_vendor_example.json").read_bytes()
SECRET_ID = "AKIDexampleexampleexample"
SECRET_KEY = "super-secret-key-value-0123456789"
TOKEN = "session-token-value-abcdef"
NOW = 1_530_298_800.75  # the signed timestamp is its integer part

T = TypeVar("T")
Handler = Callable[[httpx.Request], httpx.Response]


def _run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def _credential(token: str | None = None) -> Credential:
    return Credential(SECRET_ID, Secret(SECRET_KEY), Secret(token) if token else None)


async def _call(
    handler: Handler | None = None,
    *,
    endpoint: str = "https://live.tencentcloudapi.com",
    region: str = "ap-guangzhou",
    stream_name: str | None = None,
    token: str | None = None,
    timeout: float = 2.0,
    max_body_bytes: int | None = None,
) -> bytes:
    transport = httpx.MockTransport(handler) if handler is not None else None
    async with httpx.AsyncClient(transport=transport) as http:
        extra: dict[str, Any] = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
        client = TencentClient(
            http,
            endpoint=endpoint,
            credentials=StaticCredentials(_credential(token)),
            timeout=timeout,
            clock=lambda: NOW,
            **extra,
        )
        return await client.describe_backup_stream_list(region, stream_name)


def _outcome(exc: PollError | None) -> str:
    """What the runner puts in ``api_requests_total{code}``."""
    return OK_CODE if exc is None else exc.code


def test_credentials_are_read_at_every_request_and_exposed() -> None:
    class Rotating(StaticCredentials):
        """A provider whose current() changes, as a renewed token does."""

        def __init__(self) -> None:
            super().__init__(_credential("first-token-value"))
            self.now = _credential("first-token-value")

        def current(self) -> Credential:
            return self.now

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["X-TC-Token"])
        return httpx.Response(200, content=VENDOR_EXAMPLE)

    async def run() -> None:
        provider = Rotating()
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = TencentClient(
                http, endpoint="https://live.tencentcloudapi.com", credentials=provider, timeout=2
            )
            assert client.credentials is provider
            await client.describe_backup_stream_list("ap-guangzhou")
            provider.now = _credential("second-token-value")
            await client.describe_backup_stream_list("ap-guangzhou")

    _run(run())
    assert seen == ["first-token-value", "second-token-value"]


class TestRequest:
    def _capture(self, **kwargs: Any) -> httpx.Request:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, content=VENDOR_EXAMPLE)

        assert _run(_call(handler, **kwargs)) == VENDOR_EXAMPLE
        assert len(seen) == 1  # one POST per call, no retries at this layer
        return seen[0]

    def test_full_list_request(self) -> None:
        request = self._capture()
        assert request.method == "POST"
        assert (request.url.scheme, request.url.host, request.url.raw_path) == (
            "https",
            "live.tencentcloudapi.com",
            b"/",
        )
        assert request.content == b"{}"
        headers = request.headers
        assert headers["Host"] == "live.tencentcloudapi.com"
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        assert headers["X-TC-Action"] == ACTION == "DescribeBackupStreamList"
        assert headers["X-TC-Version"] == VERSION == "2018-08-01"
        assert headers["X-TC-Region"] == "ap-guangzhou"
        assert headers["X-TC-Timestamp"] == "1530298800"
        assert "X-TC-Token" not in headers
        assert SECRET_KEY not in str(request.headers.raw)
        assert headers["X-TC-Language"] == "en-US"  # vendor messages in our logs are English

    def test_signature_verifies_with_the_secret(self) -> None:
        request = self._capture(region="ap-hongkong", stream_name="直播 01", token=TOKEN)
        assert request.content == '{"StreamName":"直播 01"}'.encode()  # compact, raw UTF-8
        assert request.headers["X-TC-Token"] == TOKEN
        auth = parse_authorization(request.headers["Authorization"])
        assert (auth.secret_id, auth.date, auth.service) == (SECRET_ID, "2018-06-29", "live")
        expected = sign(
            secret_key=SECRET_KEY,
            service="live",
            timestamp=int(request.headers["X-TC-Timestamp"]),
            headers=dict(request.headers),
            payload=request.content,
        )
        assert auth.signature == expected.signature
        wrong = sign(
            secret_key=SECRET_KEY + "!",
            service="live",
            timestamp=1530298800,
            headers=dict(request.headers),
            payload=request.content,
        )
        assert auth.signature != wrong.signature

    def test_host_with_port_is_signed_as_sent(self) -> None:
        request = self._capture(endpoint="http://127.0.0.1:18080")
        assert request.headers["Host"] == "127.0.0.1:18080"
        parts = sign(
            secret_key=SECRET_KEY,
            service="live",
            timestamp=1530298800,
            headers=dict(request.headers),
            payload=request.content,
        )
        assert parse_authorization(request.headers["Authorization"]).signature == parts.signature

    @pytest.mark.parametrize(
        "endpoint", ["live.tencentcloudapi.com", "ftp://host", "https://host/?a=1", "http://"]
    )
    def test_bad_endpoint_is_rejected_up_front(self, endpoint: str) -> None:
        with pytest.raises(ValueError, match="endpoint"):
            _run(_call(endpoint=endpoint))

    def test_repr_hides_the_key(self) -> None:
        client = TencentClient(
            httpx.AsyncClient(),
            endpoint="https://live.tencentcloudapi.com",
            credentials=StaticCredentials(_credential(TOKEN)),
            timeout=1,
        )
        assert SECRET_KEY not in repr(client) and TOKEN not in repr(client)
        assert SECRET_ID in repr(client)


def _raiser(exc_type: type[httpx.HTTPError], message: str = "boom") -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type(message, request=request)  # type: ignore[call-arg]

    return handler


def _status(code: int) -> Handler:
    return lambda request: httpx.Response(code, content=b"<html>gateway</html>")


TRANSPORT_FAILURES = [
    pytest.param(_raiser(httpx.ConnectTimeout), PollTimeout, id="connect-timeout"),
    pytest.param(_raiser(httpx.ReadTimeout), PollTimeout, id="read-timeout"),
    pytest.param(_raiser(httpx.WriteTimeout), PollTimeout, id="write-timeout"),
    pytest.param(_raiser(httpx.PoolTimeout), PollTimeout, id="pool-timeout"),
    pytest.param(_raiser(httpx.ConnectError, "[Errno 111] Connection refused"), NetworkError, id="refused"),
    pytest.param(_raiser(httpx.ConnectError, "[Errno -2] Name or service not known"), NetworkError, id="dns"),
    pytest.param(_raiser(httpx.ReadError, "[Errno 104] Connection reset by peer"), NetworkError, id="reset"),
    pytest.param(_raiser(httpx.WriteError), NetworkError, id="write-error"),
    pytest.param(
        _raiser(httpx.RemoteProtocolError, "Server disconnected"), NetworkError, id="remote-protocol"
    ),
    pytest.param(_raiser(httpx.LocalProtocolError), NetworkError, id="local-protocol"),
    pytest.param(_raiser(httpx.ProxyError), NetworkError, id="proxy"),
    pytest.param(_raiser(httpx.UnsupportedProtocol), NetworkError, id="unsupported-protocol"),
]


class TestErrorMapping:
    @pytest.mark.parametrize(("handler", "expected"), TRANSPORT_FAILURES)
    def test_transport_exceptions(self, handler: Handler, expected: type[PollError]) -> None:
        with pytest.raises(PollError) as info:
            _run(_call(handler))
        assert type(info.value) is expected
        assert info.value.retryable is True
        # Nothing httpx-shaped leaves the client, not even as a chained cause or context.
        assert info.value.__cause__ is None and info.value.__context__ is None
        assert "live.tencentcloudapi.com" in str(info.value)

    @pytest.mark.parametrize(
        ("status", "retryable"),
        [
            (500, True),
            (502, True),
            (503, True),
            (504, True),
            (429, True),
            # A gateway's or proxy's 4xx says nothing about the account: transient too.
            (400, True),
            (403, True),
            (404, True),
        ],
    )
    def test_non_200_status(self, status: int, retryable: bool) -> None:
        with pytest.raises(HTTPStatusError) as info:
            _run(_call(_status(status)))
        assert info.value.status == status
        assert info.value.retryable is retryable
        assert info.value.code == "HTTPError"
        assert str(info.value).startswith(f"HTTP {status}")
        assert "gateway" not in str(info.value)  # the body is not dumped into the message

    def test_other_2xx_is_not_success(self) -> None:
        with pytest.raises(HTTPStatusError):
            _run(_call(_status(204)))

    def test_secret_in_a_transport_message_is_redacted(self) -> None:
        # Defence in depth: should a transport ever echo a header value, it is scrubbed.
        handler = _raiser(httpx.ConnectError, f"bad header X-TC-Token: {TOKEN} key={SECRET_KEY}")
        with pytest.raises(NetworkError) as info:
            _run(_call(handler, token=TOKEN))
        assert TOKEN not in str(info.value) and SECRET_KEY not in str(info.value)
        assert "<redacted>" in str(info.value)

    def test_body_over_cap_is_bad_response(self) -> None:
        handler = lambda request: httpx.Response(200, content=b"x" * 2048)  # noqa: E731
        with pytest.raises(BadResponse, match="cap"):
            _run(_call(handler, max_body_bytes=1024))
        assert _run(_call(handler, max_body_bytes=2048)) == b"x" * 2048

    def test_streamed_body_over_cap_without_length_is_bad_response(self) -> None:
        async def chunks() -> Any:
            for _ in range(64):
                yield b"y" * 100

        handler = lambda request: httpx.Response(200, content=chunks())  # noqa: E731
        with pytest.raises(BadResponse, match="cap"):
            _run(_call(handler, max_body_bytes=1000))

    def test_gzip_body_is_decoded_and_capped_after_decoding(self) -> None:
        packed = gzip.compress(VENDOR_EXAMPLE)

        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=packed, headers={"Content-Encoding": "gzip"})

        assert _run(_call(handler)) == VENDOR_EXAMPLE
        with pytest.raises(BadResponse):
            _run(_call(handler, max_body_bytes=len(packed) + 10))

    def test_broken_gzip_is_bad_response(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=b"not gzip at all", headers={"Content-Encoding": "gzip"})

        with pytest.raises(BadResponse, match="undecodable"):
            _run(_call(handler))


def _json(document: object) -> Handler:
    body = orjson.dumps(document)
    return lambda request: httpx.Response(200, content=body)


def _vendor_error(code: str) -> Handler:
    return _json({"Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "rid"}})


# (handler, expected code label, retryable) — the whole table of outcomes for one poll.
OUTCOMES = [
    pytest.param(lambda r: httpx.Response(200, content=VENDOR_EXAMPLE), OK_CODE, None, id="ok"),
    *(
        pytest.param(_vendor_error(code), code, True, id=code)
        for code in (
            "InternalError",
            "InternalError.GetStreamInfoError",
            "InternalError.CallOtherSvrError",
            "FailedOperation.CallOtherSvrFailed",
            "RequestLimitExceeded",
            "RequestLimitExceeded.UinLimitExceeded",
        )
    ),
    *(
        pytest.param(_vendor_error(code), code, False, id=code)
        for code in (
            "AuthFailure.SignatureFailure",
            "AuthFailure.SecretIdNotFound",
            "AuthFailure.SignatureExpire",
            "UnauthorizedOperation",
            "ResourceNotFound.UserNotExist",
            "ResourceNotFound.StopService",
            "InvalidParameter",
            "InvalidParameterValue",
            "MissingParameter",
        )
    ),
    pytest.param(_status(500), "HTTPError", True, id="http-500"),
    pytest.param(_status(503), "HTTPError", True, id="http-503"),
    pytest.param(_status(429), "HTTPError", True, id="http-429"),
    pytest.param(_status(403), "HTTPError", True, id="http-403"),
    pytest.param(_raiser(httpx.ReadTimeout), "Timeout", True, id="timeout"),
    pytest.param(_raiser(httpx.ConnectError), "NetworkError", True, id="connect-error"),
    pytest.param(_raiser(httpx.RemoteProtocolError), "NetworkError", True, id="protocol-error"),
    pytest.param(lambda r: httpx.Response(200, content=b"<html>502</html>"), "BadResponse", True, id="html"),
    pytest.param(
        lambda r: httpx.Response(200, content=VENDOR_EXAMPLE[:99]), "BadResponse", True, id="truncated"
    ),
    pytest.param(_json({"Response": {"RequestId": "r"}}), "BadResponse", True, id="no-list"),
]


class TestOutcomeTable:
    @pytest.mark.parametrize(("handler", "code", "retryable"), OUTCOMES)
    def test_code_label_and_retryability(self, handler: Handler, code: str, retryable: bool | None) -> None:
        failure: PollError | None = None
        try:
            body = _run(_call(handler))
            snapshot = parse_snapshot(body, account="prod", region="ap-guangzhou", taken_at=NOW)
        except PollError as exc:
            failure = exc
        else:
            assert list(snapshot.streams) == ["stream1"]
        assert _outcome(failure) == code
        if retryable is None:
            assert failure is None
        else:
            assert failure is not None and failure.retryable is retryable
            if code.startswith("RequestLimitExceeded"):
                assert isinstance(failure, Throttled)
            elif failure.code not in {"HTTPError", "Timeout", "NetworkError", "BadResponse"}:
                assert type(failure) is ApiError
                assert failure.request_id == "rid"


class _FakeVendor(http.server.ThreadingHTTPServer):
    """A real HTTP server on loopback whose behaviour each test picks."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, behaviour: str) -> None:
        super().__init__(("127.0.0.1", 0), _FakeVendorHandler)
        self.behaviour = behaviour
        self.release = threading.Event()
        self.seen: list[tuple[dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeVendorHandler(http.server.BaseHTTPRequestHandler):
    server: _FakeVendor
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.seen.append((dict(self.headers.items()), body))
        behaviour = self.server.behaviour
        if behaviour == "hang":
            self.server.release.wait(30)  # held until the test tears the server down
            return
        if behaviour == "close":
            self.close_connection = True
            return
        if behaviour == "trickle":
            # Every byte arrives well within a per-read timeout; the whole reply never does.
            self.send_response(200)
            self.send_header("Content-Length", str(len(VENDOR_EXAMPLE)))
            self.end_headers()
            for byte in VENDOR_EXAMPLE:
                if self.server.release.wait(0.05):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(VENDOR_EXAMPLE)))
        self.end_headers()
        self.wfile.write(VENDOR_EXAMPLE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_vendor(request: pytest.FixtureRequest) -> Iterator[_FakeVendor]:
    server = _FakeVendor(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class TestRealServer:
    @pytest.mark.parametrize("fake_vendor", ["ok"], indirect=True)
    def test_round_trip_and_signature(self, fake_vendor: _FakeVendor) -> None:
        body = _run(_call(endpoint=fake_vendor.url, stream_name="stream1", token=TOKEN))
        assert body == VENDOR_EXAMPLE
        ((headers, payload),) = fake_vendor.seen
        assert payload == b'{"StreamName":"stream1"}'
        assert headers["Host"] == fake_vendor.url.removeprefix("http://")
        auth = parse_authorization(headers["Authorization"])
        parts = sign(
            secret_key=SECRET_KEY,
            service="live",
            timestamp=int(headers["X-TC-Timestamp"]),
            headers=headers,
            payload=payload,
        )
        assert parts.signature == auth.signature

    @pytest.mark.parametrize("fake_vendor", ["hang"], indirect=True)
    def test_server_that_never_answers_times_out(self, fake_vendor: _FakeVendor) -> None:
        with pytest.raises(PollTimeout, match=r"within 0\.2s"):
            _run(_call(endpoint=fake_vendor.url, timeout=0.2))

    @pytest.mark.parametrize("fake_vendor", ["trickle"], indirect=True)
    def test_trickling_reply_hits_the_overall_deadline(self, fake_vendor: _FakeVendor) -> None:
        # httpx's own timeouts are per read; request_timeout bounds the whole exchange.
        with pytest.raises(PollTimeout):
            _run(_call(endpoint=fake_vendor.url, timeout=0.4))

    @pytest.mark.parametrize("fake_vendor", ["close"], indirect=True)
    def test_server_closing_without_reply_is_network_error(self, fake_vendor: _FakeVendor) -> None:
        with pytest.raises(NetworkError):
            _run(_call(endpoint=fake_vendor.url))

    def test_refused_connection_is_network_error(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        # Nothing listens there any more.
        with pytest.raises(NetworkError, match="ConnectError"):
            _run(_call(endpoint=f"http://127.0.0.1:{port}"))
