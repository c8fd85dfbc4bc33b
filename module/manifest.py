"""meta.json, the module's registry manifest: the one place that names the module and the model triplets it serves.

A fork publishes under its own organisation by editing meta.json alone (``module_id`` and each model's triplet):
the catalog takes the triplets served, and reported in ``Ready``, from here. The archive carries meta.json next to
the ``module`` package, as the repository does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

_BESIDE: Final = Path(__file__).resolve().parent.parent / "meta.json"  # a checkout or the registry archive
_INSIDE: Final = Path(__file__).resolve().parent / "meta.json"  # a pip-installed package (setup.py copies it in)
MANIFEST_PATH: Final = _BESIDE if _BESIDE.exists() else _INSIDE
_NAME = r"[\w-]+"
_MODULE_ID = re.compile(rf"^({_NAME}):({_NAME})$")
_TRIPLET = re.compile(rf"^{_NAME}:{_NAME}:{_NAME}$")


class ManifestError(RuntimeError):
    """meta.json is missing or does not say what the module serves. The message names the file and the field."""


@dataclass(frozen=True, slots=True)
class ManifestModel:
    """One ``models`` entry: the API triplet and the model triplet served for it."""

    api: str
    model: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """What meta.json says about the module's identity and its models."""

    path: Path
    module_id: str
    models: tuple[ManifestModel, ...]

    @property
    def namespace(self) -> str:
        """The namespace part of ``module_id`` (the organisation's public namespace, or its id)."""
        return self.module_id.split(":", 1)[0]

    def model_for(self, api: str) -> str:
        """The model triplet meta.json serves for ``api`` (this module implements one model per API)."""
        for entry in self.models:
            if entry.api == api:
                return entry.model
        raise ManifestError(f"{self.path}: \"models\" has no entry for {api}; add "
                            f"{{\"api\": \"{api}\", \"model\": \"{self.namespace}:<family>:<name>\"}}")

    def require_apis(self, implemented: Iterable[str]) -> None:
        """Every model meta.json lists must be for an API this code implements."""
        known = set(implemented)
        for entry in self.models:
            if entry.api not in known:
                raise ManifestError(f"{self.path}: model {entry.model} is for {entry.api}, which this module does not "
                                    f"implement (it serves {', '.join(sorted(known))})")


def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    """Read and check meta.json; every problem is a ManifestError naming the field and what was expected."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: not found; meta.json must sit next to the module/ package") from None
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: cannot read it as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return parse_manifest(data, path)


def parse_manifest(data: dict[str, Any], path: Path) -> Manifest:
    module_id = data.get("module_id")
    if not isinstance(module_id, str) or not _MODULE_ID.match(module_id):
        raise ManifestError(f"{path}: \"module_id\" must be \"<namespace>:<module name>\", got {module_id!r}")
    raw_models = data.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        raise ManifestError(f"{path}: \"models\" must be a non-empty list of {{\"api\": ..., \"model\": ...}}")
    models: list[ManifestModel] = []
    for index, raw in enumerate(raw_models):
        where = f"{path}: models[{index}]"
        if not isinstance(raw, dict):
            raise ManifestError(f"{where}: expected an object with \"api\" and \"model\", got {raw!r}")
        api, model = raw.get("api"), raw.get("model")
        if not isinstance(api, str) or not _TRIPLET.match(api):
            raise ManifestError(f"{where}.api: expected an API triplet like \"rdk:service:vision\", got {api!r}")
        if not isinstance(model, str) or not _TRIPLET.match(model):
            raise ManifestError(f"{where}.model: expected a model triplet like \"acme:vision:mlmodel\", got {model!r}")
        if any(seen.api == api for seen in models):
            raise ManifestError(f"{where}: a second model for {api}; this module implements one model per API")
        models.append(ManifestModel(api, model))
    return Manifest(path=path, module_id=module_id, models=tuple(models))
