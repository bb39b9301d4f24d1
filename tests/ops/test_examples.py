"""Docs that work as written: the example config validates, the image health check survives TLS
and basic auth.

The example config is checked by the installed console script exactly as docs/deploy.md tells
users to; the health check script runs against the real exporter (``--demo``) with and without
a web config.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest

from tests._cli import check_config
from tests._tls import self_signed

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "config.example.yml"
HEALTHCHECK = REPO / "deploy" / "healthcheck.py"
DOCS = (REPO / "docs" / "deploy.md", REPO / "README.md")


def _console_script() -> list[str]:
    """`tencent-live-exporter` as installed next to this interpreter, else `python -m exporter`."""
    script = Path(sys.executable).with_name("tencent-live-exporter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "exporter"]


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return check_config(path, command=_console_script())


# ------------------------------------------------------------------------------ example config


def test_example_config_passes_check_config() -> None:
    result = _check_config(EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_example_config_commented_expected_entries_are_valid(tmp_path: Path) -> None:
    """The commented `streams.expected` forms are real syntax, not prose."""
    text = EXAMPLE.read_text(encoding="utf-8")
    entries = re.findall(r"^  #  (- .*?)\s+#", text, flags=re.MULTILINE)
    assert len(entries) == 2
    enabled = text.replace("  expected: []\n", "  expected:\n" + "".join(f"    {e}\n" for e in entries))
    assert enabled != text
    path = tmp_path / "config.yml"
    path.write_text(enabled, encoding="utf-8")
    result = _check_config(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_config_catches_a_mistake(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace("poll_interval:", "poll_intervall:"), "utf-8")
    result = _check_config(path)
    assert result.returncode == 1 and "poll_intervall" in result.stdout + result.stderr


def test_docs_install_the_example_config() -> None:
    for doc in DOCS:
        assert "deploy/config.example.yml" in doc.read_text(encoding="utf-8"), doc.name
    assert "config.yml" in (REPO / "deploy" / "helm" / "tencent-live-exporter" / "values.yaml").read_text(
        "utf-8"
    )


# ------------------------------------------------------------------------------ image health check


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthcheck(address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), address], check=False, capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start ``--demo`` with an optional web config; yields a starter returning the address."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(web_config: str | None = None) -> str:
        port = _free_port()
        argv = [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", f"127.0.0.1:{port}"]
        if web_config is not None:
            path = tmp_path / "web.yml"
            path.write_text(web_config, encoding="utf-8")
            argv += ["--web.config.file", str(path)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
        log = (tmp_path / "exporter.log").open("wb")
        procs.append(subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return f"127.0.0.1:{port}"
            if procs[-1].poll() is not None:
                break
            time.sleep(0.1)  # polling interval of the deadline loop
        pytest.fail(
            "exporter did not listen: " + (tmp_path / "exporter.log").read_text(errors="replace")[-2000:]
        )

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=15)


def test_healthcheck_plain_http(exporter: Callable[..., str]) -> None:
    result = _healthcheck(exporter())
    assert result.returncode == 0 and "http /healthz 200" in result.stdout, result.stdout


def test_healthcheck_with_tls_and_basic_auth(exporter: Callable[..., str], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    hashed = bcrypt.hashpw(b"scrape-password", bcrypt.gensalt(rounds=4)).decode()
    address = exporter(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f'basic_auth_users:\n  prometheus: "{hashed}"\n'
    )
    # The old HEALTHCHECK (plain urlopen of /healthz) fails against this exporter ...
    with pytest.raises((urllib.error.URLError, OSError)):
        urllib.request.urlopen(f"http://{address}/healthz", timeout=4)
    # ... the shipped one, without any credentials, does not.
    result = _healthcheck(address)
    log = (tmp_path / "exporter.log").read_text(encoding="utf-8", errors="replace")[-3000:]
    assert result.returncode == 0 and "https /healthz 401" in result.stdout, result.stdout + log


def test_healthcheck_fails_when_nothing_answers() -> None:
    result = _healthcheck(f"127.0.0.1:{_free_port()}")
    assert result.returncode == 1 and result.stdout.startswith("unhealthy")


def test_image_ships_the_healthcheck_it_runs() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    (target,) = re.findall(r"^COPY deploy/healthcheck\.py (\S+)$", dockerfile, flags=re.MULTILINE)
    health = dockerfile[dockerfile.index("HEALTHCHECK") :]
    assert f'"{target}"' in health
