"""Good files parse to exactly the values they say, defaults filled in from SPEC section 4."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.config import (
    DEFAULT_REGIONS,
    AccountConfig,
    Config,
    ExpectedStreams,
    StreamFilter,
    demo_config,
    describe_config,
    load_config,
    parse_config,
)
from exporter.credentials import Credential, CredentialSettings, Secret

GOOD = Path(__file__).parent / "good"
ENV_KEY = "env-Secret-Key-0123456789abcdef"
ENV = {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": ENV_KEY}
SECRETS = GOOD / "secrets"


def test_minimal_takes_every_default() -> None:
    config = load_config(GOOD / "minimal.yml", env=ENV)
    assert config == Config(
        poll_interval=15.0,
        request_timeout=5.0,
        drop_confirmations=2,
        drop_confirm_queries=20,
        stream_retention=3600.0,
        state_file=None,
        streams=StreamFilter(
            include=re.compile(".*"),
            exclude=None,
            per_stream_metrics=True,
            max_per_region=20000,
            expected=ExpectedStreams(),
        ),
        accounts=(
            AccountConfig(
                name="default",
                credentials=CredentialSettings(),  # auto: resolved at startup, not at load
                regions=("ap-bangkok", "ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai"),
                rate_limit=20.0,
                endpoint="https://live.tencentcloudapi.com",
                stream_names=(),
                proxy_url=None,
            ),
        ),
    )
    assert config.warnings == ()


def test_loading_reads_no_environment() -> None:
    """Credentials are resolved per account at startup; the same file loads the same anywhere."""
    assert load_config(GOOD / "minimal.yml", env=ENV) == load_config(GOOD / "minimal.yml", env={})


def test_spec_example() -> None:
    config = load_config(GOOD / "spec_example.yml", env={})
    assert config == Config(
        state_file=Path("/var/lib/tencent-live-exporter/state.json"),
        accounts=(
            AccountConfig(
                name="prod",
                credentials=CredentialSettings(
                    secret_id="AKIDgoodfixture", secret_key_file=SECRETS / "tencent_key"
                ),
                regions=("ap-guangzhou", "ap-hongkong"),
            ),
        ),
    )


def test_full() -> None:
    config = load_config(GOOD / "full.yml", env=ENV)
    assert config.poll_interval == 90.0
    assert config.request_timeout == 1.5
    assert config.drop_confirmations == 3
    assert config.stream_retention == 7200.0
    assert config.state_file == GOOD / "state" / "state.json"  # relative to the config file
    assert config.streams.include.pattern == "live_.*"
    assert config.streams.exclude is not None and config.streams.exclude.pattern == ".*_test"
    assert config.streams.per_stream_metrics is False
    assert config.streams.max_per_region == 500
    prod, staging = config.accounts
    assert prod == AccountConfig(
        name="prod",
        credentials=CredentialSettings(
            secret_id="AKIDprod",
            secret_key=Secret("good-inline-key"),
            session_token=Secret("good-inline-token"),
        ),
        regions=("ap-seoul", "ap-tokyo", "ap-beijing"),
        rate_limit=7.5,
        endpoint="http://127.0.0.1:18080",  # trailing slash dropped
        stream_names=("live_a", "0123", "live_b"),  # "0123" stays a string, not the integer 123
    )
    assert staging == AccountConfig(
        name="staging",
        credentials=CredentialSettings(
            secret_id="AKIDstaging",
            secret_key_file=SECRETS / "tencent_key",
            session_token_file=SECRETS / "tencent_token",
        ),
    )


def test_merge_keys_and_explicit_override() -> None:
    east, west = load_config(GOOD / "merge_keys.yml", env={}).accounts
    assert (east.name, east.regions, east.rate_limit) == ("east", ("ap-hongkong",), 10.0)
    assert (west.name, west.regions, west.rate_limit) == ("west", ("ap-bangkok",), 10.0)
    shared = CredentialSettings(secret_id="AKIDshared", secret_key_file=SECRETS / "tencent_key")
    assert west.credentials == east.credentials == shared


def test_null_values_take_defaults() -> None:
    config = load_config(GOOD / "nulls.yml", env=ENV)
    assert config.poll_interval == 15.0
    assert config.state_file is None
    assert config.streams == StreamFilter()
    assert config.accounts[0].regions == DEFAULT_REGIONS
    assert config.accounts[0].stream_names == ()


def test_budget_warning_is_not_an_error() -> None:
    config = load_config(GOOD / "watch_list_over_budget.yml", env=ENV)
    path = GOOD / "watch_list_over_budget.yml"
    assert config.warnings == (
        f"{path}:3: request_timeout: equals poll_interval (request_timeout 2s vs poll_interval 2s); "
        "a slow reply delays the next poll",
        f"{path}:5: accounts[0]: 50 requests every 2s need 25.0/s, above rate_limit 20; "
        "each poll cycle will stretch to about 2s500ms",
    )


def test_warnings_do_not_affect_equality() -> None:
    with_warning = load_config(GOOD / "watch_list_over_budget.yml", env=ENV)
    assert with_warning == Config(
        poll_interval=2.0,
        request_timeout=2.0,
        accounts=(
            AccountConfig(
                name="prod",
                stream_names=tuple(f"s{i}" for i in range(10)),
            ),
        ),
    )


def test_relative_secret_file_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "k").write_text("tmp-Key-0123456789\n")
    text = "accounts:\n  - name: a\n    secret_id: AKIDa\n    secret_key_file: keys/k\n"
    config = parse_config(text, source="inline.yml", base_dir=tmp_path, env={})
    assert config.accounts[0].credentials.secret_key_file == tmp_path / "keys" / "k"
    (tmp_path / "cfg.yml").write_text(text)
    assert load_config(tmp_path / "cfg.yml", env={}) == config


def test_absolute_secret_file(tmp_path: Path) -> None:
    key = tmp_path / "abs-key"
    key.write_text("abs-Key-0123456789")
    text = f"accounts:\n  - name: a\n    secret_id: AKIDa\n    secret_key_file: {key}\n"
    config = parse_config(text, source="inline.yml", base_dir=Path("/nonexistent"), env={})
    assert config.accounts[0].credentials.secret_key_file == key


def test_config_keys_only_no_environment_mixed_in() -> None:
    text = "accounts:\n  - name: a\n    secret_id: AKIDcfg\n    secret_key: cfg-Key-0123456789\n"
    env = {**ENV, "TENCENTCLOUD_SESSION_TOKEN": "env-Token-0123456789"}
    settings = parse_config(text, source="x.yml", base_dir=Path(), env=env).accounts[0].credentials
    assert settings == CredentialSettings(secret_id="AKIDcfg", secret_key=Secret("cfg-Key-0123456789"))


def test_values_are_frozen() -> None:
    config = load_config(GOOD / "minimal.yml", env=ENV)
    with pytest.raises(AttributeError):
        config.poll_interval = 1.0  # type: ignore[misc]


class TestStreamFilter:
    @pytest.mark.parametrize(
        ("include", "exclude", "name", "admitted"),
        [
            (".*", None, "anything", True),
            ("live", None, "live", True),
            # anchored like Prometheus: a prefix or substring match is not enough
            ("live", None, "live2", False),
            ("live", None, "olive", False),
            ("live_.*", ".*_test", "live_main", True),
            ("live_.*", ".*_test", "live_main_test", False),
            # exclude is anchored too
            (".*", "test", "test_live", True),
            # alternation is grouped before anchoring
            ("a|b", None, "ab", False),
        ],
    )
    def test_admits(self, include: str, exclude: str | None, name: str, admitted: bool) -> None:
        streams = StreamFilter(include=re.compile(include), exclude=re.compile(exclude) if exclude else None)
        assert streams.admits(name) is admitted

    def test_empty_exclude_excludes_nothing(self) -> None:
        text = 'streams:\n  exclude: ""\n'
        config = parse_config(text, source="x.yml", base_dir=Path(), env=ENV)
        assert config.streams.exclude is None
        assert config.streams.admits("")


def test_demo_config() -> None:
    credential = Credential("AKIDdemo", Secret("demo-Key-0123456789"))
    config = demo_config("http://127.0.0.1:9999", credential)
    assert config == Config(
        poll_interval=5.0,
        request_timeout=2.0,
        drop_confirmations=2,
        stream_retention=600.0,
        accounts=(
            AccountConfig(
                name="demo",
                credentials=CredentialSettings(
                    source="static", secret_id="AKIDdemo", secret_key=Secret("demo-Key-0123456789")
                ),
                regions=DEFAULT_REGIONS,
                rate_limit=20.0,
                endpoint="http://127.0.0.1:9999",
            ),
        ),
    )


def test_describe_config_summarises_without_secrets() -> None:
    config = load_config(GOOD / "full.yml", env=ENV)
    assert describe_config(config) == (
        "2 accounts (prod: 3 regions, 3 watched streams, 7.5 req/s; staging: 5 regions, 20 req/s); "
        "poll_interval 1m30s, request_timeout 1s500ms, drop_confirmations 3, stream_retention 2h"
    )
    assert "good-inline-key" not in describe_config(config)
