"""The local runner's pictures and config reading, in process: label colours, the banner, ${packages...} paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from devkit.local.annotate import _PALETTE, Box, Label, annotate, colour_for, text_colour
from devkit.local.robot_config import ConfigProblem, load


def test_a_label_keeps_its_colour_and_colour_names_are_drawn_in_their_colour() -> None:
    assert colour_for("dog") == colour_for("dog") and colour_for("dog") in _PALETTE
    assert colour_for("red") == (255, 0, 0) and colour_for("Green") == (0, 128, 0)
    assert len({colour_for(label) for label in ("person", "cat", "dog", "bird", "tie", "car")}) >= 5


@pytest.mark.parametrize("colour", _PALETTE)
def test_every_palette_colour_reads_on_a_white_page_and_its_text_on_it(colour: tuple[int, int, int]) -> None:
    assert min(colour) < 200  # not near white: a tag in the gallery stays visible
    text = text_colour(colour)
    luminance = 0.2126 * colour[0] + 0.7152 * colour[1] + 0.0722 * colour[2]
    assert abs(luminance - (0 if text == (0, 0, 0) else 255)) > 100


def test_annotate_draws_the_box_in_its_colour_and_a_banner_with_results_and_times() -> None:
    image = Image.new("RGB", (320, 240), (128, 128, 128))
    out = annotate(image, [Box("dog", 0.8, 40, 60, 200, 220)], [Label("Italian greyhound", 0.6)],
                   ["detector 21 ms  classifier 25 ms"])
    assert out.width == 320 and out.height > 240  # banner below: nothing of the picture covered
    assert out.getpixel((40, 140)) == colour_for("dog")  # the box's left edge
    assert image.getpixel((40, 140)) == (128, 128, 128)  # the input is unchanged
    banner = out.crop((0, 240, 320, out.height))
    assert len(banner.getcolors(maxcolors=1 << 16) or []) > 2  # text was drawn


def test_packages_placeholders_resolve_from_the_packages_folder(tmp_path: Path) -> None:
    (tmp_path / "pkgs" / "coco").mkdir(parents=True)
    config = tmp_path / "robot.json"
    config.write_text(json.dumps({"services": [{"name": "m", "api": "rdk:service:mlmodel", "model": "a:b:c",
                                                "attributes": {"model_path": "${packages.ml_model.coco}/m.tflite",
                                                               "label_path": "${packages.coco}/l.txt",
                                                               "both": ["${packages.coco} ${packages.ml_model.coco}"]}}]}))
    robot = load(config, tmp_path / "pkgs")
    folder = str((tmp_path / "pkgs" / "coco").resolve())
    attributes = robot.resources[0].attributes
    assert attributes["model_path"] == f"{folder}/m.tflite" and attributes["label_path"] == f"{folder}/l.txt"
    assert attributes["both"] == [f"{folder} {folder}"]
    with pytest.raises(ConfigProblem, match=r"robot.json:1: services\[0\].attributes.model_path: .* pass --packages"):
        load(config)
