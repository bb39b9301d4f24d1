"""The keys added for the field: credential sources, proxies, regions, expected streams, by-name drops."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.config import Config, ConfigError, ExpectedStreams, parse_config
from exporter.credentials import (
    DEFAULT_METADATA_ENDPOINT,
    DEFAULT_STS_ENDPOINT,
    SOURCES,
    CredentialSettings,
    Secret,
)

GOOD = Path(__file__).parent / "good"


def _parse(text: str, base_dir: Path = Path("/etc/exporter")) -> Config:
    return parse_config(text, source="c.yml", base_dir=base_dir, env={})


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _parse(text)
    return caught.value.problems


class TestCredentialKeys:
    def test_every_key_lands_in_credential_settings(self) -> None:
        config = _parse(
            """accounts:
  - name: prod
    credential_source: profile
    profile: live-readonly
    role_arn: qcs::cam::uin/100000000001:roleName/exporter
    role_session_name: tencent-live-exporter
    role_duration: 1h30m
    metadata_endpoint: http://127.0.0.1:8081/latest/meta-data/
    sts_endpoint: http://127.0.0.1:8082/
"""
        )
        assert config.accounts[0].credentials == CredentialSettings(
            source="profile",
            profile="live-readonly",
            role_arn="qcs::cam::uin/100000000001:roleName/exporter",
            role_session_name="tencent-live-exporter",
            role_duration=5400.0,
            metadata_endpoint="http://127.0.0.1:8081/latest/meta-data/",  # kept as written: it has a path
            sts_endpoint="http://127.0.0.1:8082",
        )

    def test_static_keys_by_file_are_only_paths(self, tmp_path: Path) -> None:
        for name in ("id", "key", "token"):
            (tmp_path / name).write_text(f"file-{name}-0123456789\n")
        config = _parse(
            """accounts:
  - name: prod
    credential_source: static
    secret_id_file: id
    secret_key_file: key
    session_token_file: token
