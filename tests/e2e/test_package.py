"""``pip install .`` gives a working package: the wheel carries meta.json, so the installed module names the same
model triplets as the checkout (module/manifest.py reads it from next to module/ or, installed, from inside it)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from devkit.standin.launcher import REPO


def test_the_wheel_serves_the_triplets_meta_json_names(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                            "-w", str(tmp_path / "wheel")], capture_output=True, text=True, cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert json.loads((site / "module" / "meta.json").read_text()) == json.loads((REPO / "meta.json").read_text())
    # Imported from the unpacked wheel, away from the checkout: the catalog must come from the packaged copy.
    shown = subprocess.run([sys.executable, "-c", "import module.catalog as c, module.manifest as m; "
                            "print(m.MANIFEST_PATH); print(sorted(str(x) for ms in c.REGISTRY.models_by_api().values() for x in ms))"],
                           capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin"})
    assert shown.returncode == 0, shown.stderr[-3000:]
    path, models = shown.stdout.splitlines()
    assert Path(path) == site / "module" / "meta.json"
    expected = sorted(entry["model"] for entry in json.loads((REPO / "meta.json").read_text())["models"])
    assert models == str(expected)
