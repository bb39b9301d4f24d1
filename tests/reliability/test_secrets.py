"""Nothing leaked: the secret key and session token appear in no output of the exporter.

The daemon runs as a subprocess at debug level, in both log formats, with its credentials from
each source SPEC 3 names (inline, ``*_file``, the SDK environment variables), against a
simulator that knows the same key and token. Error paths are exercised on purpose: a second
account signs with a wrong variant of the key (AuthFailure every poll), and the good account
meets an API error, a connection reset and a timeout. Then every byte it wrote or served is
scanned, and so are ``--check-config`` reports and the client's own exceptions.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.credentials import Credential, Secret, StaticCredentials
from exporter.simulator import Account, Fault, FaultKind, SimulatorServer
from exporter.tencent.client import TencentClient
from exporter.tencent.errors import PollError

SECRET_ID = "AKIDreliabilityLEAKCHECK0123456789ab"
KEY = "LeakCheckSecretKEY-7f3a9c2e5b1d"
TOKEN = "LeakCheckSessionTOKEN-c0ffee42d00d"
WRONG_KEY = "LeakCheckWrongVariantKEY-7f3a9c2e5b1e"  # signs, but not with the simulator's key
SECRETS = (KEY, TOKEN, WRONG_KEY)
REGION = "ap-guangzhou"
REPO = Path(__file__).resolve().parents[2]
PAGES = ("/metrics", "/", "/events", "/healthz", "/readyz", "/nonexistent")


def assert_clean(text: str | bytes, where: str) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    for secret in SECRETS:
        assert secret not in text, f"{where} contains a secret"


def good_account(source: str, tmp_path: Path, endpoint: str) -> tuple[str, dict[str, str]]:
    """The config lines of account "good" and the environment, per credential source."""
    head = f"  - name: good\n    regions: [{REGION}]\n    endpoint: {endpoint}\n"
    if source == "inline":
        return (
            head + f'    secret_id: {SECRET_ID}\n    secret_key: "{KEY}"\n    session_token: "{TOKEN}"\n',
            {},
        )
    if source == "file":
        (tmp_path / "key").write_text(f"\n  {KEY}  \n", encoding="utf-8")
        (tmp_path / "token").write_text(f"{TOKEN}\n", encoding="utf-8")
        files = "    secret_key_file: key\n    session_token_file: token\n"
        return head + f"    secret_id: {SECRET_ID}\n" + files, {}
    token_var = "TENCENTCLOUD_TOKEN" if source == "env-tccli" else "TENCENTCLOUD_SESSION_TOKEN"
    env = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": KEY, token_var: TOKEN}
    return head, env


def write_config(tmp_path: Path, source: str, endpoint: str) -> tuple[Path, dict[str, str]]:
    good, env = good_account(source, tmp_path, endpoint)
    wrong = (
        f"  - name: wrong\n    regions: [{REGION}]\n    endpoint: {endpoint}\n"
        f'    secret_id: {SECRET_ID}\n    secret_key: "{WRONG_KEY}"\n    session_token: "{TOKEN}"\n'
    )
    path = tmp_path / "config.yml"
    path.write_text(f"poll_interval: 1s\nrequest_timeout: 400ms\naccounts:\n{good}{wrong}", encoding="utf-8")
    return path, env


@pytest.mark.parametrize(
    ("source", "fmt"),
    [("inline", "logfmt"), ("file", "json"), ("env", "json"), ("env-tccli", "logfmt")],
)
def test_daemon_never_shows_a_secret(
    source: str,
    fmt: str,
    tmp_path: Path,
    simulator: SimulatorServer,
    daemons: Callable[..., Any],
    kit: Any,
) -> None:
    world = simulator.world
    world.add_account(Account(secret_id=SECRET_ID, secret_key=KEY, token=TOKEN))
    for fault in (
        Fault(kind=FaultKind.ERROR, code="InternalError", times=3, secret_id=SECRET_ID),
        Fault(kind=FaultKind.RESET, secret_id=SECRET_ID),
        Fault(kind=FaultKind.DELAY, delay=2.0, secret_id=SECRET_ID),
    ):
        world.inject(fault)
    config, env = write_config(tmp_path, source, simulator.url)
    daemon = daemons(["--config.file", str(config), "--log.level", "debug", "--log.format", fmt], env=env)
    daemon.wait_ready()
    kit.wait_for(lambda: not world.faults.pending(), timeout=20, what="every fault served")
    good = {"account": "good", "region": REGION}
    wrong = {"account": "wrong", "region": REGION}
    kit.wait_for(lambda: daemon.value("tencent_live_up", **good) == 1, what="good account up again")
    assert daemon.value("tencent_live_up", **wrong) == 0
    for code in ("InternalError", "NetworkError", "Timeout"):
        assert (daemon.value("tencent_live_api_requests_total", **good, code=code) or 0) >= 1, code
    assert daemon.value("tencent_live_api_requests_total", **wrong, code="AuthFailure.SignatureFailure")

    served = {path: daemon.get(path) for path in PAGES}
    assert served["/healthz"].status_code == 200 and served["/readyz"].status_code == 200
    gzipped = httpx.get(daemon.url + "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5.0)
    assert daemon.terminate() == 0

    for path, response in served.items():
        assert_clean(response.content, path)
        assert_clean(json.dumps(dict(response.headers)), f"{path} headers")
    assert_clean(gzipped.content, "/metrics (gzip, decoded)")
    stderr, stdout = daemon.stderr, daemon.stdout
    # The error paths did run and were logged (else this test would prove little).
    for evidence in ("AuthFailure.SignatureFailure", "InternalError", "NetworkError", "Timeout"):
        assert evidence in stderr, evidence
    assert_clean(stderr, "stderr")
    assert_clean(stdout, "stdout")


def check_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--check-config", "--config.file", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        check=False,
    )


BAD_CONFIGS = {
    "unknown-region": f'accounts:\n  - name: a\n    secret_id: x\n    secret_key: "{KEY}"\n'
    f'    session_token: "{TOKEN}"\n    regions: [ap_mars]\n',
    "misspelt-key": f'accounts:\n  - name: a\n    secret_id: x\n    secret_kye: "{KEY}"\n',
    "misspelt-token-key": f'accounts:\n  - name: a\n    secret_id: x\n    secret_key: "{KEY}"\n'
    f'    sesion_token: "{TOKEN}"\n',
    "key-not-a-string": f"accounts:\n  - name: a\n    secret_id: x\n    secret_key: [{KEY}]\n",
    "key-and-file": f'accounts:\n  - name: a\n    secret_id: x\n    secret_key: "{KEY}"\n'
    "    secret_key_file: /nonexistent\n",
    "yaml-syntax-error": f'accounts:\n  - name: a\n    secret_id: x\n    secret_key: "{KEY}\n    x: [\n',
    "yaml-bad-indent": f"accounts:\n  - name: a\n    secret_key: {KEY}\n   session_token: {TOKEN}\n",
    "duplicate-key": f'accounts:\n  - name: a\n    secret_id: x\n    secret_key: "{KEY}"\n'
    f'    secret_key: "{TOKEN}"\n',
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_check_config_of_a_bad_config_shows_no_secret(name: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(BAD_CONFIGS[name], encoding="utf-8")
    result = check_config(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "invalid" in result.stdout or "error" in (result.stdout + result.stderr).lower()
    assert_clean(result.stdout, "stdout")
    assert_clean(result.stderr, "stderr")


@pytest.mark.parametrize("source", ["inline", "file", "env"])
def test_check_config_of_a_good_config_shows_no_secret(source: str, tmp_path: Path) -> None:
    path, env = write_config(tmp_path, source, "http://127.0.0.1:9")
    result = check_config(path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert_clean(result.stdout, "stdout")
    assert_clean(result.stderr, "stderr")


def closed_port_url() -> str:
    """A loopback URL whose port was just bound and closed: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def rendered(exc: BaseException) -> str:
    """Everything an operator (or a traceback) could see of an exception, its chain included."""
    return "\n".join(
        [str(exc), repr(exc), *traceback.format_exception(exc), repr(getattr(exc, "__dict__", {}))]
    )


