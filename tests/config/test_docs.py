"""Every config key is in the README's configuration reference: a new key cannot ship undocumented."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from exporter.config import AccountConfig, Config, StreamFilter
from exporter.config.loader import schema_of
from exporter.credentials import CredentialSettings

README = Path(__file__).parents[2] / "README.md"


def _reference() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Configuration\n")
    return text[start : text.index("\n## ", start + 1)]


KEYS = sorted(
    {*schema_of(Config), *schema_of(StreamFilter), *schema_of(AccountConfig)}
    | {"credential_source" if f.name == "source" else f.name for f in dataclasses.fields(CredentialSettings)}
)


@pytest.mark.parametrize("key", KEYS)
def test_key_is_documented(key: str) -> None:
    assert f"`{key}`" in _reference() or f"{key}:" in _reference()
