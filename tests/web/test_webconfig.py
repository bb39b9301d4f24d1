"""``--web.config.file``: exporter-toolkit format, strict, every problem with key and line."""

from __future__ import annotations

import ssl
import textwrap
from pathlib import Path

import pytest

from exporter.web.webconfig import (
    WebConfig,
    WebConfigError,
    load_web_config,
    parse_web_config,
)

HASH = "$2b$04$zoQIcZDSBeZ00KrY/4lKJOCQ1HZElkJuSFuJuWJp1/jDOmgU4zr3C"  # cost 4, password "secret"


def write(tmp_path: Path, text: str, name: str = "web.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(WebConfigError) as info:
        load_web_config(write(tmp_path, text))
    return info.value.problems


def tls_block(pki, **extra: str) -> str:
    lines = [f"  cert_file: {pki.server_cert}", f"  key_file: {pki.server_key}"]
    lines += [f"  {key}: {value}" for key, value in extra.items()]
    return "tls_server_config:\n" + "\n".join(lines) + "\n"


class TestGood:
    def test_empty_file_is_plain_http(self, tmp_path):
        config = load_web_config(write(tmp_path, ""))
        assert (config.tls, dict(config.users), dict(config.headers), config.rate_limit) == (
            None,
            {},
            {},
            None,
        )

    def test_everything(self, tmp_path, pki):
        path = write(
            tmp_path,
            f"""
            tls_server_config:
              cert_file: {pki.server_cert}
              key_file: {pki.server_key}
              client_auth_type: RequireAndVerifyClientCert
              client_ca_file: {pki.ca}
              client_allowed_sans: [client.example]
              min_version: TLS13
              max_version: TLS13
            http_server_config:
              http2: false
              headers:
                X-Frame-Options: deny
                Strict-Transport-Security: max-age=31536000
            basic_auth_users:
              alice: {HASH}
              "bob smith": '{HASH}'
            rate_limit:
              interval: 1m30s
              burst: 5
            """,
        )
        config = load_web_config(path)
        assert config.tls is not None
        assert config.tls.context.minimum_version == ssl.TLSVersion.TLSv1_3
        assert config.tls.context.verify_mode == ssl.CERT_REQUIRED
        assert config.tls.client_allowed_sans == frozenset({"client.example"})
        assert set(config.users) == {"alice", "bob smith"}
        assert dict(config.headers) == {
            "X-Frame-Options": "deny",
            "Strict-Transport-Security": "max-age=31536000",
        }
        assert (config.rate_limit.interval, config.rate_limit.burst) == (90.0, 5)  # type: ignore[union-attr]
        assert config.http2 is False

    def test_relative_paths_resolve_against_the_file_directory(self, tmp_path, pki):
        elsewhere = tmp_path / "conf"
        elsewhere.mkdir()
        for src in (pki.server_cert, pki.server_key):
            (elsewhere / src.name).write_bytes(src.read_bytes())
        path = write(elsewhere, "tls_server_config:\n  cert_file: server.crt\n  key_file: ./server.key\n")
        assert load_web_config(path).tls is not None  # cwd is the repo root, not conf/

    def test_inline_cert_and_key(self, tmp_path, pki):
        indent = lambda p: textwrap.indent(p.read_text(), "    ")  # noqa: E731
        text = f"tls_server_config:\n  cert: |\n{indent(pki.server_cert)}  key: |\n{indent(pki.server_key)}"
        assert load_web_config(write(tmp_path, text)).tls is not None

    def test_tls_section_without_tls_fields_is_plain_http(self, tmp_path):
        assert load_web_config(write(tmp_path, "tls_server_config:\n  min_version: TLS13\n")).tls is None

    def test_ignored_settings_are_noted(self, tmp_path, pki):
        text = tls_block(pki) + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n  curve_preferences: [X25519]\n"
        notes = load_web_config(write(tmp_path, text)).notes
        assert any("cipher_suites" in n for n in notes) and any("curve_preferences" in n for n in notes)

    def test_repr_hides_hashes(self, tmp_path):
        config = load_web_config(write(tmp_path, f"basic_auth_users:\n  alice: {HASH}\n"))
        assert HASH not in repr(config)

    def test_default_is_plain(self):
        assert WebConfig().tls is None and not WebConfig().users


class TestBad:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("tls_server_config:\n  key_file: b\n  cert_fil: c\n", ":3: tls_server_config.cert_fil: unknown"),
            ("\n\nbasic_auth_user:\n  a: b\n", ":3: basic_auth_user: unknown key"),
            ("http_server_config:\n  http3: true\n", ":2: http_server_config.http3: unknown key"),
            ("rate_limit:\n  burst: 1\n  intervall: 1s\n", ":3: rate_limit.intervall: unknown key"),
        ],
    )  # fmt: skip
    def test_unknown_key_names_key_and_line(self, tmp_path, text, expected):
        problems = problems_of(tmp_path, text)
        assert any(expected in p for p in problems), problems
        assert all(p.startswith(str(tmp_path / "web.yml")) for p in problems)

    def test_bad_bcrypt_hash_is_rejected_without_echoing_it(self, tmp_path):
        problems = problems_of(
            tmp_path, f"basic_auth_users:\n  alice: {HASH}\n  bob: hunter2\n  eve: $2y$99$abc\n"
        )
        assert any(":3: basic_auth_users.bob: not a bcrypt hash" in p for p in problems)
        assert any(":4: basic_auth_users.eve: not a bcrypt hash" in p for p in problems)
        assert not any("alice" in p for p in problems)
        assert not any("hunter2" in p for p in problems)

    def test_bcrypt_cost_out_of_range(self, tmp_path):
        bad = HASH.replace("$04$", "$03$")
        assert problems_of(tmp_path, f"basic_auth_users:\n  alice: {bad}\n")

    @pytest.mark.parametrize(
        ("extra", "expected"),
        [
            ({"client_auth_type": "Sometimes"}, 'client_auth_type: unknown client_auth_type "Sometimes"'),
            ({"min_version": "TLS14"}, 'min_version: unknown TLS version "TLS14" (did you mean "TLS13"?)'),
            ({"min_version": "TLS13", "max_version": "TLS12"}, "min_version is above max_version"),
            ({"curve_preferences": "[CurveP999]"}, 'unknown curve "CurveP999"'),
            ({"client_auth_type": "RequireAnyClientCert"}, "needs client_ca_file"),
            (
                {"client_allowed_sans": "[a]", "client_auth_type": "VerifyClientCertIfGiven"},
                "client_allowed_sans",
            ),
            ({"prefer_server_cipher_suites": "maybe"}, "expected true or false"),
        ],
    )
    def test_tls_problems(self, tmp_path, pki, extra, expected):
        problems = problems_of(tmp_path, tls_block(pki, **extra))
        assert any(expected in p for p in problems), problems

    def test_ca_without_client_auth(self, tmp_path, pki):
        problems = problems_of(tmp_path, tls_block(pki, client_ca_file=str(pki.ca)))
        assert any("without a Client Auth Policy" in p for p in problems)

    def test_missing_key_file(self, tmp_path, pki):
        problems = problems_of(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n")
        assert any("missing one of key or key_file" in p for p in problems)

    def test_both_inline_and_file(self, tmp_path, pki):
        problems = problems_of(tmp_path, tls_block(pki, cert="x"))
        assert any("either cert or cert_file" in p for p in problems)

    def test_unreadable_cert_fails_before_listening(self, tmp_path, pki):
        text = f"tls_server_config:\n  cert_file: nothere.crt\n  key_file: {pki.server_key}\n"
        problems = problems_of(tmp_path, text)
        assert any(
            ":2: tls_server_config.cert_file: cannot read" in p and "nothere.crt" in p for p in problems
        )

    def test_mismatched_cert_and_key(self, tmp_path, pki):
        text = f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.client_key}\n"
        assert any("cannot load certificate and key" in p for p in problems_of(tmp_path, text))

    def test_key_material_never_in_messages(self, tmp_path, pki):
        key_text = pki.server_key.read_text()
        body = textwrap.indent(key_text, "    ")
        text = f"tls_server_config:\n  cert_file: {pki.client_cert}\n  key: |\n{body}"
        problems = problems_of(tmp_path, text)
        assert problems and not any("PRIVATE" in p or key_text.splitlines()[1] in p for p in problems)

    def test_client_ca_without_certificates(self, tmp_path, pki):
        empty = tmp_path / "empty.pem"
        empty.write_text("not a certificate\n")
        text = tls_block(pki, client_ca_file=str(empty), client_auth_type="RequireAndVerifyClientCert")
        assert any("client CA" in p for p in problems_of(tmp_path, text))

    @pytest.mark.parametrize(
        ("header", "value", "expected"),
        [
            ("X-Powered-By", "us", "HTTP header can not be configured"),
            ("X-Frame-Options", "allowall", "expected one of deny, sameorigin"),
            ("X-Content-Type-Options", "sniff", "expected one of nosniff"),
        ],
    )
    def test_headers(self, tmp_path, header, value, expected):
        problems = problems_of(tmp_path, f"http_server_config:\n  headers:\n    {header}: {value}\n")
        assert any(f":3: http_server_config.headers.{header}: {expected}" in p for p in problems), problems

    def test_every_problem_reported_in_file_order(self, tmp_path):
        problems = problems_of(tmp_path, "nope: 1\nbasic_auth_users:\n  a: b\nhttp_server_config:\n  h2: x\n")
        assert [p.split(":")[1] for p in problems] == ["1", "3", "5"]

    def test_duplicate_key(self, tmp_path):
        problems = problems_of(tmp_path, f"basic_auth_users:\n  a: {HASH}\n  a: {HASH}\n")
        assert any(":3: basic_auth_users.a: duplicate key" in p for p in problems)

    @pytest.mark.parametrize("text", ["basic_auth_users: [a, b]\n", "- 1\n", "tls_server_config: yes\n"])
    def test_wrong_shapes(self, tmp_path, text):
        assert any("expected a mapping" in p for p in problems_of(tmp_path, text))

    def test_invalid_yaml(self, tmp_path):
        assert any("YAML syntax error" in p for p in problems_of(tmp_path, "a: [\n"))

    def test_syntax_error_never_echoes_the_line(self, tmp_path, pki):
        """The offending line may be a private key or a password: only line and column are shown."""
        secret = "hunter2-Very-Secret-Value"
        for text in (
            f'basic_auth_users:\n  alice: "{secret}\n',
            f"basic_auth_users:\n  alice: {secret}: x\n",
            f"tls_server_config:\n  key: |\n    {secret}\n  cert: [\n",
            f"basic_auth_users: {{alice: {secret}\n",
        ):
            problems = problems_of(tmp_path, text)
            assert problems and all("YAML syntax error" in p for p in problems), problems
            assert not any(secret in p for p in problems), problems

    def test_missing_file(self, tmp_path):
        with pytest.raises(WebConfigError, match="cannot read"):
            load_web_config(tmp_path / "absent.yml")

    def test_bad_rate_limit(self, tmp_path):
        problems = problems_of(tmp_path, "rate_limit:\n  interval: 5 seconds\n  burst: 1\n")
        assert any(':2: rate_limit.interval: invalid duration "5 seconds"' in p for p in problems)

    @pytest.mark.parametrize(
        ("value", "fragment"),
        [
            ("1.5s", "invalid duration"),  # one grammar for every file: write 1s500ms
            ("10us", "invalid duration"),
            ("0", '"0" has no unit: write "0s"'),
        ],
    )
    def test_rate_limit_uses_the_config_duration_grammar(self, tmp_path, value, fragment):
        problems = problems_of(tmp_path, f"rate_limit:\n  interval: {value}\n  burst: 1\n")
        assert any(f":2: rate_limit.interval: {fragment}" in p for p in problems), problems

    @pytest.mark.parametrize("value", ["yes", "no", "on", "off", "y", "n", '"true"', "'false'", "1"])
    def test_booleans_are_yaml_1_2_true_false_only(self, tmp_path, value):
        problems = problems_of(tmp_path, f"http_server_config:\n  http2: {value}\n")
        assert any(":2: http_server_config.http2: expected true or false" in p for p in problems), problems


class TestRules:
    @pytest.mark.parametrize(("value", "expected"), [("true", True), ("True", True), ("FALSE", False)])
    def test_yaml_1_2_booleans(self, tmp_path, value, expected):
        config = load_web_config(write(tmp_path, f"http_server_config:\n  http2: {value}\n"))
        assert config.http2 is expected

    @pytest.mark.parametrize(("text", "seconds"), [("0s", None), ("250ms", 0.25), ("1m30s", 90.0)])
    def test_rate_limit_interval(self, tmp_path, text, seconds):
        config = load_web_config(write(tmp_path, f"rate_limit:\n  interval: {text}\n  burst: 2\n"))
        assert (config.rate_limit.interval if config.rate_limit else None) == seconds

    def test_unknown_key_suggests_the_close_one(self, tmp_path):
        problems = problems_of(tmp_path, "basic_auth_user:\n  a: b\n")
        assert problems == [
            f'{tmp_path / "web.yml"}:1: basic_auth_user: unknown key (did you mean "basic_auth_users"?)'
        ]


def test_parse_text_directly(tmp_path):
    config = parse_web_config(f"basic_auth_users:\n  u: {HASH}\n", source="inline", base_dir=tmp_path)
    assert config.source == "inline" and list(config.users) == ["u"]