def test_client_exceptions_show_no_secret(simulator: SimulatorServer) -> None:
    """Timeouts, resets, refusals and HTTP errors raised by the client, as str, repr and traceback."""
    simulator.world.add_account(Account(secret_id=SECRET_ID, secret_key=KEY, token=TOKEN))
    credential = Credential(SECRET_ID, Secret(KEY), Secret(TOKEN))
    endpoints = {"refused": closed_port_url(), "sim": simulator.url}

    async def collect() -> dict[str, PollError]:
        caught: dict[str, PollError] = {}
        async with httpx.AsyncClient(trust_env=False) as http:
            clients = {
                name: TencentClient(
                    http, endpoint=url, credentials=StaticCredentials(credential), timeout=0.3
                )
                for name, url in endpoints.items()
            }
            assert_clean(repr(clients["sim"]), "repr(client)")
            plan = {
                "timeout": Fault(kind=FaultKind.DELAY, delay=3.0),
                "reset": Fault(kind=FaultKind.RESET),
                "http-502": Fault(kind=FaultKind.HTTP_STATUS, status=502),
            }
            for name, fault in plan.items():
                simulator.world.inject(fault)
                with pytest.raises(PollError) as info:
                    await clients["sim"].describe_backup_stream_list(REGION)
                caught[name] = info.value
            with pytest.raises(PollError) as info:
                await clients["refused"].describe_backup_stream_list(REGION, "a-stream")
            caught["refused"] = info.value
        return caught

    caught = asyncio.run(collect())
    assert {name: exc.code for name, exc in caught.items()} == {
        "timeout": "Timeout",
        "reset": "NetworkError",
        "http-502": "HTTPError",
        "refused": "NetworkError",
    }
    for name, exc in caught.items():
        assert_clean(rendered(exc), name)
