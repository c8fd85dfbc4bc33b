"""``./run.sh demo``: config/demo.json with the demo's images and models filled in.

Images: ``--images`` if given, else ../shared/testdata/images beside the repository if it is there, else synthetic
pictures written to <out>/synthetic. Model: ``--model`` (any SSD-style detector or classifier) in place of the
generated colour-region detector, else the generated detector plus the dominant-colour classifier (<out>/models).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Final

from devkit.local import robot_config
from devkit.local.demo_models import write_demo_models
from devkit.local.robot import REPO
from devkit.local.robot_config import RobotConfig
from devkit.local.synthetic import write_pictures

DEMO_CONFIG: Final = REPO / "config" / "demo.json"
TESTDATA_IMAGES: Final = REPO.parent / "shared" / "testdata" / "images"
MAIN_MODEL: Final = "main-model"  # the mlmodel --model replaces
EXTRA: Final = ("colours-model", "dominant-colour")  # the classifier pipeline, dropped with --model


def demo_images(images: list[str] | None, out: Path, synthetic: bool) -> list[str]:
    if images:
        return images
    if TESTDATA_IMAGES.is_dir() and not synthetic:
        return [str(TESTDATA_IMAGES)]
    write_pictures(out / "synthetic")
    return [str(out / "synthetic")]


def demo_config(model: str | None, out: Path) -> RobotConfig:
    """config/demo.json with absolute model paths: ``model``, or the generated demo models."""
    config = robot_config.load(DEMO_CONFIG)
    if model:
        paths = {MAIN_MODEL: str(Path(model).resolve())}
        resources = tuple(r for r in config.resources if r.name not in EXTRA)
    else:
        detector, classifier = write_demo_models(out / "models")
        paths = {MAIN_MODEL: str(detector), EXTRA[0]: str(classifier)}
        resources = config.resources
    resources = tuple(replace(r, attributes={**r.attributes, "model_path": paths[r.name]}) if r.name in paths else r
                      for r in resources)
    return replace(config, resources=resources)


def announce(images: list[str], model: str | None, out: Path) -> None:
    what = model or f"generated colour-region detector and dominant-colour classifier ({out / 'models'})"
    print(f"demo: images from {', '.join(images)}\ndemo: model {what}", file=sys.stderr)
