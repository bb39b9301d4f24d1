"""The simulator on a real socket: a ThreadingHTTPServer in a daemon thread.

Real sockets matter for what a MockTransport cannot fake: keep-alive, a reply that arrives
late, a connection reset. The optional tick thread calls ``world.step()`` every
``tick_seconds`` so metrics move in ``--demo`` and end-to-end runs.
"""

from __future__ import annotations

import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from exporter.simulator.protocol import Simulator
from exporter.simulator.ratelimit import RequestLog
from exporter.simulator.world import World

__all__ = ["SimulatorServer"]


class _HTTPServer(ThreadingHTTPServer):
    # A burst of new connections (20 requests in a second, several accounts) overflows the
    # socketserver default backlog of 5 and turns into connect delays or resets.
    request_queue_size = 128
    daemon_threads = True
    # Keep-alive clients may hold a handler thread idle; stop() must not wait for them.
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Simulator, stopping: threading.Event) -> None:
        super().__init__(address, _Handler)
        self.simulator = simulator
        self.stopping = stopping


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 60  # an idle keep-alive connection is dropped after this
    # Headers and body go out in two writes; with Nagle plus the client's delayed ACK each
    # reply would stall ~40 ms.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if self.server.stopping.is_set():
            self._reset()
            return
        reply = self.server.simulator.respond(self.command, self.path, self.headers.items(), body)
        if (reply.delay and self.server.stopping.wait(reply.delay)) or reply.reset:
            self._reset()
            return
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def _reset(self) -> None:
        """Close with RST (SO_LINGER 0) and no reply, as a crashed middlebox does."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests and demos read the request log, not stderr."""


class SimulatorServer:
    """Serve ``world`` over HTTP on ``host:port`` (0 picks a free port, bound at construction).

    Args:
        world: the fleet; also reachable as ``.world``.
        tick_seconds: call ``world.step()`` this often; ``None`` never (tests drive it).
        rate_limit: per-SecretId requests per second (vendor default 20).
        simulator: a prepared protocol core (clocks, seed); built from ``world`` if omitted.
    """

    def __init__(
        self,
        world: World,
        host: str = "127.0.0.1",
        port: int = 0,
        tick_seconds: float | None = None,
        *,
        rate_limit: float = 20.0,
        simulator: Simulator | None = None,
    ) -> None:
        if tick_seconds is not None and tick_seconds <= 0:
            raise ValueError("tick_seconds must be positive")
        self.world = world
        self.simulator = simulator or Simulator(world, rate_limit=rate_limit)
        self.tick_seconds = tick_seconds
        self._stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), self.simulator, self._stopping)
        self._threads: list[threading.Thread] = []

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The endpoint to configure: ``http://127.0.0.1:PORT`` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def request_log(self) -> RequestLog:
        return self.simulator.request_log

    def start(self) -> SimulatorServer:
        if self._threads:
            raise RuntimeError("already started")
        serve = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="simulator-http",
            daemon=True,
        )
        self._threads.append(serve)
        if self.tick_seconds is not None:
            self._threads.append(threading.Thread(target=self._tick, name="simulator-tick", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end the tick thread, cut pending delayed replies; idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._threads:
            self._httpd.shutdown()
        self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _tick(self) -> None:
        assert self.tick_seconds is not None
        while not self._stopping.wait(self.tick_seconds):
            self.world.step()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
