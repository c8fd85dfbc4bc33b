"""module/files.py: every configured file is read bounded, regular files only, with errors naming the attribute."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from module.errors import ConfigError
from module.files import (
    DEFAULT_MODEL_MAX_BYTES,
    LABEL_MAX_BYTES,
    FileLimit,
    image_limit,
    label_limit,
    model_limit,
    read_config_file,
)

pytestmark = pytest.mark.timeout(20)  # a regression here blocks (FIFO) or eats memory (/dev/zero): fail, not hang


def _error(path: str | Path, limit: FileLimit) -> str:
    with pytest.raises(ConfigError) as info:
        read_config_file(str(path), limit)
    return str(info.value)


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    (tmp_path / "m.tflite").write_bytes(b"1234TFL3" + bytes(100))
    assert read_config_file(str(tmp_path / "m.tflite"), model_limit()) == b"1234TFL3" + bytes(100)


def test_a_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_bytes(b"a\nb\n")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    assert read_config_file(str(tmp_path / "link.txt"), label_limit()) == b"a\nb\n"


def test_a_symlink_to_dev_zero_is_refused_without_reading(tmp_path: Path) -> None:
    (tmp_path / "zero.tflite").symlink_to("/dev/zero")
    message = _error(tmp_path / "zero.tflite", model_limit())
    assert "'model_path'" in message and "zero.tflite" in message and "character device" in message


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "labels.txt")  # no writer: a blocking open would wait forever
    message = _error(tmp_path / "labels.txt", label_limit())
    assert "'label_path'" in message and "FIFO" in message


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.tflite").mkdir()
    message = _error(tmp_path / "dir.tflite", model_limit())
    assert "'model_path'" in message and "directory" in message


def test_a_unix_socket_is_refused(tmp_path: Path) -> None:
    path = Path("/tmp") / f"files-test-{os.getpid()}.sock"  # short: socket paths are limited to 107 bytes
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        try:
            message = _error(path, label_limit())
        finally:
            path.unlink()
    assert "'label_path'" in message


def test_a_missing_file_and_a_nul_in_the_path_name_the_attribute(tmp_path: Path) -> None:
    assert "does not exist" in _error(tmp_path / "missing.tflite", model_limit())
    assert "NUL" in _error(str(tmp_path) + "/bad\0.txt", label_limit())


def test_an_oversize_sparse_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A 3 GiB sparse file costs no disk; reading it would cost 3 GiB of memory. The size check comes first."""
    path = tmp_path / "huge.tflite"
    with open(path, "wb") as handle:
        handle.truncate(3 * 1024**3)
    message = _error(path, model_limit())
    assert "'model_path'" in message and "3,221,225,472 bytes" in message
    assert "'max_model_size_mb'" in message  # says how to raise the limit
    assert "max_model_size_mb" not in _error(path, label_limit())  # label files have no such attribute


def test_the_limit_is_inclusive_and_can_be_raised(tmp_path: Path) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(bytes(1000))
    assert len(read_config_file(str(path), model_limit(max_bytes=1000))) == 1000
    assert "1,000 bytes, over the 999-byte limit" in _error(path, model_limit(max_bytes=999))


def test_defaults_suit_each_kind() -> None:
    assert DEFAULT_MODEL_MAX_BYTES == 1024**3
    assert LABEL_MAX_BYTES < DEFAULT_MODEL_MAX_BYTES
    assert image_limit("images").attribute == "images"
