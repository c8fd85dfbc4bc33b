"""The README's first ten minutes, as a new user lives them: every command of the "first ten minutes" block, in the
order written, in a fresh copy of the repository that has no ../shared beside it. ``--serve`` is driven with the
README's own Python SDK example. (``./run.sh test`` from the top block is the suite itself, so it is not run here.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_local_runner import _wait_for, parse_table
from tests.e2e.test_sdk_compat import sdk_python  # noqa: F401 - the fixture: .venv-sdk with viam-sdk

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
pytestmark = pytest.mark.timeout(900)


def fenced(section: str, language: str) -> list[str]:
    """The ``language`` code blocks of the README section whose heading is ``section`` ("" = before any heading)."""
    text = README.read_text()
    if section:
        text = text[text.index(f"\n## {section}\n"):]
        text = text[:text.find("\n## ", 1) if "\n## " in text[1:] else len(text)]
    else:
        text = text[:text.index("\n## ")]
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def commands() -> list[str]:
    top = [line for line in fenced("", "bash")[0].splitlines() if line.startswith("./run.sh demo")]
    return top + [line for block in fenced("The first ten minutes", "bash") for line in block.splitlines() if line]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The repository's files (as in the working tree) in an empty folder, with this checkout's .venv linked in
    (run.sh would build the same one from PyPI; the stamp file shows it is up to date)."""
    venv = REPO / ".venv"
    if not (venv / "bin" / "python").exists():
        pytest.skip("no .venv: ./run.sh has not set itself up in this checkout")
    root = tmp_path_factory.mktemp("fresh") / "tflite-module"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    (root / ".venv").symlink_to(venv.resolve())
    assert not (root.parent / "shared").exists()
    yield root


def run(clone: Path, line: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIAM_HOME": str(clone.parent / "viam-home")}
    return subprocess.run(["bash", "-c", line], cwd=clone, env=env, capture_output=True, text=True, timeout=300)


def test_the_readme_commands_work_in_order_on_a_fresh_copy(clone: Path, sdk_python: Path) -> None:  # noqa: F811
    lines = commands()
    assert lines[0].startswith("./run.sh demo ") and any("--serve" in line for line in lines)
    for line in lines:
        if "--serve" in line:
            _serve_and_connect_like_the_readme(clone, line, sdk_python)
            continue
        if "pip install av" in line and os.environ.get("CI", "").lower() != "true":
            if subprocess.run([str(clone / ".venv/bin/python"), "-c", "import av"]).returncode == 0:
                continue  # already there: no network needed
        result = run(clone, line)
        assert result.returncode == 0, f"{line}\n{result.stderr[-3000:]}"
        _check(clone, line, result)


def _check(clone: Path, line: str, result: subprocess.CompletedProcess[str]) -> None:
    """What each README command promises."""
    if line.startswith("./run.sh demo ") and "--synthetic" not in line:
        table = parse_table(result.stdout)
        detected = {image: [r for r in rows if r.service == "detector"] for image, rows in table.items()}
        tops = {image: max(rows, key=lambda r: r.confidence or 0).label for image, rows in detected.items() if rows}
        assert tops == {"cat.png": "cat", "face.jpg": "person", "grace_hopper.png": "person", "parrot.jpg": "bird",
                        "pets.jpg": "dog"}, table
        assert sorted(r.label for r in table["pets.jpg"] if r.service == "detector") == ["dog", "dog"]
        assert [r.label for r in table["parrot.jpg"] if r.service == "classifier"][0] == "macaw"
        page = (clone / "out/index.html").read_text()
        assert all(f'src="{name}"' in page for name in ("cat.png", "face.png", "grace_hopper.png", "parrot.png"))
    elif "--json" in line:
        records = [json.loads(text) for text in result.stdout.splitlines()]
        assert [sorted(d["label"] for d in r["detections"]) for r in records] == [["dog", "dog"]]
    elif "viam-app.json" in line:
        assert result.stderr.count("skipped, the stand-in cannot play them") == 1
        assert len(parse_table(result.stdout)) == 5
    elif ".mp4" in line:
        assert (clone / "out/video/pets-pan-annotated.mp4").stat().st_size > 0
        frames = [json.loads(text) for text in (clone / "out/video/results.jsonl").read_text().splitlines()]
        assert len(frames) == 20 and all(f["video"] == "pets-pan.mp4" for f in frames)
    elif line.startswith("./run.sh local config/demo.json --out out/"):
        assert len(parse_table(result.stdout)) == 5 and (clone / "out/cat.png").is_file()


def _serve_and_connect_like_the_readme(clone: Path, line: str, sdk_python: Path) -> None:  # noqa: F811
    env = {**os.environ, "VIAM_HOME": str(clone.parent / "viam-home")}
    process = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=clone, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        printed = "".join(_wait_for(process, "Ctrl-C to stop"))
        socket = re.search(r"robot socket: +(\S+)", printed)[1]  # type: ignore[index]
        [example] = fenced("The first ten minutes", "python")
        script = clone.parent / "readme_example.py"
        script.write_text(re.sub(r'"/tmp/viam-module-X+/parent\.sock"', json.dumps(socket), example))
        done = subprocess.run([str(sdk_python), str(script)], capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        # the camera's first picture is demo/images/cat.png
        assert done.stdout.split()[:2] == ["cat", "0.72"], done.stdout
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
