"""``./run.sh demo``: config/demo.json, as it is or with other pictures and models filled in.

As it is: the photos in demo/images through the COCO SSD MobileNet v1 detector and the MobileNet v2 ImageNet
classifier in demo/models (both shipped in the repository; licences and credits in demo/NOTICE.md), so a fresh
clone anywhere draws real labelled boxes. ``--images``: other pictures, folders, globs or videos. ``--model``: any
SSD-style detector or classifier in place of the COCO detector (the classifier pass is then left out).
``--synthetic``: generated pictures of coloured shapes through two models the project builds itself (a
colour-region detector and a dominant-colour classifier, written to <out>/models): the whole pipeline with
nothing downloaded and every answer known in advance (the tests use it).
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
from module.catalog import REGISTRY

DEMO_CONFIG: Final = REPO / "config" / "demo.json"
DEMO_IMAGES: Final = REPO / "demo" / "images"
DETECTOR_MODEL: Final = "coco-ssd"  # the mlmodel --model replaces
CLASSIFIER: Final = ("mobilenet", "classifier")  # the classifier pipeline, dropped with --model


def demo_images(images: list[str] | None, out: Path, synthetic: bool) -> list[str]:
    if images:
        return images
    if synthetic:
        write_pictures(out / "synthetic")
        return [str(out / "synthetic")]
    return [str(DEMO_IMAGES)]


def demo_config(model: str | None, out: Path, synthetic: bool = False) -> RobotConfig:
    """config/demo.json with absolute model paths: the shipped models, ``model`` (replacing the detector), or with
    ``synthetic`` the generated colour models."""
    config = robot_config.load(DEMO_CONFIG)
    resources = config.resources
    paths: dict[str, str] = {}
    if model:
        paths = {DETECTOR_MODEL: str(Path(model).resolve())}
        resources = tuple(r for r in resources if r.name not in CLASSIFIER)
    elif synthetic:
        detector, classifier = write_demo_models(out / "models")
        paths = {DETECTOR_MODEL: str(detector), CLASSIFIER[0]: str(classifier)}
    resources = tuple(replace(r, attributes={**r.attributes, "model_path": paths[r.name]}) if r.name in paths
                      else replace(r, attributes=_absolute(r.attributes)) for r in resources)
    # The model triplets this checkout serves (meta.json), so a fork's demo runs after editing meta.json alone.
    served = {str(api): str(models[0]) for api, models in REGISTRY.models_by_api().items()}
    resources = tuple(replace(r, model=served.get(r.api, r.model)) for r in resources)
    return replace(config, resources=resources)


def _absolute(attributes: dict[str, object] | object) -> dict[str, object]:
    """Relative model paths of demo.json resolved against the repository (as the module resolves them), so the
    demo works with any --executable."""
    assert isinstance(attributes, dict)
    path = attributes.get("model_path")
    if isinstance(path, str) and not Path(path).is_absolute():
        return {**attributes, "model_path": str(REPO / path)}
    return dict(attributes)


def announce(images: list[str], model: str | None, out: Path, synthetic: bool) -> None:
    if model:
        what = model
    elif synthetic:
        what = f"generated colour-region detector and dominant-colour classifier ({out / 'models'})"
    else:
        what = "COCO SSD MobileNet v1 (detector) and MobileNet v2 ImageNet (classifier), demo/models"
    print(f"demo: images from {', '.join(images)}\ndemo: model {what}", file=sys.stderr)
