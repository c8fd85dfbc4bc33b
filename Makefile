# Build the registry archive locally (the same scripts meta.json gives `viam module build local` and the cloud build).
#   make            dist/module.tar.gz for this machine's platform, wheels for CPython 3.10-3.13
#   make WHEEL_PYTHONS=3.11   only the robot's Python (smaller archive)
#   make clean

WHEEL_PYTHONS ?= 3.10 3.11 3.12 3.13
export WHEEL_PYTHONS

.PHONY: module setup clean
module: setup
	./scripts/build_module.sh dist/module.tar.gz

setup:
	./scripts/build_setup.sh

clean:
	rm -rf build dist
