"""The command line as an operator meets it: a real ``python -m exporter`` process each time.

Flags (SPEC 3), exit codes, startup failures without tracebacks, ``--demo`` end to end, and
credentials taken only from the environment against the independent vendor fake.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter import __version__
from tests.e2e.harness import REPO, Exporter, await_condition, exporter_env
from tests.e2e.vendor_fake import Group, Listing, Pub, VendorFake

SPEC_FLAGS = (
    "--config.file",
    "--web.listen-address",
    "--web.telemetry-path",
    "--web.config.file",
    "--log.level",
    "--log.format",
    "--demo",
    "--check-config",
    "--version",
)
DEFAULT_REGIONS = ("ap-bangkok", "ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai")
SID, KEY, TOKEN = "AKIDcliEnvOnly000000001", "cli-env-only-secret-key-0001", "cli-env-session-token-0001"


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        env=exporter_env(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """\
poll_interval: 15s
accounts:
  - name: prod
    secret_id: AKIDgoodconfig
    secret_key: good-config-key-123
    regions: [ap-guangzhou, ap-hongkong]
"""

BAD = """\
poll_interval: 15s
accounts:
  - name: prod
    secret_id: AKIDgoodconfig
    secret_key: good-config-key-123
    regions:
      - ap-guangzhou
      - ap_mars
