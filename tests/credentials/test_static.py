"""Credentials: resolution order, *_file handling, and a Secret that never shows its value."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

from exporter.credentials import (
    Credential,
    CredentialError,
    CredentialSettings,
    Secret,
    SecretFileError,
    credential_from_env,
    read_secret_file,
    resolve_credential,
)

KEY = "k3y-Plaintext-0123456789abcdef"
TOKEN = "t0ken-Plaintext-fedcba9876543210"
ENV = {
    "TENCENTCLOUD_SECRET_ID": "AKIDenv",
    "TENCENTCLOUD_SECRET_KEY": KEY,
    "TENCENTCLOUD_SESSION_TOKEN": TOKEN,
}


class TestSecret:
    def test_repr_and_str_hide_the_value(self) -> None:
        secret = Secret(KEY)
        for text in (repr(secret), str(secret), f"{secret}", format(secret), f"{[secret]}"):
            assert KEY not in text
            assert "***" in text

    def test_reveal_returns_the_value(self) -> None:
        assert Secret(KEY).reveal() == KEY

    def test_equality_by_value(self) -> None:
        assert Secret(KEY) == Secret(KEY)
        assert Secret(KEY) != Secret("other")
        assert hash(Secret(KEY)) == hash(Secret(KEY))
        assert Secret(KEY) != KEY  # a Secret is not a str

    def test_refuses_pickling(self) -> None:
        with pytest.raises(TypeError, match="not picklable"):
            pickle.dumps(Secret(KEY))
        with pytest.raises(TypeError):
            pickle.dumps(Credential("AKID", Secret(KEY)))

    def test_copy_still_works(self) -> None:
        credential = Credential("AKID", Secret(KEY), Secret(TOKEN))
        assert copy.deepcopy(credential) == credential
        assert copy.copy(Secret(KEY)) == Secret(KEY)

    def test_has_no_instance_dict(self) -> None:
        # vars()/__dict__ dumps (debuggers, loggers) must not find the value.
        with pytest.raises(TypeError):
            vars(Secret(KEY))

    def test_rejects_non_str(self) -> None:
        with pytest.raises(TypeError):
            Secret(b"bytes")  # type: ignore[arg-type]


class TestCredential:
    def test_repr_hides_key_and_token(self) -> None:
        text = repr(Credential("AKIDvisible", Secret(KEY), Secret(TOKEN)))
        assert "AKIDvisible" in text
        assert KEY not in text and TOKEN not in text

    def test_secret_values_for_the_redactor(self) -> None:
        assert Credential("AKID", Secret(KEY), Secret(TOKEN)).secret_values() == (KEY, TOKEN)
        assert Credential("AKID", Secret(KEY)).secret_values() == (KEY,)


class TestFromEnvironment:
    def test_sdk_variables(self) -> None:
        credential = credential_from_env(ENV)
        assert credential == Credential("AKIDenv", Secret(KEY), Secret(TOKEN))

    def test_tccli_token_is_the_fallback(self) -> None:
        env = {**ENV, "TENCENTCLOUD_TOKEN": "tccli-token"}
        del env["TENCENTCLOUD_SESSION_TOKEN"]
        assert credential_from_env(env).token == Secret("tccli-token")

    def test_session_token_wins_over_tccli_token(self) -> None:
        env = {**ENV, "TENCENTCLOUD_TOKEN": "tccli-token"}
        assert credential_from_env(env).token == Secret(TOKEN)

    def test_no_token_is_fine(self) -> None:
        env = {k: v for k, v in ENV.items() if k != "TENCENTCLOUD_SESSION_TOKEN"}
        assert credential_from_env(env).token is None

    @pytest.mark.parametrize(
        ("env", "expected"),
        [
            # nothing at all: both halves are named, with the variable that would supply them
            ({}, ["TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"]),
            # an exported-but-empty variable counts as unset
            ({"TENCENTCLOUD_SECRET_ID": "", "TENCENTCLOUD_SECRET_KEY": KEY}, ["TENCENTCLOUD_SECRET_ID"]),
            ({"TENCENTCLOUD_SECRET_ID": "AKID"}, ["TENCENTCLOUD_SECRET_KEY"]),
        ],
    )
    def test_missing(self, env: dict[str, str], expected: list[str]) -> None:
        with pytest.raises(CredentialError) as caught:
            credential_from_env(env)
        assert len(caught.value.problems) == len(expected)
        for problem, variable in zip(caught.value.problems, expected, strict=True):
            assert variable in problem.message
            assert problem.key is None
        assert KEY not in str(caught.value)


class TestResolve:
    def test_config_wins_over_environment(self) -> None:
        settings = CredentialSettings(secret_id="AKIDcfg", secret_key=Secret("cfg-key"))
        credential = resolve_credential(settings, ENV)
        assert credential.secret_id == "AKIDcfg"
        assert credential.secret_key == Secret("cfg-key")

    def test_environment_token_not_paired_with_a_config_key(self) -> None:
        # A temporary token only works with the temporary key it was issued with.
        settings = CredentialSettings(secret_id="AKIDcfg", secret_key=Secret("cfg-key"))
        assert resolve_credential(settings, ENV).token is None

    def test_config_id_with_environment_key_keeps_environment_token(self) -> None:
        credential = resolve_credential(CredentialSettings(secret_id="AKIDcfg"), ENV)
        assert credential == Credential("AKIDcfg", Secret(KEY), Secret(TOKEN))

    def test_secret_key_file_is_stripped(self, tmp_path: Path) -> None:
        key_file = tmp_path / "key"
        key_file.write_text(f"  {KEY}\n\n")
        settings = CredentialSettings(secret_id="AKID", secret_key_file=key_file)
        assert resolve_credential(settings, {}).secret_key == Secret(KEY)

    def test_session_token_file(self, tmp_path: Path) -> None:
        (tmp_path / "key").write_text(KEY)
        (tmp_path / "token").write_text(TOKEN + "\n")
        settings = CredentialSettings(
            secret_id="AKID", secret_key_file=tmp_path / "key", session_token_file=tmp_path / "token"
        )
        assert resolve_credential(settings, ENV) == Credential("AKID", Secret(KEY), Secret(TOKEN))

    def test_inline_session_token(self) -> None:
        settings = CredentialSettings(secret_id="AKID", secret_key=Secret(KEY), session_token=Secret(TOKEN))
        assert resolve_credential(settings, {}).token == Secret(TOKEN)

    def test_file_problems_do_not_fall_back_to_environment(self, tmp_path: Path) -> None:
        # A configured but broken file is an error, not a silent switch to other credentials.
        settings = CredentialSettings(secret_id="AKID", secret_key_file=tmp_path / "missing")
        with pytest.raises(CredentialError) as caught:
            resolve_credential(settings, ENV)
        (problem,) = caught.value.problems
        assert problem.key == "secret_key_file"
        assert "No such file" in problem.message

    def test_both_inline_and_file(self, tmp_path: Path) -> None:
        settings = CredentialSettings(
            secret_id="AKID", secret_key=Secret(KEY), secret_key_file=tmp_path / "k"
        )
        with pytest.raises(CredentialError) as caught:
            resolve_credential(settings, {})
        (problem,) = caught.value.problems
        assert problem.key == "secret_key_file"
        assert "not both" in problem.message
        assert KEY not in str(caught.value)

    @pytest.mark.parametrize(
        ("settings", "key"),
        [
            (CredentialSettings(secret_id="", secret_key=Secret(KEY)), "secret_id"),
            (CredentialSettings(secret_id="AKID", secret_key=Secret("")), "secret_key"),
            (
                CredentialSettings(secret_id="AKID", secret_key=Secret(KEY), session_token=Secret("")),
                "session_token",
            ),
        ],
    )
    def test_empty_values(self, settings: CredentialSettings, key: str) -> None:
        with pytest.raises(CredentialError) as caught:
            resolve_credential(settings, ENV)
        assert [p.key for p in caught.value.problems] == [key]

    def test_collects_all_problems(self, tmp_path: Path) -> None:
        settings = CredentialSettings(
            secret_key_file=tmp_path / "nokey", session_token_file=tmp_path / "notoken"
        )
        with pytest.raises(CredentialError) as caught:
            resolve_credential(settings, {})
        assert [p.key for p in caught.value.problems] == [None, "secret_key_file", "session_token_file"]


class TestReadSecretFile:
    def test_empty_after_strip(self, tmp_path: Path) -> None:
        path = tmp_path / "blank"
        path.write_text(" \n\t\n")
        with pytest.raises(SecretFileError, match="is empty"):
            read_secret_file(path)

    def test_unreadable_names_path_not_content(self, tmp_path: Path) -> None:
        with pytest.raises(SecretFileError) as caught:
            read_secret_file(tmp_path)  # a directory
        assert str(tmp_path) in str(caught.value)

    def test_not_utf8_does_not_quote_bytes(self, tmp_path: Path) -> None:
        path = tmp_path / "bin"
        path.write_bytes(b"secret\xff\xfe")
        with pytest.raises(SecretFileError) as caught:
            read_secret_file(path)
        assert "UTF-8" in str(caught.value)
        assert "secret" not in str(caught.value).replace(str(path), "")
        assert "0xff" not in str(caught.value)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
