"""A fork publishes under its own organisation by editing meta.json alone: a copy of the project with another
namespace in meta.json reports that namespace's triplets in Ready, serves them, and no longer knows the old ones."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from devkit.models import add_model
from devkit.standin.launcher import REPO, ModuleProcess

FORK = "acme-robotics"


def rename_namespace(meta: dict, namespace: str) -> dict:
    """What a fork edits: module_id and each model triplet's first part."""
    renamed = dict(meta)
    renamed["module_id"] = f"{namespace}:{meta['module_id'].split(':', 1)[1]}"
    renamed["models"] = [{**entry, "model": f"{namespace}:{entry['model'].split(':', 1)[1]}"} for entry in meta["models"]]
    return renamed


@pytest.fixture
def fork(tmp_path: Path) -> Iterator[tuple[ModuleProcess, dict]]:
    copy = tmp_path / "fork"
    copy.mkdir()
    shutil.copytree(REPO / "module", copy / "module", ignore=shutil.ignore_patterns("__pycache__"))
    original = json.loads((REPO / "meta.json").read_text())
    meta = rename_namespace(original, FORK)
    (copy / "meta.json").write_text(json.dumps(meta, indent=2))
    # The copy's module/ and meta.json, started with this interpreter (cwd and VIAM_MODULE_ROOT are the copy).
    start = copy / "start.sh"
    start.write_text(f'#!/bin/sh\ncd "$(dirname "$0")"\nPYTHONPATH= exec {sys.executable} -u -m module "$@"\n')
    start.chmod(0o755)
    process = ModuleProcess(executable=start, env={"VIAM_NO_MODULE_PARENT": "true"})
    try:
        process.wait_for_socket()
        yield process, {"original": original, "fork": meta}
    finally:
        process.close()


def test_ready_reports_the_namespace_meta_json_names(fork: tuple[ModuleProcess, dict], tmp_path: Path) -> None:
    process, metas = fork
    reply = process.ready("/nonexistent/parent.sock")
    reported = {(f"{h.subtype.subtype.namespace}:{h.subtype.subtype.type}:{h.subtype.subtype.subtype}", model)
                for h in reply.handlermap.handlers for model in h.models}
    assert reported == {(entry["api"], entry["model"]) for entry in metas["fork"]["models"]}
    assert all(model.startswith(f"{FORK}:") for _, model in reported)

    mlmodel = next(entry for entry in metas["fork"]["models"] if entry["api"] == "rdk:service:mlmodel")
    model_file = tmp_path / "add.tflite"
    model_file.write_bytes(add_model())
    process.add("adder", (mlmodel["api"], mlmodel["model"]), {"model_path": str(model_file)})

    old = next(entry for entry in metas["original"]["models"] if entry["api"] == "rdk:service:mlmodel")
    with pytest.raises(grpc.RpcError) as info:
        process.add("adder-old", (old["api"], old["model"]), {"model_path": str(model_file)})
    assert old["model"] in (info.value.details() or "")
