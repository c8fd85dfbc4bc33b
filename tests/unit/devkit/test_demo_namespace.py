"""./run.sh demo follows meta.json: a fork that renamed its namespace there runs the demo without editing config/."""

from __future__ import annotations

from pathlib import Path

import pytest

from devkit.local import demo
from module.catalog import build_registry
from module.manifest import parse_manifest


def test_the_demo_config_uses_the_triplets_meta_json_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fork = parse_manifest({"module_id": "acme:tflite", "models": [
        {"api": "rdk:service:mlmodel", "model": "acme:mlmodel:tflite_cpu"},
        {"api": "rdk:service:vision", "model": "acme:vision:mlmodel"}]}, Path("meta.json"))
    monkeypatch.setattr(demo, "REGISTRY", build_registry(fork))
    config = demo.demo_config(None, tmp_path)
    models = {(r.api, r.model) for r in config.resources}
    assert ("rdk:service:mlmodel", "acme:mlmodel:tflite_cpu") in models
    assert ("rdk:service:vision", "acme:vision:mlmodel") in models
    assert not any(model.startswith("tflite-py:") for _, model in models)
    assert ("rdk:component:camera", "rdk:builtin:image_file") in models  # other resources keep theirs