"""


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert __version__ in result.stdout
    assert result.stdout.startswith("tencent-live-exporter")


def test_help_mentions_every_spec_flag() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in SPEC_FLAGS:
        assert flag in result.stdout, flag
    assert ":9877" in result.stdout and "/metrics" in result.stdout  # defaults shown
    for value in ("debug", "info", "warn", "error", "logfmt", "json"):
        assert value in result.stdout


def test_check_config_good(tmp_path: Path) -> None:
    result = run_cli("--check-config", "--config.file", str(write(tmp_path, "good.yml", GOOD)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert "good-config-key-123" not in result.stdout + result.stderr


def test_check_config_demo_says_ok() -> None:
    result = run_cli("--check-config", "--demo")
    assert result.returncode == 0 and "--demo: OK" in result.stdout


def test_check_config_prints_warnings_and_exits_0(tmp_path: Path) -> None:
    text = "accounts:\n  - name: a\n    secret_id: AKIDqa\n    secret_key: k\n"
    text += "    regions: [na-siliconvalley]\n"
    result = run_cli("--check-config", "--config.file", str(write(tmp_path, "warn.yml", text)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning:" in result.stdout and "warn.yml:5:" in result.stdout
    assert "na-siliconvalley" in result.stdout


def test_check_config_bad_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yml", BAD)
    result = run_cli("--check-config", "--config.file", str(path))
    assert result.returncode == 1
    assert f"{path}:8:" in result.stdout
    assert "accounts[0].regions[1]" in result.stdout
    assert "ap_mars" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_check_config_bad_web_config(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yml", GOOD)
    web = write(tmp_path, "web.yml", "basic_auth_users:\n  alice: not-a-bcrypt-hash\nunknown_key: 1\n")
    result = run_cli("--check-config", "--config.file", str(good), "--web.config.file", str(web))
    assert result.returncode == 1
    assert str(web) in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("level", ["debug", "info", "warn", "error"])
def test_spec_log_levels_accepted(level: str) -> None:
    result = run_cli("--log.level", level, "--log.format", "json", "--version")
    assert result.returncode == 0, result.stderr


def test_unknown_log_level_rejected() -> None:
    result = run_cli("--log.level", "verbose", "--demo")
    assert result.returncode != 0
    assert "--log.level" in result.stderr and "verbose" in result.stderr


def test_bad_config_exits_1_with_a_clear_log_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yml", BAD)
    result = run_cli("--config.file", str(path), "--log.format", "json")
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "startup_failed" in line]
    assert len(lines) == 1, output
    assert "ap_mars" in lines[0] and "accounts[0].regions[1]" in lines[0]


def test_no_accounts_section_takes_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "env.yml", "poll_interval: 15s\n")
    env = {"TENCENTCLOUD_SECRET_ID": SID, "TENCENTCLOUD_SECRET_KEY": KEY}
    ok = run_cli("--check-config", "--config.file", str(path), env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 account" in ok.stdout and KEY not in ok.stdout
    # credential_source auto: whether a CVM role or TKE OIDC exists is only known at startup,
    # which fails at once, naming every source it tried (the metadata host points nowhere here).
    empty = tmp_path / "home"
    missing = run_cli(
        "--config.file",
        str(path),
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.format",
        "json",
        env={"HOME": str(empty)},
    )
    assert missing.returncode == 1
    [line] = [line for line in missing.stderr.splitlines() if "startup_failed" in line]
    assert "TENCENTCLOUD_SECRET_ID" in line and "profile" in line and "cvm_role" in line


def test_demo_serves_all_five_regions_and_stops_on_sigterm() -> None:
    with Exporter("--demo") as exporter:
        exporter.wait_ready()

        def all_up() -> bool:
            metrics = exporter.metrics()
            return all(metrics.get("tencent_live_up", account="demo", region=r) == 1 for r in DEFAULT_REGIONS)

        await_condition(all_up, timeout=30, what="tencent_live_up 1 in all five demo regions")
        # The demo polls with short-lived STS credentials, so renewal shows within minutes.
        assert exporter.metrics().get("tencent_live_credential_expiry_timestamp_seconds", account="demo")
        assert exporter.get("/readyz").status_code == 200
        assert exporter.get("/does-not-exist").status_code == 404
        code = exporter.terminate()
    assert code == 0, exporter.out + exporter.err
    assert "Traceback" not in exporter.out + exporter.err


@pytest.fixture
def fake() -> Iterator[VendorFake]:
    with VendorFake({SID: KEY}, tokens={SID: TOKEN}) as server:
        yield server


def test_credentials_from_environment_only_against_the_fake(tmp_path: Path, fake: VendorFake) -> None:
    fake.script("ap-guangzhou", [Listing.of(Group("env-stream", (Pub("77", master=True),)))])
    config = write(
        tmp_path,
        "env.yml",
        f"poll_interval: 1s\nrequest_timeout: 500ms\naccounts:\n  - name: envonly\n"
        f"    regions: [ap-guangzhou]\n    endpoint: {fake.url}\n",
    )
    env = {"TENCENTCLOUD_SECRET_ID": SID, "TENCENTCLOUD_SECRET_KEY": KEY, "TENCENTCLOUD_SESSION_TOKEN": TOKEN}
    with Exporter("--config.file", str(config), env=env) as exporter:
        exporter.wait_ready()

        def polled() -> bool:
            m = exporter.metrics()
            return (
                m.get(
                    "tencent_live_stream_online",
                    account="envonly",
                    region="ap-guangzhou",
                    stream="env-stream",
                )
                == 1
            )

        await_condition(polled, timeout=15, what="env-stream online")
        body = exporter.get("/metrics").text
        assert exporter.terminate() == 0
    assert not [code for code in fake.codes() if code.startswith("AuthFailure")]
    output = exporter.out + exporter.err
    for secret in (KEY, TOKEN):
        assert secret not in output and secret not in body
    assert re.search(r"starting", output)


def test_python_m_exporter_and_module_main_agree() -> None:
    # The console script and ``python -m exporter`` both call cli.main.
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from exporter.cli import main; sys.exit(main(['--version']))"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0 and __version__ in result.stdout


class TestMallocTuning:
    @pytest.mark.skipif(sys.platform != "linux", reason="glibc mallopt")
    def test_glibc_takes_a_fixed_mmap_threshold(self) -> None:
        from exporter.cli import tune_malloc

        assert tune_malloc({}) is True

    def test_an_operators_own_setting_wins(self) -> None:
        from exporter.cli import tune_malloc

        assert tune_malloc({"MALLOC_MMAP_THRESHOLD_": "131072"}) is False
