"""Hostile HTTP clients against the real web server over real loopback sockets.

Each test is one attack from the field report, with the server's limits scaled down so the
whole file runs in seconds. Against the stdlib threaded server these were written to replace,
every test here fails: it had no head deadline (a trickle reset its per-read timeout), no cap
on header bytes beyond 64 KiB per line, no connection cap, accepted a second Content-Length,
kept a stalled reader for 60 s per write, wrote head and body in two segments without
``TCP_NODELAY``, and never touched ``RLIMIT_NOFILE``.
"""

from __future__ import annotations

import gzip
import os
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.web.landing import LandingConfig
from exporter.web.server import Limits, WebServer, WebSources
from tests._tls import self_signed

REPO = Path(__file__).resolve().parents[2]
BIG = b"stream_online 1\n" * 1_250_000  # 20 MB: far more than any socket buffer holds


def sources(body: bytes = b"up 1\n") -> WebSources:
    return WebSources(
        metrics=lambda gz: gzip.compress(body, 1) if gz else body,
        events=list,
        ready=lambda: True,
        statuses=list,
    )


@pytest.fixture
def server() -> Iterator[Callable[..., WebServer]]:
    started: list[WebServer] = []

    def start(body: bytes = b"up 1\n", **limits: Any) -> WebServer:
        web = WebServer(
            "127.0.0.1:0", sources=sources(body), landing=LandingConfig(), limits=Limits(**limits)
        )
        web.start()
        started.append(web)
        return web

    yield start
    for web in started:
        web.stop()


def connect(web: WebServer, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", web.port))
    return sock


def read_all(sock: socket.socket, deadline: float = 5.0) -> bytes:
    """Everything until the server closes (EOF or reset) or the deadline passes."""
    sock.settimeout(deadline)
    out = bytearray()
    try:
        while chunk := sock.recv(1 << 16):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return bytes(out)


def healthz(web: WebServer) -> bytes:
    with connect(web) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return read_all(sock)


def test_a_trickled_head_is_cut_at_the_deadline(server):
    """One byte every 100 ms would keep the old per-read timeout alive forever."""
    web = server(head_timeout=0.5)
    with connect(web) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(0.1)
        closed = b""
        while time.monotonic() - start < 3:
            try:
                sock.sendall(b"X")
                closed = sock.recv(4096)
                if closed == b"" or closed.startswith(b"HTTP/1.1 408"):
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        elapsed = time.monotonic() - start
    assert elapsed < 1.5, f"connection still open after {elapsed:.1f}s of trickling"
    assert web.counters.timeouts["head"] == 1


def test_an_idle_connection_that_never_sends_is_closed(server):
    web = server(head_timeout=0.3)
    with connect(web) as sock:
        start = time.monotonic()
        assert read_all(sock, deadline=3) == b""
        assert time.monotonic() - start < 1.5


def test_header_bytes_are_capped(server):
    """30 headers of 4 KiB each: each line is legal alone, the head as a whole is not."""
    web = server()
    with connect(web) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 4096 + b"\r\n")
        for _ in range(29):
            try:
                sock.sendall(b"X-Pad: " + b"a" * 4096 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 431 ")


def test_too_many_header_lines(server):
    web = server()
    with connect(web) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 150 + b"\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 431 ")


def test_connections_over_the_cap_are_refused_at_once_and_counted(server):
    web = server(max_connections=20)
    idle = [connect(web) for _ in range(20)]
    try:
        assert _await(lambda: web.counters.open == 20)
        start = time.monotonic()
        refused = healthz(web)
        assert time.monotonic() - start < 1.0
        assert refused.startswith(b"HTTP/1.1 503 ")
        assert web.counters.rejected == 1
        registry = CollectorRegistry()
        registry.register(web.collector())
        text = generate_latest(registry).decode()
        assert "tencent_live_http_connections_rejected_total 1.0" in text
        assert "tencent_live_http_connections_open 20.0" in text
    finally:
        for sock in idle:
            sock.close()
    assert _await(lambda: web.counters.open == 0)
    assert healthz(web).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 0\r\nContent-Length: 5\r\n",  # conflicting: a proxy may use the last
        b"Content-Length: 5\r\nContent-Length: 5\r\n",  # duplicate
        b"Content-Length: 0, 5\r\n",  # a list
        b"Content-Length: +5\r\n",
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",  # the classic smuggling pair
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        b"Host: y\r\n",  # a second Host
        b"X-Folded: a\r\n b\r\n",  # obsolete line folding
        b"Bad Header: x\r\n",
        b"Bad-Header : x\r\n",
    ],
)
def test_ambiguous_framing_is_rejected(server, framing):
    web = server()
    with connect(web) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\nhello")
        reply = read_all(sock)
    assert re.match(rb"HTTP/1.1 (400|501) ", reply), reply[:80]
    assert b"\r\n\r\nOK" not in reply


def test_keep_alive_replies_do_not_wait_for_delayed_acks(server):
    """Head and body in two segments without TCP_NODELAY stalled each reply ~40 ms."""
    web = server()
    with connect(web) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.monotonic()
        for _ in range(20):
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while not reply.endswith(b"up 1\n"):
                reply += sock.recv(4096)
        elapsed = time.monotonic() - start
    assert elapsed < 0.4, f"20 keep-alive scrapes took {elapsed:.2f}s"


def test_a_reader_that_stops_is_dropped_at_the_write_deadline(server):
    """A client that reads nothing loses its connection, and with it the body reference."""
    web = server(BIG, stall_timeout=0.3, write_timeout=1.0)
    with connect(web, rcvbuf=4096) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
        assert _await(lambda: web.counters.timeouts["write"] == 1, timeout=5)
        got = read_all(sock, deadline=2)
    assert len(got) < len(BIG)
    assert _await(lambda: web.counters.open == 0)


def test_a_trickling_reader_is_dropped_at_the_total_deadline(server):
    """Reading just enough to keep each write moving does not buy more than write_timeout."""
    web = server(BIG, stall_timeout=5.0, write_timeout=1.0)
    with connect(web, rcvbuf=4096) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
        start, got = time.monotonic(), 0
        sock.settimeout(0.05)
        while time.monotonic() - start < 4:
            try:
                chunk = sock.recv(2048)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += len(chunk)
            time.sleep(0.01)  # the attack itself: a slow reader, not a wait in the test
        elapsed = time.monotonic() - start
    assert got < len(BIG) and elapsed < 3
    assert web.counters.timeouts["write"] == 1


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/PID/limits")
def test_open_files_soft_limit_is_raised_at_startup(tmp_path):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 256:
        pytest.skip("hard open-files limit too low to show a raise")

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    with subprocess.Popen(
        [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", "127.0.0.1:0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lower,  # noqa: PLW1509 - the test's own child; no threads in between
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if b"listening" in line:
                    break
            limits = Path(f"/proc/{proc.pid}/limits").read_text()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert row.split()[3] == str(hard), row


def _await(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def test_a_silent_tls_client_is_cut_at_the_handshake_deadline(tmp_path):
    """A client that connects to the TLS port and never says hello holds nothing for long."""
    from exporter.web.webconfig import load_web_config

    self_signed(tmp_path)
    (tmp_path / "web.yml").write_text("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n")
    web = WebServer(
        "127.0.0.1:0",
        sources=sources(),
        landing=LandingConfig(),
        web_config=load_web_config(tmp_path / "web.yml"),
        limits=Limits(handshake_timeout=0.3),
    )
    web.start()
    try:
        with connect(web) as sock:
            start = time.monotonic()
            assert read_all(sock, deadline=3) == b""
            assert time.monotonic() - start < 1.5
        assert _await(lambda: web.counters.timeouts["handshake"] == 1)
    finally:
        web.stop()


def test_stalled_readers_hold_no_copy_of_the_body(server):
    """Twenty clients that stop reading a 20 MB body cost the server kilobytes each, not megabytes."""
    import tracemalloc

    web = server(BIG, stall_timeout=30.0, write_timeout=30.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        readers = [connect(web, rcvbuf=4096) for _ in range(20)]
        for sock in readers:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
        assert _await(lambda: web.counters.open == 20)
        time.sleep(0.5)  # let every response fill the socket buffers and stall: that is the attack
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    for sock in readers:
        sock.close()
    assert grown < 20 * 512 * 1024, f"{grown / 2**20:.1f} MiB for 20 stalled readers"


def test_a_flood_of_wrong_passwords_neither_queues_without_bound_nor_delays_scrapes(tmp_path):
    """bcrypt misses wait on their own thread, at most 32 of them; a known scraper is not behind them."""
    import base64
    import threading

    import bcrypt

    from exporter.web.webconfig import load_web_config

    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(10)).decode()  # ~50-100 ms per compare
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  prometheus: {hashed}\n")
    web = WebServer(
        "127.0.0.1:0",
        sources=sources(),
        landing=LandingConfig(),
        web_config=load_web_config(tmp_path / "web.yml"),
    )
    web.start()
    good = "Basic " + base64.b64encode(b"prometheus:right").decode()
    bad = "Basic " + base64.b64encode(b"prometheus:wrong").decode()

    def get(auth: str) -> tuple[int, float]:
        start = time.monotonic()
        with connect(web) as sock:
            sock.sendall(f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode())
            sock.settimeout(30)
            status = int(sock.recv(64).split()[1])
        return status, time.monotonic() - start

    try:
        assert get(good)[0] == 200  # pays bcrypt once, then cached
        results: list[tuple[int, float]] = []
        flood = [threading.Thread(target=lambda: results.append(get(bad))) for _ in range(80)]
        for thread in flood:
            thread.start()
        assert _await(lambda: web.counters.shed > 0, timeout=10)
        status, took = get(good)
        for thread in flood:
            thread.join(timeout=30)
    finally:
        web.stop()
    assert (status, took < 0.5) == (200, True), took
    codes = {code for code, _ in results}
    assert codes <= {401, 503} and 503 in codes