""",
            base_dir=tmp_path,
        )
        assert config.accounts[0].credentials == CredentialSettings(
            source="static",
            secret_id_file=tmp_path / "id",
            secret_key_file=tmp_path / "key",
            session_token_file=tmp_path / "token",
        )

    @pytest.mark.parametrize("source", SOURCES)
    def test_each_source_is_accepted(self, source: str) -> None:
        extra = "    secret_key: inline-Key-0123456789\n" if source == "static" else ""
        config = _parse(f"accounts:\n  - name: a\n    credential_source: {source}\n{extra}")
        assert config.accounts[0].credentials.source == source

    def test_defaults(self) -> None:
        settings = _parse("accounts:\n  - name: a\n").accounts[0].credentials
        assert settings == CredentialSettings()
        assert (settings.source, settings.metadata_endpoint, settings.sts_endpoint) == (
            "auto",
            DEFAULT_METADATA_ENDPOINT,
            DEFAULT_STS_ENDPOINT,
        )

    def test_auto_with_keys_in_the_config(self) -> None:
        settings = _parse("accounts:\n  - name: a\n    secret_id: AKIDa\n    secret_key: k-0123456789\n")
        assert settings.accounts[0].credentials == CredentialSettings(
            secret_id="AKIDa", secret_key=Secret("k-0123456789")
        )

    def test_secret_id_alone_is_left_to_the_environment(self) -> None:
        """auto: a key from TENCENTCLOUD_SECRET_KEY may complete it at startup."""
        assert (
            _parse("accounts:\n  - name: a\n    secret_id: AKIDa\n").accounts[0].credentials.secret_id
            == "AKIDa"
        )

    def test_role_keys_with_tke_oidc_need_no_role_arn(self) -> None:
        text = "accounts:\n  - name: a\n    credential_source: tke_oidc\n    role_session_name: exporter\n"
        assert _parse(text).accounts[0].credentials.role_session_name == "exporter"

    @pytest.mark.parametrize(
        ("line", "fragment"),
        [
            ("role_duration: 0s", "must be greater than 0"),
            ("role_duration: 90", 'write "90s"'),
            ("role_session_name: x", "expected something like"),
            ("profile: ''", "is empty"),
            ("secret_id: ''", "is empty"),
            ("secret_key: ''", "is empty"),
        ],
    )
    def test_value_problems(self, line: str, fragment: str) -> None:
        problems = _problems(
            f"accounts:\n  - name: a\n    role_arn: qcs::cam::uin/1:roleName/r\n    {line}\n"
        )
        assert (
            len(problems) == 1 and fragment in problems[0] and problems[0].startswith("c.yml:4: accounts[0].")
        ), problems


class TestProxy:
    def test_proxy_url_is_kept_and_hidden_from_repr(self) -> None:
        account = _parse(
            "accounts:\n  - name: a\n    proxy_url: http://u:pw-0123456789@proxy:3128\n"
        ).accounts[0]
        assert account.proxy_url == "http://u:pw-0123456789@proxy:3128"
        assert "pw-0123456789" not in repr(account)

    def test_default_is_the_environment(self) -> None:
        assert _parse("accounts:\n  - name: a\n").accounts[0].proxy_url is None


class TestRegions:
    def test_undocumented_regions_warn_and_are_polled(self) -> None:
        path = GOOD / "undocumented_regions.yml"
        config = parse_config(path.read_text(), source=str(path), base_dir=GOOD, env={})
        assert config.accounts[0].regions == ("ap-guangzhou", "ap-mars", "ap-guangzou")
        assert config.warnings == (
            f'{path}:6: accounts[0].regions[1]: undocumented region "ap-mars" '
            "(known: ap-bangkok, ap-beijing, ap-guangzhou, ap-hongkong, ap-shanghai, ap-seoul, ap-tokyo); "
            "polled as written",
            f'{path}:7: accounts[0].regions[2]: undocumented region "ap-guangzou" '
            '(did you mean "ap-guangzhou"?); polled as written',
        )

    @pytest.mark.parametrize("region", ["na-siliconvalley", "eu-frankfurt", "ap-shanghai-fsi"])
    def test_well_formed_ids(self, region: str) -> None:
        assert _parse(f"accounts:\n  - name: a\n    regions: [{region}]\n").accounts[0].regions == (region,)

    @pytest.mark.parametrize("region", ["ap", "AP-BEIJING", "ap_beijing", "ap-", "-ap-beijing", "ap beijing"])
    def test_malformed_ids(self, region: str) -> None:
        problems = _problems(f"accounts:\n  - name: a\n    regions: ['{region}']\n")
        assert problems == [
            f'c.yml:3: accounts[0].regions[0]: malformed region "{region}" '
            + "(region ids look like ap-guangzhou)"
        ]


class TestSharedBudget:
    ACCOUNTS = """accounts:
  - name: live
    secret_id: AKIDshared
    secret_key: k1-0123456789
  - name: vod
    secret_id: AKIDshared
    secret_key: k2-0123456789
    endpoint: {endpoint}
"""

    def test_same_secret_id_and_endpoint_warns_naming_both(self) -> None:
        config = _parse(self.ACCOUNTS.format(endpoint="https://live.tencentcloudapi.com/"))
        assert config.warnings == (
            'c.yml:5: accounts[1]: accounts "live" and "vod" use the same secret_id and endpoint: the vendor '
            "counts one request budget for both, so rate_limit 20 + 20 may be throttled",
        )

    def test_other_endpoint_is_another_budget(self) -> None:
        assert _parse(self.ACCOUNTS.format(endpoint="http://127.0.0.1:9999")).warnings == ()


class TestDropConfirmQueries:
    @pytest.mark.parametrize(
        ("text", "value"), [("{}", 20), ("drop_confirm_queries: 0", 0), ("drop_confirm_queries: 5", 5)]
    )
    def test_values(self, text: str, value: int) -> None:
        assert _parse(text).drop_confirm_queries == value

    def test_not_a_duration(self) -> None:
        assert _problems("drop_confirm_queries: 5s") == [
            "c.yml:1: drop_confirm_queries: expected an integer, got a string"
        ]


class TestExpectedStreams:
    def test_names_and_patterns(self) -> None:
        config = _parse(
            """streams:
  expected:
    - live_main
    - "0123"
    - regex: "live_backup_.*"
