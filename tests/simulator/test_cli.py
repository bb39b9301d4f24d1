"""``python -m exporter.simulator`` as a separate process, the way e2e tests start it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import orjson
import pytest
from tencentcloud.common.credential import Credential as SdkCredential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.live.v20180801 import live_client, models


def _start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator", "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # printed once listening; EOF if the process died
    if not line.startswith("simulator listening on "):
        process.kill()
        _, stderr = process.communicate(timeout=10)
        raise AssertionError(f"no URL line: {line!r} {stderr}")
    return process, line.rsplit(" ", 1)[1].strip()


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=10)  # also closes the pipes
    return process.returncode


def test_serves_the_configured_world_until_sigterm():
    process, url = _start(
        *("--secret-id", "AKIDcli", "--secret-key", "cli-key", "--streams", "4"),
        *("--regions", "ap-tokyo,ap-beijing", "--seed", "3", "--tick", "0", "--rate-limit", "7"),
    )
    try:
        state = orjson.loads(httpx.get(f"{url}/_sim/state", timeout=5).content)
        assert state["accounts"] == ["AKIDcli"]
        assert {r: v["streams"] for r, v in state["regions"].items()} == {"ap-tokyo": 4, "ap-beijing": 4}
        assert state["rate_limit"] == 7
        profile = ClientProfile(
            httpProfile=HttpProfile(endpoint=url.removeprefix("http://"), protocol="http")
        )
        client = live_client.LiveClient(SdkCredential("AKIDcli", "cli-key"), "ap-tokyo", profile)
        reply = client.DescribeBackupStreamList(models.DescribeBackupStreamListRequest())
        assert len(reply.StreamInfoList) == 4
    finally:
        assert _stop(process) == 0


def test_secrets_from_the_environment():
    env = {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": "env-key"}
    process, url = _start("--streams", "0", "--tick", "0", env=env)
    try:
        state = orjson.loads(httpx.get(f"{url}/_sim/state", timeout=5).content)
        assert state["accounts"] == ["AKIDenv"]
        assert "env-key" not in str(state)
    finally:
        assert _stop(process) == 0


@pytest.mark.parametrize(
    "args",
    [
        [],  # no secrets at all
        ["--secret-id", "A", "--secret-key", "k", "--regions", "ap-mars"],
        ["--secret-id", "A", "--secret-key", "k", "--listen", "nowhere"],
    ],
)
def test_bad_arguments_exit_2(args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    result = subprocess.run(
        [sys.executable, "-m", "exporter.simulator", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr
