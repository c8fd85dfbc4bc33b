"""Label file formats written by training tools: index prefixes, TF OD API label maps, data.yaml names."""

from __future__ import annotations

import pytest

from module.mlmodel.label_formats import parse_pbtxt, parse_structured, parse_yaml_names, strip_index_prefixes


@pytest.mark.parametrize(("lines", "expected"), [
    (("0 Cats", "1 Dogs"), ("Cats", "Dogs")),                       # Teachable Machine
    (("0  cat", "1  raccoon"), ("cat", "raccoon")),                 # two spaces (CRLF is split off before)
    (("0 Mask",), ("Mask",)),
    (("0: red light", "1: green light"), ("red light", "green light")),
    (("0 Mask", "2 NoMask"), ("0 Mask", "2 NoMask")),               # not each line's own index: names keep digits
    (("1 cup", "glass"), ("1 cup", "glass")),
    (("person", "car"), ("person", "car")),
    (("0 a", "", "2 c"), ("a", "", "c")),                           # a blank line keeps its position
    ((), ()),
])
def test_index_prefixes(lines: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert strip_index_prefixes(lines) == expected


PBTXT = """
item {
  id: 1
  name: 'cat'
}
item {
  name: "raccoon"
  id: 2
  display_name: "Raccoon"
}
item { id: 4 name: 'dog' }
"""


def test_pbtxt_one_based_ids_become_class_indices() -> None:
    assert parse_pbtxt(PBTXT) == ("cat", "Raccoon", "", "dog")
    assert parse_structured(PBTXT) == ("cat", "Raccoon", "", "dog")


def test_pbtxt_zero_based_ids_stay() -> None:
    assert parse_pbtxt("item { id: 0 name: 'a' } item { id: 1 name: 'b' }") == ("a", "b")


@pytest.mark.parametrize(("text", "expected"), [
    ("train: ../train/images\nnc: 2\nnames: ['mask', 'no-mask']\n", ("mask", "no-mask")),
    ("nc: 2\nnames: [mask, no mask]  # comment\n", ("mask", "no mask")),
    ("path: x\nnames:\n  0: person\n  1: 'traffic light'\n  2: \"a # b\"\nroboflow:\n  x: 1\n",
     ("person", "traffic light", "a # b")),
    ("names:\n- helmet\n- head  # comment\n- 'person'\nnc: 3\n", ("helmet", "head", "person")),
    ("names: {0: cat, 1: dog}\n", ("cat", "dog")),
])
def test_data_yaml_names(text: str, expected: tuple[str, ...]) -> None:
    assert parse_yaml_names(text) == expected
    assert parse_structured(text) == expected


@pytest.mark.parametrize("text", ["person\ncar\n", "Bicycle\nPerson\n", "", "item without braces\n"])
def test_plain_lists_are_not_structured(text: str) -> None:
    assert parse_structured(text) is None


@pytest.mark.parametrize(("data", "expected"), [
    (b"0  cat\r\n1  raccoon\r\n", ("cat", "raccoon")),               # the TF2 cat feeder's file: two spaces, CRLF
    (b"0 Cats\n1 Dogs", ("Cats", "Dogs")),                           # Teachable Machine, no final newline
    (b"item {\n  id: 1\n  name: 'cat'\n}\nitem {\n  id: 2\n  name: 'raccoon'\n}\n", ("cat", "raccoon")),
    (b"names:\n  0: helmet\n  1: head\n", ("helmet", "head")),
    (b"Bicycle\nPerson\n", ("Bicycle", "Person")),                   # a plain list named labels.pbtxt stays a list
])
def test_label_files_in_every_format(data: bytes, expected: tuple[str, ...]) -> None:
    from module.mlmodel.labels import parse_labels

    assert parse_labels(data) == expected
