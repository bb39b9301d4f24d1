"""Proxies and CA bundles from the environment, through a real forward proxy on loopback.

The proxy below is written here, small on purpose: it answers ``CONNECT host:port`` with a
tunnel (what clients do for https) and forwards absolute-URI requests (what they do for http),
and records what it saw. The targets are the simulator (http) and a TLS server whose
self-signed certificate is trusted only through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from exporter.credentials import Credential, StaticCredentials
from exporter.simulator import SimulatorServer
from exporter.tencent import http_client
from exporter.tencent.client import TencentClient
from exporter.tencent.errors import NetworkError
from exporter.tencent.transport import ProxyRules
from tests._tls import self_signed

T = TypeVar("T")
FIXTURE = Path(__file__).parent.parent / "fixtures" / "describe_backup_stream_list_vendor_example.json"


class ForwardProxy:
    """CONNECT tunnels and absolute-URI forwarding, one request per client connection."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Close, then wait for every connection handler, so no transport outlives the loop
        (Python 3.11's ``wait_closed`` does not wait for them)."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            self.seen.append((method, target))
            if method == "CONNECT":
                _, port = target.rsplit(":", 1)  # the only upstream is on loopback
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            url = httpx.URL(target)
            lines = head.decode().split("\r\n")
            lines[0] = f"{method} {url.raw_path.decode()} HTTP/1.1"
            lines = [line for line in lines if not line.lower().startswith(("connection:", "proxy-"))]
            lines.insert(1, "Connection: close")
            length = next(
                (int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length:")), 0
            )
            body = await reader.readexactly(length)
            up_reader, up_writer = await asyncio.open_connection(url.host, url.port)
            up_writer.write("\r\n".join(lines).encode() + body)
            await up_writer.drain()
            await _pipe(up_reader, writer)
            await _close(up_writer)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            await _close(writer)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


async def _tls_vendor(cert: Path, key: Path) -> tuple[asyncio.Server, int]:
    """A TLS "vendor" answering every request with the vendor's example reply."""
    body = FIXTURE.read_bytes()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            await _close(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


async def _describe(
    endpoint: str, credential: Credential, env: dict[str, str], proxy_url: str | None = None
) -> bytes:
    async with http_client(proxy_url, timeout=3.0, env=env) as http:
        client = TencentClient(
            http, endpoint=endpoint, credentials=StaticCredentials(credential), timeout=3.0
        )
        return await client.describe_backup_stream_list("ap-guangzhou")


def _run_with_proxy(coro_factory: Callable[[str], Awaitable[T]]) -> tuple[ForwardProxy, T]:
    async def main() -> tuple[ForwardProxy, T]:
        proxy = ForwardProxy()
        url = await proxy.start()
        try:
            return proxy, await coro_factory(url)
        finally:
            await proxy.stop()

    return asyncio.run(main())


def test_http_goes_through_the_proxy_as_an_absolute_uri(
    simulator: SimulatorServer, sim_credential: Credential
) -> None:
    proxy, body = _run_with_proxy(lambda url: _describe(simulator.url, sim_credential, {"HTTP_PROXY": url}))
    assert b'"StreamInfoList"' in body
    assert proxy.seen == [("POST", simulator.url + "/")]
    assert [r.code for r in simulator.request_log.records()] == ["OK"]  # signed and accepted


def test_https_goes_through_a_connect_tunnel_and_trusts_ssl_cert_file(
    tls_files: tuple[Path, Path], sim_credential: Credential
) -> None:
    cert, key = tls_files

    async def scenario(proxy_url: str) -> tuple[bytes, BaseException | None]:
        server, port = await _tls_vendor(cert, key)
        try:
            env = {"https_proxy": proxy_url, "SSL_CERT_FILE": str(cert)}
            body = await _describe(f"https://localhost:{port}", sim_credential, env)
            try:  # the same server without the CA variable: not trusted
                await _describe(f"https://localhost:{port}", sim_credential, {"https_proxy": proxy_url})
            except NetworkError as exc:
                return body, exc
            return body, None
        finally:
            server.close()

    proxy, (body, untrusted) = _run_with_proxy(scenario)
    assert body == FIXTURE.read_bytes()
    assert isinstance(untrusted, NetworkError)
    assert [method for method, _ in proxy.seen] == ["CONNECT", "CONNECT"]
    assert proxy.seen[0][1].startswith("localhost:")


def test_no_proxy_connects_directly(simulator: SimulatorServer, sim_credential: Credential) -> None:
    def env(url: str) -> dict[str, str]:
        return {"HTTP_PROXY": url, "NO_PROXY": "example.com, 127.0.0.0/8"}

    proxy, body = _run_with_proxy(lambda url: _describe(simulator.url, sim_credential, env(url)))
    assert b'"StreamInfoList"' in body
    assert proxy.seen == []


def test_proxy_url_replaces_the_environment(simulator: SimulatorServer, sim_credential: Credential) -> None:
    dead = {"HTTP_PROXY": "http://127.0.0.1:9", "ALL_PROXY": "http://127.0.0.1:9"}
    proxy, body = _run_with_proxy(lambda url: _describe(simulator.url, sim_credential, dead, proxy_url=url))
    assert b'"StreamInfoList"' in body
    assert len(proxy.seen) == 1


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({"HTTPS_PROXY": "proxy:3128"}, "https://live.tencentcloudapi.com/", "http://proxy:3128"),
        ({"https_proxy": "http://a:1", "HTTPS_PROXY": "http://b:1"}, "https://x.com/", "http://a:1"),
        ({"HTTP_PROXY": "http://p:1"}, "https://x.com/", None),  # http proxy is for http URLs only
        ({"ALL_PROXY": "http://all:1"}, "https://x.com/", "http://all:1"),
        ({"ALL_PROXY": "http://all:1", "HTTPS_PROXY": "http://s:1"}, "https://x.com/", "http://s:1"),
        ({"HTTPS_PROXY": ""}, "https://x.com/", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https://x.com/", None),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "tencentcloudapi.com"},
            "https://live.tencentcloudapi.com/",
            None,
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".tencentcloudapi.com"},
            "https://tencentcloudapi.com/",
            None,
        ),
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": "*.example.com"}, "https://a.example.com/", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"}, "https://notexample.com/", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "x.com:8443"}, "https://x.com:8443/", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "x.com:8443"}, "https://x.com/", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"}, "https://10.1.2.3/", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"}, "https://11.1.2.3/", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "::1"}, "https://[::1]:8/", None),
    ],
)
def test_proxy_rules(env: dict[str, str], url: str, expected: str | None) -> None:
    assert ProxyRules.from_env(env).proxy_for(httpx.URL(url)) == expected


def test_proxy_credentials_never_print() -> None:
    rules = ProxyRules.from_env({"HTTPS_PROXY": "http://user:s3cretpassw0rd@proxy:3128"})
    assert "s3cretpassw0rd" not in repr(rules)
    with pytest.raises(ValueError) as info:
        ProxyRules.from_env({}, proxy_url="ftp://user:s3cretpassw0rd@proxy:21")
    assert "s3cretpassw0rd" not in str(info.value)


@pytest.fixture(autouse=True)
def _no_ambient_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
