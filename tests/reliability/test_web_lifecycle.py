"""The web surface of a real daemon: ``POST /-/reload`` with ``--web.enable-lifecycle``, several
listen addresses, and the web server's own metrics on ``/metrics``."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from exporter.simulator import SimulatorServer

REGION = "ap-guangzhou"


def write_config(path: Path, simulator: SimulatorServer, regions: str) -> Path:
    secret_id = simulator.world.secret_ids[0]
    account = simulator.world.account(secret_id)
    assert account is not None
    path.write_text(
        f"""\
poll_interval: 1s
request_timeout: 500ms
accounts:
  - name: prod
    secret_id: {json.dumps(secret_id)}
    secret_key: {json.dumps(account.secret_key)}
    regions: {regions}
    endpoint: {simulator.url}
""",
        encoding="utf-8",
    )
    return path


def test_reload_over_http(
    tmp_path: Path, simulator: SimulatorServer, daemons: Callable[..., Any], kit: Any
) -> None:
    config = write_config(tmp_path / "config.yml", simulator, f"[{REGION}]")
    daemon = daemons(["--config.file", str(config), "--web.enable-lifecycle"])
    daemon.wait_ready()
    assert daemon.get("/-/reload").status_code == 405

    write_config(config, simulator, f"[{REGION}, ap-hongkong]")
    r = httpx.post(f"{daemon.url}/-/reload", timeout=30)
    assert r.status_code == 200, r.text
    kit.wait_for(
        lambda: daemon.value("tencent_live_up", account="prod", region="ap-hongkong") == 1,
        what="the region added by the reload polled",
    )
    assert daemon.value("tencent_live_config_last_reload_successful") == 1

    config.write_text("accounts: [\n", encoding="utf-8")  # broken YAML: nothing may change
    r = httpx.post(f"{daemon.url}/-/reload", timeout=30)
    assert r.status_code == 500
    assert r.text.startswith("failed to reload config")
    assert f"{config}:2: YAML syntax error" in r.text  # the reason, as the log says it
    assert daemon.value("tencent_live_config_last_reload_successful") == 0
    assert daemon.value("tencent_live_up", account="prod", region="ap-hongkong") == 1
    assert daemon.get("/healthz").status_code == 200


def test_reload_is_forbidden_without_the_flag(
    tmp_path: Path, simulator: SimulatorServer, daemons: Callable[..., Any]
) -> None:
    config = write_config(tmp_path / "config.yml", simulator, f"[{REGION}]")
    daemon = daemons(["--config.file", str(config)])
    daemon.wait_ready()
    r = httpx.post(f"{daemon.url}/-/reload")
    assert (r.status_code, r.text) == (403, "Lifecycle API is not enabled.\n")


def test_every_listen_address_serves_and_web_metrics_are_exported(
    tmp_path: Path, simulator: SimulatorServer, daemons: Callable[..., Any], kit: Any
) -> None:
    config = write_config(tmp_path / "config.yml", simulator, f"[{REGION}]")
    other = _free_port()
    daemon = daemons(["--config.file", str(config), "--web.listen-address", f"127.0.0.1:{other}"])
    daemon.wait_ready()
    assert httpx.get(f"http://127.0.0.1:{other}/healthz").status_code == 200
    samples = daemon.samples()
    assert samples[("tencent_live_http_connections_rejected_total", frozenset())] == 0
    assert samples[("tencent_live_http_connections_max", frozenset())] >= 16


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