"""
        )
        expected = config.streams.expected
        assert expected.names == frozenset({"live_main", "0123"})
        assert [p.pattern for p in expected.patterns] == ["live_backup_.*"]
        assert expected.matches("live_main") and expected.matches("live_backup_7")
        # full matches, as include/exclude
        assert not expected.matches("live_main2") and not expected.matches("xlive_backup_7")
        assert expected

    def test_default_is_empty_and_falsy(self) -> None:
        expected = _parse("{}").streams.expected
        assert expected == ExpectedStreams() and not expected and not expected.matches("anything")

    def test_patterns_are_not_checked_against_the_filter(self) -> None:
        """A pattern may match nothing today; only exact names can be known to be unreachable."""
        text = 'streams:\n  include: "live_.*"\n  expected: [{regex: "other_.*"}]\n'
        assert _parse(text).streams.expected.patterns[0] == re.compile("other_.*")

    def test_entry_of_the_wrong_shape(self) -> None:
        assert _problems("streams:\n  expected: [[a]]\n") == [
            "c.yml:2: streams.expected[0]: expected a stream name or {regex: ...}, got a list"
        ]


class TestBooleans:
    @pytest.mark.parametrize(
        ("value", "expected"), [("true", True), ("True", True), ("TRUE", True), ("false", False)]
    )
    def test_yaml_1_2_spellings(self, value: str, expected: bool) -> None:
        assert _parse(f"streams:\n  per_stream_metrics: {value}\n").streams.per_stream_metrics is expected

    @pytest.mark.parametrize(
        "value", ["yes", "no", "on", "off", "y", "n", "Yes", '"true"', "'false'", "1", "0"]
    )
    def test_everything_else_is_refused(self, value: str) -> None:
        problems = _problems(f"streams:\n  per_stream_metrics: {value}\n")
        assert len(problems) == 1 and "streams.per_stream_metrics: expected true or false" in problems[0]


def test_expected_name_outside_a_watch_list_warns() -> None:
    text = """streams:
  expected: [live_a, live_b, {regex: "x_.*"}]
accounts:
  - name: watch
    stream_names: [live_a]
    credential_source: env
  - name: full
"""
    assert _parse(text).warnings == (
        "c.yml:5: accounts[0].stream_names: expected streams not in this watch list are never queried "
        "and stay offline here: live_b",
    )


@pytest.mark.parametrize(
    ("keys", "what"),
    [
        ("secret_id_file: id\n    secret_key_file: key", "the same secret_id_file"),
        ("credential_source: cvm_role", "the same credential settings"),
        ("credential_source: profile\n    profile: live", "the same credential settings"),
    ],
)
def test_shared_budget_without_inline_secret_id(tmp_path: Path, keys: str, what: str) -> None:
    (tmp_path / "id").write_text("AKIDfile\n")
    (tmp_path / "key").write_text("file-Key-0123456789\n")
    text = f"accounts:\n  - name: a\n    {keys}\n  - name: b\n    {keys}\n"
    (warning,) = _parse(text, base_dir=tmp_path).warnings
    line = 4 + keys.count("\n")
    assert warning.startswith(f'c.yml:{line}: accounts[1]: accounts "a" and "b" use {what} and endpoint'), (
        warning
    )


def test_different_roles_are_different_budgets() -> None:
    text = """accounts:
  - name: a
    credential_source: cvm_role
    role_arn: qcs::cam::uin/1:roleName/a
  - name: b
    credential_source: cvm_role
    role_arn: qcs::cam::uin/1:roleName/b
"""
    assert _parse(text).warnings == ()
