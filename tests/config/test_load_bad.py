"""One bad file per failure, each with the key path and line its message must name.

Modelled on blackbox_exporter's TestLoadBadConfigs: the table is the documentation of what
``--check-config`` says about each mistake.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config

BAD = Path(__file__).parent / "bad"
ENV_KEY = "env-Secret-Key-0123456789abcdef"
ENV = {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": ENV_KEY}
# Values written in the bad files' secret keys (and one endpoint password): never in a message.
FIXTURE_SECRET = "bad-fixture-value"

Expected = tuple[int, str, str]  # line, key path ("" for the file as a whole), message fragment


def _case(name: str, *expected: Expected, env: dict[str, str] = ENV) -> object:
    return pytest.param(name, list(expected), env, id=name.removesuffix(".yml"))


CASES = [
    # unknown and duplicate keys
    _case("unknown_key.yml", (2, "poll_intervall", 'did you mean "poll_interval"?')),
    _case("unknown_account_key.yml", (3, "accounts[0].secret_kye", 'did you mean "secret_key"?')),
    _case("unknown_streams_key.yml", (2, "streams.includes", 'did you mean "include"?')),
    _case("duplicate_key.yml", (3, "poll_interval", "duplicate key (first set on line 1)")),
    # wrong types
    _case("streams_not_mapping.yml", (2, "streams", "expected a mapping, got a list")),
    _case("per_stream_metrics_not_bool.yml", (2, "streams.per_stream_metrics", "expected true or false")),
    _case("top_level_list.yml", (1, "", "expected a mapping, got a list")),
    _case("accounts_not_list.yml", (2, "accounts", "expected a list, got a mapping")),
    _case("account_not_mapping.yml", (2, "accounts[0]", "expected a mapping, got a string")),
    _case("secret_key_not_string.yml", (4, "accounts[0].secret_key", "expected a string, got a mapping")),
    _case("rate_limit_not_number.yml", (3, "accounts[0].rate_limit", "expected a number, got a string")),
    _case("drop_confirmations_float.yml", (1, "drop_confirmations", "expected an integer, got a number")),
    # regions: any well-formed id (an undocumented one is only a warning, see good/)
    _case("region_malformed.yml", (3, "accounts[0].regions[1]", 'malformed region "AP Beijing"')),
    _case("duplicate_region.yml", (3, "accounts[0].regions[2]", 'duplicate "ap-beijing" (first on line 3)')),
    _case("empty_regions.yml", (3, "accounts[0].regions", "is empty")),
    # regexes
    _case("bad_include_regex.yml", (2, "streams.include", "invalid regex 'live_(a|b': missing )")),
    _case("bad_exclude_regex.yml", (3, "streams.exclude", "nothing to repeat at position 0")),
    _case("empty_include.yml", (2, "streams.include", "admits no stream")),
    # durations
    _case("duration_plain_number.yml", (1, "poll_interval", 'has no unit: write "15s"')),
    _case("duration_bad_unit.yml", (2, "stream_retention", 'invalid duration "1 hour"')),
    _case("duration_wrong_order.yml", (2, "request_timeout", "largest first")),
    _case("duration_not_scalar.yml", (1, "poll_interval", "expected a duration such as 15s, got a list")),
    # numbers out of range
    _case("poll_interval_zero.yml", (1, "poll_interval", "must be greater than 0")),
    _case("request_timeout_zero.yml", (1, "request_timeout", "must be greater than 0")),
    _case("timeout_exceeds_interval.yml", (2, "request_timeout", "must not exceed poll_interval")),
    _case("default_timeout_exceeds_interval.yml", (2, "request_timeout", "the default request_timeout 5s")),
    _case("drop_confirmations_zero.yml", (1, "drop_confirmations", "must be at least 1, got 0")),
    _case("max_per_region_zero.yml", (2, "streams.max_per_region", "must be at least 1")),
    _case("rate_limit_zero.yml", (3, "accounts[0].rate_limit", "greater than 0")),
    # credentials: checked statically; the environment and instance roles are read at startup
    _case("static_without_key.yml", (2, "accounts[0]", "credential_source static needs secret_key or")),
    _case(
        "credential_source_typo.yml",
        (
            3,
            "accounts[0].credential_source",
            'unknown credential_source "cvm-role" (did you mean "cvm_role"?)',
        ),
    ),
    _case(
        "secret_key_with_env_source.yml",
        (4, "accounts[0].secret_key", "is used only with credential_source static or auto, not env"),
    ),
    _case("secret_id_and_file.yml", (4, "accounts[0].secret_id_file", "either secret_id or secret_id_file")),
    _case(
        "profile_with_static_source.yml",
        (5, "accounts[0].profile", "is used only with credential_source profile or auto, not static"),
    ),
    _case("role_duration_too_long.yml", (5, "accounts[0].role_duration", 'must be at most 12h, got "13h"')),
    _case("role_arn_malformed.yml", (3, "accounts[0].role_arn", "expected something like qcs::cam::uin/")),
    _case("role_session_name_without_role.yml", (4, "accounts[0].role_session_name", "only with role_arn")),
    _case("sts_endpoint_path.yml", (3, "accounts[0].sts_endpoint", "scheme://host[:port] only")),
    _case("metadata_endpoint_scheme.yml", (4, "accounts[0].metadata_endpoint", "http:// or https:// URL")),
    _case("proxy_url_scheme.yml", (3, "accounts[0].proxy_url", "http:// or https:// URL")),
    _case("secret_key_file_missing.yml", (4, "accounts[0].secret_key_file", "No such file or directory")),
    _case(
        "secret_key_file_empty.yml",
        (4, "accounts[0].secret_key_file", '"/dev/null" is a device, not a regular file'),
    ),
    _case(
        "secret_key_and_file.yml", (5, "accounts[0].secret_key_file", "either secret_key or secret_key_file")
    ),
    _case("session_token_file_missing.yml", (5, "accounts[0].session_token_file", "cannot read")),
    # accounts
    _case("accounts_empty.yml", (1, "accounts", "is empty")),
    _case("account_missing_name.yml", (2, "accounts[0].name", "required")),
    _case(
        "duplicate_account.yml", (4, "accounts[2].name", 'duplicate account name "prod" (first on line 2)')
    ),
    _case("stream_names_duplicate.yml", (6, "accounts[0].stream_names[2]", 'duplicate "live_a"')),
    _case("endpoint_scheme.yml", (3, "accounts[0].endpoint", "must be an http:// or https:// URL")),
    _case("endpoint_no_scheme.yml", (3, "accounts[0].endpoint", "must be an http:// or https:// URL")),
    _case("endpoint_path.yml", (3, "accounts[0].endpoint", "scheme://host[:port] only")),
    _case("endpoint_userinfo.yml", (3, "accounts[0].endpoint", "must not contain user:password")),
    _case("state_file_empty.yml", (1, "state_file", "is an empty path")),
    _case("drop_confirm_queries_negative.yml", (2, "drop_confirm_queries", "must be at least 0, got -1")),
    # expected streams
    _case("expected_bad_regex.yml", (4, "streams.expected[1].regex", "invalid regex 'live_(a|b'")),
    _case(
        "expected_entry_unknown_key.yml",
        (3, "streams.expected[0].regexp", 'did you mean "regex"?'),
        (3, "streams.expected[0].regex", "required"),
    ),
    _case(
        "expected_excluded.yml",
        (3, "streams.expected", '"backup_feed" is excluded by streams.include/exclude'),
    ),
    _case("expected_duplicate.yml", (4, "streams.expected[1]", 'duplicate "live_main" (first on line 3)')),
    # booleans: YAML 1.2 true/false only, never quoted
    _case("boolean_yes.yml", (2, "streams.per_stream_metrics", 'expected true or false, got "yes"')),
    _case("boolean_quoted.yml", (2, "streams.per_stream_metrics", "expected true or false, got a string")),
    # the file itself
    _case("empty.yml", (1, "", "the file is empty")),
    _case(
        "yaml_syntax.yml",
        (5, "", "YAML syntax error at column 16: while parsing a flow sequence, expected ',' or ']'"),
    ),
    _case(
        "multiple_documents.yml",
        (2, "", "expected a single document in the stream, but found another document"),
    ),
    # all problems at once, sorted by line
    _case(
        "many_problems.yml",
        (2, "poll_interval", 'write "15s"'),
        (3, "drop_confirmations", "must be at least 1"),
        (5, "streams.include", "invalid regex"),
        (6, "streams.colour", "unknown key"),
        (11, "accounts[0].regions[1]", 'malformed region "ap_mars"'),
        (12, "accounts[0].rate_limit", "greater than 0"),
        (13, "accounts[0].endpoint", "http:// or https://"),
        (14, "accounts[1].name", 'duplicate account name "prod" (first on line 8)'),
    ),
]


@pytest.mark.parametrize(("name", "expected", "env"), CASES)
def test_load_bad_configs(name: str, expected: list[Expected], env: dict[str, str]) -> None:
    path = BAD / name
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    problems = caught.value.problems
    assert len(problems) == len(expected), "\n".join(problems)
    for problem, (line, key_path, fragment) in zip(problems, expected, strict=True):
        prefix = f"{path}:{line}: " + (f"{key_path}: " if key_path else "")
        assert problem.startswith(prefix), problem
        assert fragment in problem, problem
    text = str(caught.value)
    assert text == "\n".join(problems)
    for secret in (FIXTURE_SECRET, ENV_KEY, *env.values()):
        if secret and not secret.startswith("AKID"):
            assert secret not in text


def test_every_bad_file_is_in_the_table() -> None:
    listed = {p.values[0] for p in CASES}  # type: ignore[attr-defined]
    assert listed == {p.name for p in BAD.glob("*.yml")}


def test_relative_secret_file_resolves_against_the_config_directory() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(BAD / "secret_key_file_missing.yml", env=ENV)
    assert f'"{BAD / "does-not-exist.key"}"' in str(caught.value)


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.yml", env=ENV)
    assert caught.value.problems == [
        f"{tmp_path / 'absent.yml'}: cannot read config file: No such file or directory"
    ]


def test_config_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes(b"accounts:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_config(path, env=ENV)
