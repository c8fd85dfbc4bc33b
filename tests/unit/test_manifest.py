"""meta.json: what the registry reads (ids, scripts, build, docs) and what the module takes from it (its model triplets)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from devkit.standin.launcher import REPO
from module.catalog import REGISTRY, build_registry
from module.manifest import MANIFEST_PATH, ManifestError, load_manifest, parse_manifest
from module.resource.names import MLMODEL_API, VISION_API

META = json.loads((REPO / "meta.json").read_text())


def test_the_manifest_the_module_reads_is_the_repository_meta_json() -> None:
    assert MANIFEST_PATH == REPO / "meta.json"
    manifest = load_manifest()
    assert manifest.module_id == META["module_id"]
    assert {(m.api, m.model) for m in manifest.models} == {(m["api"], m["model"]) for m in META["models"]}
    assert manifest.model_for("rdk:service:mlmodel").endswith(":mlmodel:tflite_cpu")


def test_every_model_is_in_the_module_namespace_and_documented() -> None:
    namespace = META["module_id"].split(":")[0]
    assert (REPO / META["markdown_link"]).is_file()
    for model in META["models"]:
        assert model["model"].split(":")[0] == namespace, model  # the registry requires the org's namespace
        assert len(model["short_description"]) <= 100, model
        doc = REPO / model["markdown_link"]
        assert doc.is_file(), model["markdown_link"]
        text = doc.read_text()
        assert model["model"].split(":", 1)[1] in text and '"attributes"' in text, doc  # triplet and an example


def test_scripts_build_and_licence_are_what_the_registry_expects() -> None:
    for key in ("entrypoint", "first_run"):
        script = REPO / META[key]
        assert script.is_file() and os.access(script, os.X_OK), key
    build = META["build"]
    assert set(build["arch"]) == {"linux/amd64", "linux/arm64"}
    for command in (build["setup"], build["build"]):
        script = REPO / command.split()[0]
        assert script.is_file() and os.access(script, os.X_OK), command
    assert build["path"] in build["build"]  # the build writes where the registry looks
    assert META["url"].startswith("https://github.com/")
    assert META["visibility"] in {"private", "public", "public_unlisted"}
    assert "Apache License" in (REPO / "LICENSE").read_text()[:200]


def manifest(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"module_id": "acme:tflite", "models": [
        {"api": "rdk:service:mlmodel", "model": "acme:mlmodel:tflite_cpu"},
        {"api": "rdk:service:vision", "model": "acme:vision:mlmodel"}]}
    data.update(overrides)
    return data


def test_a_renamed_namespace_is_all_a_fork_changes() -> None:
    parsed = parse_manifest(manifest(), Path("meta.json"))
    assert parsed.namespace == "acme"
    assert parsed.model_for("rdk:service:vision") == "acme:vision:mlmodel"
    parsed.require_apis(["rdk:service:mlmodel", "rdk:service:vision"])


@pytest.mark.parametrize(("overrides", "message"), [
    ({"module_id": "no-colon"}, '"module_id" must be "<namespace>:<module name>"'),
    ({"models": []}, '"models" must be a non-empty list'),
    ({"models": [{"api": "rdk:service:vision", "model": "acme:mlmodel"}]}, "models[0].model: expected a model triplet"),
    ({"models": [{"api": "vision", "model": "acme:vision:mlmodel"}]}, "models[0].api: expected an API triplet"),
    ({"models": [{"api": "rdk:service:vision", "model": "acme:vision:a"},
                 {"api": "rdk:service:vision", "model": "acme:vision:b"}]}, "models[1]: a second model for rdk:service:vision"),
])
def test_a_broken_manifest_names_the_field(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(manifest(**overrides), Path("meta.json"))
    assert message in str(info.value)


def test_a_missing_api_or_an_unimplemented_one_is_named() -> None:
    only_vision = parse_manifest(manifest(models=[{"api": "rdk:service:vision", "model": "acme:vision:mlmodel"}]),
                                 Path("meta.json"))
    with pytest.raises(ManifestError, match='"models" has no entry for rdk:service:mlmodel'):
        only_vision.model_for("rdk:service:mlmodel")
    camera = parse_manifest(manifest(models=[{"api": "rdk:component:camera", "model": "acme:camera:x"}]),
                            Path("meta.json"))
    with pytest.raises(ManifestError, match="rdk:component:camera, which this module does not implement"):
        camera.require_apis(["rdk:service:mlmodel", "rdk:service:vision"])


def test_missing_or_unreadable_meta_json(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found; meta.json must sit next to the module/ package"):
        load_manifest(tmp_path / "meta.json")
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ManifestError, match="cannot read it as JSON"):
        load_manifest(tmp_path / "meta.json")


def test_the_catalog_serves_the_triplets_the_manifest_names() -> None:
    served = {str(api): [str(model) for model in models] for api, models in REGISTRY.models_by_api().items()}
    assert served == {entry["api"]: [entry["model"]] for entry in META["models"]}

    fork = build_registry(parse_manifest(manifest(), Path("meta.json")))
    assert {api: [str(m) for m in models] for api, models in fork.models_by_api().items()} == {
        MLMODEL_API: ["acme:mlmodel:tflite_cpu"], VISION_API: ["acme:vision:mlmodel"]}
    assert fork.lookup("rdk:service:vision", "acme:vision:mlmodel").model.namespace == "acme"
    with pytest.raises(ManifestError, match="does not implement"):
        build_registry(parse_manifest(manifest(models=[{"api": "rdk:component:camera", "model": "acme:camera:x"}]),
                                      Path("meta.json")))
