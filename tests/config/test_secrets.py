"""A secret never appears in ConfigError text nor in the repr of any config value."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError, parse_config

KEY = "inline-Secret-Key-0123456789abcdef"
TOKEN = "inline-Session-Token-fedcba9876543210"
ENV_KEY = "env-Secret-Key-0123456789abcdef"
ENV_TOKEN = "env-Session-Token-0123456789"
ENV = {
    "TENCENTCLOUD_SECRET_ID": "AKIDenv",
    "TENCENTCLOUD_SECRET_KEY": ENV_KEY,
    "TENCENTCLOUD_SESSION_TOKEN": ENV_TOKEN,
}
SECRETS = (KEY, TOKEN, ENV_KEY, ENV_TOKEN)

ACCOUNT = f"""accounts:
  - name: prod
    secret_id: AKIDprod
    secret_key: {KEY}
    session_token: "{TOKEN}"
"""


def _error(text: str, env: dict[str, str] = ENV) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="c.yml", base_dir=Path("/nonexistent"), env=env)
    return caught.value


def _assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize(
    "text",
    [
        # errors elsewhere in an account holding inline secrets
        ACCOUNT + "    regions: [ap_mars]\n",
        ACCOUNT + "    endpoint: nope\n",
        ACCOUNT + "    colour: blue\n",
        ACCOUNT + "    secret_key_file: /dev/null\n",
        # the secret written as a key (a misplaced colon): the unknown-key echo is scrubbed
        ACCOUNT + f"    {KEY}: x\n",
        # the secret under a wrong type: never quoted
        "accounts:\n  - name: prod\n    secret_id: AKID\n" + f"    secret_key: [{KEY}]\n",
        "accounts:\n  - name: prod\n    secret_id: AKID\n" + f"    secret_key: {{k: {KEY}}}\n",
        # YAML syntax errors on the secret's own line: no snippet of the line is shown
        "accounts:\n  - name: prod\n" + f'    secret_key: "{KEY}\n',
        "accounts:\n  - name: prod\n" + f"    secret_key: {KEY}: {TOKEN}\n",
        "accounts:\n  - name: prod\n" + f"    secret_key:{KEY}\n    secret_id: x\n",
        f"\tsecret_key: {KEY}\n",
        # environment secrets, with the config broken around them
        "poll_interval: 15\n",
        f"accounts:\n  - name: {ENV_KEY}\n    regions: [ap_mars]\n",
        # a proxy password, with the URL wrong otherwise
        f"accounts:\n  - name: prod\n    proxy_url: ftp://u:{KEY}@proxy:3128\n",
        f"accounts:\n  - name: prod\n    proxy_url: http://u:{KEY}@proxy:3128\n    colour: {KEY}\n",
    ],
)
def test_error_text_never_holds_a_secret(text: str) -> None:
    error = _error(text)
    _assert_clean(str(error))
    _assert_clean(repr(error))
    _assert_clean(repr(error.problems))
    _assert_clean(str(error.args))


def test_echoed_secret_is_redacted_not_dropped() -> None:
    error = _error(ACCOUNT + f"    {KEY}: x\n")
    assert "accounts[0].<redacted>: unknown key" in str(error)


def test_exception_chain_holds_no_secret() -> None:
    # The YAML exception (whose str quotes the line) must not ride along as __context__.
    error = _error("accounts:\n  - name: prod\n" + f'    secret_key: "{KEY}\n')
    assert error.__cause__ is None
    chained = error.__context__
    while chained is not None:
        _assert_clean(str(chained))
        chained = chained.__context__


def test_reprs_of_values_hold_no_secret() -> None:
    config = parse_config(
        ACCOUNT + f"    proxy_url: http://u:{KEY}@proxy.internal:3128\n",
        source="c.yml",
        base_dir=Path(),
        env=ENV,
    )
    account = config.accounts[0]
    for text in (
        repr(config),
        str(config),
        repr(account),
        repr(account.credentials),
        str(account.credentials),
    ):
        _assert_clean(text)
    assert account.credentials.secret_key is not None and account.credentials.secret_key.reveal() == KEY
    assert (
        account.credentials.session_token is not None and account.credentials.session_token.reveal() == TOKEN
    )
    assert account.proxy_url == f"http://u:{KEY}@proxy.internal:3128"


def test_environment_is_not_read_at_load() -> None:
    config = parse_config("{}", source="c.yml", base_dir=Path(), env=ENV)
    _assert_clean(repr(config))
    assert config.accounts[0].credentials.secret_key is None


def test_key_file_content_never_in_messages(tmp_path: Path) -> None:
    key_file = tmp_path / "k"
    key_file.write_text(KEY)
    text = f"accounts:\n  - name: prod\n    secret_key_file: {key_file}\n    regions: [{KEY}]\n"
    _assert_clean(str(_error(text)))
