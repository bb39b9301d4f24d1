"""Secret files that are not plain small files are refused at once, naming the path, never hanging."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from exporter.credentials import MAX_SECRET_FILE_BYTES, SecretFileError, read_secret_file


def _read_with_deadline(path: Path, seconds: float = 5.0) -> BaseException | None:
    """read_secret_file in a thread: a hang fails the test instead of freezing the run."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            read_secret_file(path)
            outcome.append(None)
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"read_secret_file({path}) hung"
    return outcome[0]


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    error = _read_with_deadline(fifo)
    assert isinstance(error, SecretFileError)
    assert str(error) == f'"{fifo}" is a FIFO, not a regular file'


def test_directory_is_refused(tmp_path: Path) -> None:
    error = _read_with_deadline(tmp_path)
    assert isinstance(error, SecretFileError)
    assert str(error) == f'"{tmp_path}" is a directory, not a regular file'


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_device_is_refused(device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"{device} missing")
    error = _read_with_deadline(Path(device))
    assert isinstance(error, SecretFileError)
    assert str(error) == f'"{device}" is a device, not a regular file'


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"k" * (MAX_SECRET_FILE_BYTES + 1))
    error = _read_with_deadline(big)
    assert isinstance(error, SecretFileError)
    assert str(error) == f'"{big}" is larger than 64 KiB'


def test_file_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "limit"
    path.write_bytes(b"k" * MAX_SECRET_FILE_BYTES)
    assert len(read_secret_file(path).reveal()) == MAX_SECRET_FILE_BYTES


def test_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    # Kubernetes mounts secrets as symlinks into a ..data directory
    target = tmp_path / "..data" / "key"
    target.parent.mkdir()
    target.write_text("linked-secret-key\n")
    link = tmp_path / "key"
    link.symlink_to(target)
    assert read_secret_file(link).reveal() == "linked-secret-key"


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="cannot read") as info:
        read_secret_file(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)
