"""Several listen addresses, systemd socket activation (LISTEN_FDS), the open-files limit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from exporter.web.landing import LandingConfig
from exporter.web.listeners import open_files_limit, raise_open_files_limit, systemd_listeners
from exporter.web.server import WebServer

REPO = Path(__file__).resolve().parents[2]


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


class TestSeveralAddresses:
    def test_every_listen_address_serves(self, serve_many):
        server = serve_many(["127.0.0.1:0", "127.0.0.1:0"])
        assert len(server.urls) == 2 and server.urls[0] != server.urls[1]
        for url in server.urls:
            assert httpx.get(f"{url}/healthz").status_code == 200

    def test_one_address_in_use_fails_start_and_frees_the_other(self, serve_many, sources):
        first = serve_many(["127.0.0.1:0"])
        free = listening_socket()
        free_port = free.getsockname()[1]
        free.close()
        other = WebServer(
            [f"127.0.0.1:{free_port}", f"127.0.0.1:{first.port}"], sources=sources(), landing=LandingConfig()
        )
        with pytest.raises(OSError):
            other.start()
        again = serve_many([f"127.0.0.1:{free_port}"])  # the first bind was released
        assert httpx.get(f"{again.url}/healthz").status_code == 200

    def test_nothing_to_listen_on(self, sources):
        with pytest.raises(ValueError, match="nothing to listen on"):
            WebServer((), sources=sources(), landing=LandingConfig())


class TestInheritedSockets:
    def test_served_in_process(self, serve_many):
        sock = listening_socket()
        server = serve_many([], inherited_sockets=[sock])
        assert server.port == sock.getsockname()[1]
        assert httpx.get(f"{server.url}/healthz").status_code == 200

    def test_systemd_protocol_is_read_and_unset(self):
        env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0", "LISTEN_FDNAMES": "web"}
        with pytest.raises(ValueError, match="no socket activation"):
            systemd_listeners(env)
        assert env == {}  # unset, as sd_listen_fds(1): children must not inherit them

    @pytest.mark.parametrize(
        "env",
        [{}, {"LISTEN_PID": "1", "LISTEN_FDS": "1"}, {"LISTEN_PID": "x", "LISTEN_FDS": "1"}],
    )
    def test_not_for_this_process(self, env):
        with pytest.raises(ValueError, match="no socket activation"):
            systemd_listeners(dict(env), pid=os.getpid())

    @pytest.mark.skipif(sys.platform != "linux", reason="systemd socket activation is Linux only")
    def test_a_real_process_serves_the_socket_it_inherits(self, tmp_path):
        """What systemd does: a listening socket at fd 3, LISTEN_FDS=1, LISTEN_PID of the child."""
        sock = listening_socket()
        port = sock.getsockname()[1]
        fd = sock.fileno()
        # The shim plays systemd's part after fork: socket at fd 3, LISTEN_PID = its own pid
        # (exec keeps it), then the exporter replaces it.
        shim = (
            "import os, sys\n"
            f"os.dup2({fd}, 3)\n"
            "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1')\n"
            "os.execv(sys.executable, [sys.executable, '-m', 'exporter', '--demo', '--web.systemd-socket'])\n"
        )
        with subprocess.Popen(
            [sys.executable, "-c", shim],
            cwd=REPO,
            pass_fds=(fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")},
        ) as proc:
            sock.close()  # only the child holds the socket now
            try:
                status = _await_status(f"http://127.0.0.1:{port}/healthz", proc)
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics")
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        assert status == 200
        assert metrics.status_code == 200 and b"tencent_live_" in metrics.content

    @pytest.mark.skipif(sys.platform != "linux", reason="systemd socket activation is Linux only")
    def test_a_process_without_sockets_says_so_and_exits_1(self):
        result = subprocess.run(
            [sys.executable, "-m", "exporter", "--demo", "--web.systemd-socket"],
            cwd=REPO,
            capture_output=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")},
            check=False,
        )
        assert result.returncode == 1
        assert b"no socket activation file descriptors found" in result.stdout + result.stderr


class TestOpenFilesLimit:
    @pytest.mark.skipif(sys.platform == "win32", reason="no RLIMIT_NOFILE")
    def test_raise_is_idempotent_at_the_hard_limit(self):
        import resource

        raise_open_files_limit()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert raise_open_files_limit() is None
        assert open_files_limit() == soft
        if sys.platform == "linux":
            assert soft == hard


def _await_status(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return httpx.get(url, timeout=2).status_code
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"no answer from {url} (exit code {proc.poll()})")
