"""The HTTP server: listeners, the serving loop thread, connection tasks, start and stop.

Why an asyncio server on its own event loop thread, rather than the stdlib threaded server
it replaced: a thread per connection made every idle or trickling client cost a thread and
its stack, and the stdlib's per-operation socket timeout let a client that sends (or reads)
one byte every few seconds hold a connection, and a reference to a 100 MB body, forever.
On one loop, a connection costs a few kilobytes, a deadline is a deadline (the head must
arrive in full by a fixed time, a response must be written by one), and the connection cap
is a counter. Measured with ``benchmarks/attack.py`` (figures in the commit that made the
switch and in the README): idle connections, slow readers and header tricklers no longer
move ``/healthz`` or a gzip scrape, and RSS under attack stays near its quiet value.

The loop is not the poll loop: it runs in a thread of its own, so a busy poll loop (parsing
a 20,000-stream reply) never delays a scrape (SPEC section 7). What each request gets (auth,
routes, pages, ``/-/reload``) is ``routes.py``; reading heads and writing bodies under the
deadlines is ``connection.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from .connection import Counters, Limits, serve_connection
from .http1 import MAX_HEAD_BYTES
from .landing import LandingConfig
from .listeners import (
    BACKLOG,
    ListenAddress,
    bind_listener,
    open_files_limit,
    parse_listen_address,
    raise_open_files_limit,
)
from .routes import METRICS_CONTENT_TYPE, Body, Router, WebSources, WebState, gzip_accepted
from .stats import WebCollector
from .webconfig import WebConfig

__all__ = [
    "METRICS_CONTENT_TYPE",
    "Body",
    "Limits",
    "ListenAddress",
    "WebServer",
    "WebSources",
    "gzip_accepted",
    "parse_listen_address",
]

_FD_RESERVE = 256  # descriptors kept for vendor connections, the state file and logs
_ACCEPT_BATCH = 16
_log = structlog.get_logger("exporter.web")


class WebServer:
    """Serves cached exporter state over HTTP(S) from a background event loop thread.

    Args:
        listen: one or more ``--web.listen-address`` values (``:9877``, ``127.0.0.1:0``, ...).
        inherited_sockets: listening sockets passed in (``--web.systemd-socket``), served too.
        telemetry_path: ``--web.telemetry-path``; wins over a built-in route of the same path.
        sources: the cached state to serve.
        landing: names, version, links and demo flag for ``/``.
        web_config: TLS, basic auth, extra headers; ``None`` is plain HTTP without auth.
        reload: ``--web.enable-lifecycle``: called (in a worker thread) for ``POST /-/reload``;
            returns False or raises (the message is the reason) on failure. ``None``: 403.
        clock: Unix seconds, for the landing page's "how long ago".
        limits: connection, byte and time bounds; the default suits production.
    """

    def __init__(
        self,
        listen: str | Sequence[str] = (),
        *,
        inherited_sockets: Sequence[socket.socket] = (),
        telemetry_path: str = "/metrics",
        sources: WebSources,
        landing: LandingConfig,
        web_config: WebConfig | None = None,
        reload: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.time,
        limits: Limits | None = None,
    ) -> None:
        if not telemetry_path.startswith("/"):
            raise ValueError(f"telemetry path must start with '/': {telemetry_path!r}")
        listens = (listen,) if isinstance(listen, str) else tuple(listen)
        self._addresses = [parse_listen_address(text) for text in listens]
        if not self._addresses and not inherited_sockets:
            raise ValueError("nothing to listen on: give a listen address or an inherited socket")
        self._inherited = list(inherited_sockets)
        self._telemetry_path = telemetry_path
        self._limits = limits or Limits()
        self._config = web_config or WebConfig()
        self._state = WebState.of(self._config)
        self.counters = Counters()
        self._router = Router(
            telemetry_path=telemetry_path,
            sources=sources,
            landing=landing,
            reload=reload,
            clock=clock,
            state=lambda: self._state,
            counters=self.counters,
        )
        self._sockets: list[socket.socket] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The first bound port (useful with port 0); only valid after ``start()``."""
        if not self._sockets:
            raise RuntimeError("WebServer is not started")
        return int(self._sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL of the first listener for clients on this host (loopback for wildcards)."""
        return self.urls[0]

    @property
    def urls(self) -> list[str]:
        """Base URL of every listener, in order (listen addresses, then inherited sockets)."""
        if not self._sockets:
            raise RuntimeError("WebServer is not started")
        scheme = "https" if self._state.tls is not None else "http"
        out = []
        for sock in self._sockets:
            host, port = sock.getsockname()[:2]
            if host in ("", "::", "0.0.0.0"):
                # A wildcard listen answers on every loopback name; "localhost" is what people type.
                host = "127.0.0.1" if sock.family == socket.AF_INET else "localhost"
            out.append(f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}")
        return out

    @property
    def max_connections(self) -> int:
        """The connection cap in force: the configured one, lowered to fit the open-files limit."""
        limit = open_files_limit()
        cap = self._limits.max_connections
        return cap if limit is None else max(16, min(cap, limit - _FD_RESERVE))

    def collector(self) -> WebCollector:
        """A prometheus_client collector of this server's connection metrics, for a registry."""
        return WebCollector(self)

    def start(self) -> None:
        """Raise the open-files limit, bind every address, serve from a daemon thread.

        Raises:
            OSError: an address cannot be bound (in use, no permission, no such interface).
        """
        if self._loop is not None:
            raise RuntimeError("WebServer already started")
        raised = raise_open_files_limit()
        if raised is not None:
            _log.info("open_files_limit_raised", old=raised[0], new=raised[1])
        sockets: list[socket.socket] = []
        try:
            for address in self._addresses:
                sockets.append(bind_listener(address))
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        self._sockets = sockets + self._inherited
        self._limits = dataclasses.replace(self._limits, max_connections=self.max_connections)
        self._router.start()
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="web-server", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), loop).result()
        for note in self._config.notes:
            _log.warning("web_config_note", note=note)
        for url in self.urls:
            _log.info(
                "listening",
                address=url.partition("://")[2],
                tls=self._state.tls is not None,
                basic_auth=self._state.auth is not None,
                telemetry_path=self._telemetry_path,
                max_connections=self._limits.max_connections,
            )

    def stop(self) -> None:
        """Stop accepting, close open (keep-alive) connections, release the ports."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            if not loop.is_running():
                loop.close()
            self._router.stop()
            for sock in self._sockets:
                sock.close()

    def reload_web_config(self, config: WebConfig) -> None:
        """Swap TLS context, users, headers and rate limit at once (e.g. on SIGHUP).

        ``config`` is already fully validated by ``load_web_config``, so nothing here can
        half-apply. New connections get the new TLS context; open ones keep theirs but get
        the new auth on their next request.
        """
        self._state = WebState.of(config)
        self._config = config
        for note in config.notes:
            _log.warning("web_config_note", note=note)
        _log.info("web_config_reloaded", tls=config.tls is not None, basic_auth=bool(config.users))

    async def _listen(self) -> None:
        for sock in self._sockets:
            # asyncio's backlog is also how many connections one loop callback accepts in a row:
            # small, so a burst of 1,000 reconnecting clients cannot hold the loop (and /healthz)
            # for a whole batch. It calls listen() with it, so the kernel queue is set back after.
            server = await asyncio.start_server(
                self._on_connection, sock=sock, limit=MAX_HEAD_BYTES, backlog=_ACCEPT_BATCH
            )
            sock.listen(BACKLOG)
            self._servers.append(server)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for server in self._servers:
            await server.wait_closed()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await serve_connection(
                reader,
                writer,
                handler=self._router.respond,
                tls=self._state.tls,
                limits=self._limits,
                counters=self.counters,
                common_headers=lambda: self._state.headers,
            )
        except asyncio.CancelledError:
            writer.transport.abort()
        finally:
            if task is not None:
                self._tasks.discard(task)
