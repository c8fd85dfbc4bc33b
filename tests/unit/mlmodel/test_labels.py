"""Tests for module/labels.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from devkit.testdata import require_testdata
from module.errors import ConfigError
from module.mlmodel.labels import parse_labels, read_label_file


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"cat\ndog\n", ("cat", "dog")),
        (b"cat\ndog", ("cat", "dog")),
        (b"\xef\xbb\xbfcat\ndog\n", ("cat", "dog")),
        (b"cat\r\ndog\r\n", ("cat", "dog")),
        (b"cat\rdog\r", ("cat", "dog")),
        (b"cat\r\ndog\rbird\nfish", ("cat", "dog", "bird", "fish")),
        (b"  cat \t\n\tdog  \n", ("cat", "dog")),
        (b"cat\n\n\n", ("cat",)),
        (b"cat\n \n\t\r\n", ("cat",)),
        (b"", ()),
        (b"\n\n", ()),
        (b"\xef\xbb\xbf", ()),
        ("caf\u00e9\n\u732b\n".encode(), ("caf\u00e9", "\u732b")),
        (b"tabby, tabby cat\nEgyptian cat\n", ("tabby, tabby cat", "Egyptian cat")),
    ],
)
def test_parse_labels(data: bytes, expected: tuple[str, ...]) -> None:
    assert parse_labels(data) == expected


def test_interior_blank_lines_keep_their_index() -> None:
    # Label i must stay line i: the RDK skipped blank lines and shifted every later label.
    labels = parse_labels(b"background\n\nperson\n  \nbicycle\n\n")
    assert labels == ("background", "", "person", "", "bicycle")
    assert labels.index("bicycle") == 4


def test_leading_blank_line_keeps_index() -> None:
    assert parse_labels(b"\ncat\n") == ("", "cat")


def test_invalid_utf8_does_not_raise() -> None:
    labels = parse_labels(b"caf\xe9\n\xff\xfe\ndog\n")
    assert len(labels) == 3
    assert labels[0].startswith("caf") and "\ufffd" in labels[0]
    assert labels[2] == "dog"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"cat,dog,bird", ("cat", "dog", "bird")),
        (b"cat, dog , bird\n", ("cat", "dog", "bird")),
        (b"\xef\xbb\xbfcat,dog\r\n\r\n", ("cat", "dog")),
        (b"cat,,dog,", ("cat", "", "dog")),
    ],
)
def test_single_comma_line_is_split(data: bytes, expected: tuple[str, ...]) -> None:
    assert parse_labels(data) == expected


def test_commas_in_multi_line_file_are_kept() -> None:
    assert parse_labels(b"a,b\nc\n") == ("a,b", "c")


def test_read_label_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_bytes(b"\xef\xbb\xbfa\r\n\r\nb\r\n")
    assert read_label_file(str(path)) == ("a", "", "b")


def test_missing_label_file_names_the_path(tmp_path: Path) -> None:
    path = str(tmp_path / "nope" / "labels.txt")
    with pytest.raises(ConfigError, match="nope/labels.txt"):
        read_label_file(path)


def test_empty_label_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"\n \n")
    with pytest.raises(ConfigError, match="empty.txt"):
        read_label_file(str(path))


def test_directory_is_not_a_label_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=str(tmp_path.name)):
        read_label_file(str(tmp_path))


def test_real_label_files() -> None:
    data = require_testdata("labels")
    coco = read_label_file(str(data / "labels" / "coco_labels.txt"))
    assert len(coco) == 90 and coco[0] == "person" and coco[16] == "cat" and coco[17] == "dog"
    imagenet = read_label_file(str(data / "labels" / "imagenet_labels.txt"))
    assert len(imagenet) == 1001 and imagenet[0] == "background" and imagenet[282] == "tabby, tabby cat"
    assert read_label_file(str(data / "labels" / "vww_labels.txt")) == ("notperson", "person")
