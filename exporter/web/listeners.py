"""Where the web server listens: ``--web.listen-address`` (repeatable), systemd socket
activation, and the process's open-file limit that bounds how many clients it can hold.

Sockets are bound here, synchronously, before the serving thread starts, so a port in use
fails ``WebServer.start()`` with an ``OSError`` in the caller's thread.

Socket activation follows ``sd_listen_fds(3)``: ``LISTEN_PID`` must be this process,
``LISTEN_FDS`` counts descriptors from 3 on; both variables (and ``LISTEN_FDNAMES``) are
removed after reading so children do not inherit them, and the descriptors get close-on-exec.

The open-file limit is raised as Go programs raise it at start (soft limit to the hard
limit): the systemd default soft limit of 1,024 lets a few idle connections starve every
vendor connection of descriptors, while the hard limit is usually 512k or more.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import MutableMapping
from ipaddress import ip_address
from typing import NamedTuple

__all__ = [
    "BACKLOG",
    "SD_LISTEN_FDS_START",
    "ListenAddress",
    "bind_listener",
    "open_files_limit",
    "parse_listen_address",
    "raise_open_files_limit",
    "systemd_listeners",
]

SD_LISTEN_FDS_START = 3
# The kernel caps it at net.core.somaxconn (4096 on current kernels). A short queue drops the
# SYNs of a burst of connections (1,000 clients reconnecting at once), and each dropped SYN
# costs its client 1, 3, 7 s of retransmission: that is latency for a probe caught in the burst.
BACKLOG = max(4096, socket.SOMAXCONN)


class ListenAddress(NamedTuple):
    family: socket.AddressFamily
    host: str
    port: int


def parse_listen_address(text: str) -> ListenAddress:
    """Prometheus-style ``HOST:PORT``: ``:9877`` is every interface (IPv6 and IPv4 when the
    host has dual stack), ``[::1]:9877`` an IPv6 literal, a name is resolved once.

    Raises:
        ValueError: not ``HOST:PORT``, bad port, or a name that does not resolve.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address {text!r}: expected HOST:PORT, e.g. :9877 or 127.0.0.1:9877")
    port = int(port_text)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"listen address {text!r}: put IPv6 addresses in brackets, e.g. [::1]:9877")
    if not host:
        if socket.has_dualstack_ipv6():
            return ListenAddress(socket.AF_INET6, "::", port)
        return ListenAddress(socket.AF_INET, "0.0.0.0", port)
    try:
        literal = ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return ListenAddress(family, host, port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ValueError(f"listen address {text!r}: cannot resolve {host!r}: {exc.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    return ListenAddress(family, str(sockaddr[0]), port)


def bind_listener(address: ListenAddress) -> socket.socket:
    """A bound, listening, non-blocking TCP socket.

    Raises:
        OSError: in use, no permission, no such interface.
    """
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if address.family == socket.AF_INET6 and address.host == "::":
            # ":9877" means every interface, IPv4 included, as in Go.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if address.family == socket.AF_INET6:
            host, _, scope = address.host.partition("%")
            sockaddr: tuple[str, int] | tuple[str, int, int, int] = (
                (host, address.port, 0, socket.if_nametoindex(scope)) if scope else (host, address.port)
            )
            sock.bind(sockaddr)
        else:
            sock.bind((address.host, address.port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def systemd_listeners(
    env: MutableMapping[str, str] | None = None, *, pid: int | None = None
) -> list[socket.socket]:
    """The listening sockets systemd passed (``LISTEN_FDS``), as ``sd_listen_fds(unset=1)``.

    Raises:
        ValueError: no descriptors were passed to this process, or one is not a listening
            TCP/stream socket (a ``.socket`` unit with ``Accept=yes`` passes connections).
    """
    env = os.environ if env is None else env
    pid = os.getpid() if pid is None else pid
    listen_pid, count = env.get("LISTEN_PID", ""), env.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if not listen_pid.isdigit() or int(listen_pid) != pid or not count.isdigit() or int(count) < 1:
        raise ValueError(
            "--web.systemd-socket: no socket activation file descriptors found "
            "(LISTEN_PID/LISTEN_FDS not set for this process; start it from a .socket unit)"
        )
    sockets: list[socket.socket] = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            reason = exc.strerror
            raise ValueError(f"--web.systemd-socket: descriptor {fd} is not a socket: {reason}") from None
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        if sock.type != socket.SOCK_STREAM or not listening:
            sock.detach()
            raise ValueError(
                f"--web.systemd-socket: descriptor {fd} is not a listening stream socket "
                "(use Accept=no in the .socket unit)"
            )
        sock.set_inheritable(False)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def open_files_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE`` (``None`` where there is no such limit, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def raise_open_files_limit() -> tuple[int, int] | None:
    """Raise the soft open-files limit to the hard limit, as the Go runtime does at start.

    Returns ``(old, new)`` soft limits when it changed anything, else ``None``. macOS
    refuses soft limits above ``OPEN_MAX`` (10240), so it is capped there, as Go caps it.
    """
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if sys.platform == "darwin" and (hard == resource.RLIM_INFINITY or hard > 10240):
        target = 10240
    if target == resource.RLIM_INFINITY or (soft != resource.RLIM_INFINITY and soft >= target):
        return None
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return int(soft), int(target)
    return None
