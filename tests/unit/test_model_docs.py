"""The per-model pages the registry shows (meta.json markdown_link): their examples parse with the module's own
config parsers, and their attribute tables list every attribute the README's configuration reference lists."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from devkit.standin.launcher import REPO
from module.mlmodel.config import TFLiteConfig
from module.vision.config import VisionConfig

META = json.loads((REPO / "meta.json").read_text())
PARSERS = {"rdk:service:mlmodel": TFLiteConfig.parse, "rdk:service:vision": VisionConfig.parse}
README_SECTIONS = {"rdk:service:mlmodel": ["### `tflite_cpu` (mlmodel)"],
                   "rdk:service:vision": ["### `mlmodel` (vision)", "### `GetObjectPointClouds`"]}
MODELS = {entry["api"]: entry for entry in META["models"]}


def json_blocks(text: str) -> list[Any]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, flags=re.S)]


def table_attributes(text: str, *, first_only: bool) -> set[str]:
    """The backticked names in the first column of the attribute tables in ``text`` (or only its first table)."""
    names: set[str] = set()
    in_table = False
    for line in text.splitlines():
        if line.startswith("| attribute |"):
            in_table = True
        elif in_table and line.startswith("|"):
            names.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
        elif in_table:
            if first_only:
                break
            in_table = False
    return names


def doc(api: str) -> str:
    return (REPO / MODELS[api]["markdown_link"]).read_text()


@pytest.mark.parametrize("api", sorted(PARSERS))
def test_the_example_attributes_parse(api: str) -> None:
    examples = [block for block in json_blocks(doc(api)) if "services" not in block]
    assert examples, "no example attributes"
    for example in examples:
        PARSERS[api](example)


@pytest.mark.parametrize("api", sorted(PARSERS))
def test_the_example_robot_config_uses_this_module_and_parses(api: str) -> None:
    robot = json_blocks(doc(api))[-1]
    assert [m["module_id"] for m in robot["modules"]] == [META["module_id"]]
    ours = [s for s in robot["services"] if s["model"] in {m["model"] for m in META["models"]}]
    assert any(s["api"] == api and s["model"] == MODELS[api]["model"] for s in ours)
    for service in ours:
        PARSERS[service["api"]](service["attributes"])
    names = {p["name"] for p in robot.get("packages", [])}
    for service in ours:
        for used in re.findall(r"\$\{packages\.ml_model\.([\w-]+)\}", json.dumps(service["attributes"])):
            assert used in names, f"{used} is not in the example's packages"


@pytest.mark.parametrize("api", sorted(PARSERS))
def test_the_attribute_table_lists_what_the_readme_lists(api: str) -> None:
    readme = (REPO / "README.md").read_text()
    listed = set().union(*(table_attributes(readme[readme.index(heading):], first_only=True)
                           for heading in README_SECTIONS[api]))
    missing = listed - table_attributes(doc(api), first_only=False)
    assert not missing, f"{MODELS[api]['markdown_link']} lacks {sorted(missing)} (copy the rows from the README)"
