"""Package metadata for the TFLite Viam module (the code lives in module/; run.sh is the entrypoint)."""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


class _BuildWithManifest(build_py):
    """meta.json names the module and its models (module/manifest.py); in a checkout or the registry archive it sits
    next to module/, in an installed package it is copied into it."""

    def run(self) -> None:
        super().run()
        self.copy_file(str(HERE / "meta.json"), str(Path(self.build_lib) / "module" / "meta.json"))


def _requirements(name: str) -> list[str]:
    lines = (HERE / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip() and not line.startswith("-r")]


setup(
    name="tflite-viam-module",
    version="0.1.0",
    description="TFLite mlmodel and mlmodel-vision services for viam-server, over a Unix-socket gRPC server",
    python_requires=">=3.10",
    packages=find_packages(include=["module", "module.*"]),
    package_data={"module": ["py.typed"]},
    install_requires=_requirements("requirements.txt"),
    extras_require={
        "litert": ["ai-edge-litert>=2.3.0"],
        "tflite-runtime": ["tflite-runtime>=2.14.0"],
        "dev": _requirements("requirements-dev.txt"),
    },
    entry_points={"console_scripts": ["tflite-viam-module=module.main:main"]},
    cmdclass={"build_py": _BuildWithManifest},
)
