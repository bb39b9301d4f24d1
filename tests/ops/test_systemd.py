"""deploy/systemd: the hardened service, its socket unit and the socket-activation drop-in.

systemd-analyze verifies each unit where it exists; the socket path is exercised for real with
systemd-socket-activate (the LISTEN_FDS protocol systemd uses), running the exporter with the
drop-in's own flags.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "deploy" / "systemd"
SERVICE = SYSTEMD / "tencent-live-exporter.service"
SOCKET = SYSTEMD / "tencent-live-exporter.socket"
DROP_IN = SYSTEMD / "tencent-live-exporter.service.d" / "socket-activation.conf"
VENV_BINARY = "/opt/tencent-live-exporter/bin/tencent-live-exporter"


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, {})
            continue
        key, _, value = line.partition("=")
        sections[current].setdefault(key, []).append(value)
    return sections


def test_service_is_hardened() -> None:
    service = _unit(SERVICE)["Service"]
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "DynamicUser": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "StateDirectory": "tencent-live-exporter",
    }
    for key, value in expected.items():
        assert service.get(key) == [value], key
    assert "SystemCallFilter" in service
    assert service["EnvironmentFile"] == ["/etc/tencent-live-exporter/credentials.env"]
    assert _unit(SERVICE)["Install"]["WantedBy"] == ["multi-user.target"]


def test_service_runs_the_venv_install_reloads_on_hup_and_raises_the_fd_limit() -> None:
    service = _unit(SERVICE)["Service"]
    (exec_start,) = service["ExecStart"]
    (check,) = service["ExecStartPre"]
    for command in (exec_start, check):
        assert shlex.split(command)[0] == VENV_BINARY  # not /usr/local/bin: PEP 668 systems refuse pip there
        assert "--config.file=/etc/tencent-live-exporter/config.yml" in command
    assert "--check-config" in check
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["LimitNOFILE"] == ["65536"]
    # docs/deploy.md installs into exactly that venv
    deploy_md = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "python3 -m venv /opt/tencent-live-exporter" in deploy_md
    assert "/opt/tencent-live-exporter/bin/pip install" in deploy_md


def test_socket_unit_and_drop_in_switch_the_service_to_inherited_sockets() -> None:
    socket_unit = _unit(SOCKET)
    assert socket_unit["Socket"]["ListenStream"] == ["9877"]
    assert socket_unit["Install"]["WantedBy"] == ["sockets.target"]
    drop_in = _unit(DROP_IN)
    assert drop_in["Unit"]["Requires"] == [SOCKET.name]
    first, command = drop_in["Service"]["ExecStart"]
    assert first == ""  # resets the service's ExecStart instead of adding a second one
    argv = shlex.split(command)
    assert argv[0] == VENV_BINARY and "--web.systemd-socket" in argv
    assert not any(a.startswith("--web.listen-address") for a in argv)
    # same service name: the socket activates tencent-live-exporter.service
    assert SOCKET.stem == SERVICE.stem == DROP_IN.parent.name.removesuffix(".service.d")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("unit", [SERVICE, SOCKET], ids=lambda p: p.suffix.lstrip("."))
def test_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    # verify insists the binary exists; the venv is not installed on this machine.
    for path in (SERVICE, SOCKET):
        text = path.read_text(encoding="utf-8").replace(VENV_BINARY, "/bin/true")
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    target = tmp_path / unit.name
    result = subprocess.run(
        ["systemd-analyze", "verify", str(target)], check=False, capture_output=True, text=True, timeout=60
    )
    problems = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    assert result.returncode == 0 and problems == [], "\n".join(problems)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


@pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate not installed"
)
def test_socket_activation_serves_on_the_passed_socket(tmp_path: Path) -> None:
    """The drop-in's flags, with the socket passed as systemd passes it (LISTEN_FDS, fd 3)."""
    (_, command) = _unit(DROP_IN)["Service"]["ExecStart"]
    flags = [a for a in shlex.split(command)[1:] if not a.startswith("--config.file")]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    env["PYTHONPATH"] = str(REPO)
    log = tmp_path / "exporter.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                "systemd-socket-activate",
                "-l",
                f"127.0.0.1:{port}",
                "--",
                sys.executable,
                "-m",
                "exporter",
                "--demo",
                *flags,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status != 200:
            status = _get(f"http://127.0.0.1:{port}/healthz")
            if status != 200:
                time.sleep(0.1)  # polling interval of the deadline loop
        # Without --web.systemd-socket it would bind :9877 and never accept on fd 3: no answer here.
        assert status == 200, log.read_text(encoding="utf-8", errors="replace")[-2000:]
        assert f"address=127.0.0.1:{port}" in log.read_text(encoding="utf-8", errors="replace")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
