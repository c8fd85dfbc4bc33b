"""The benchmark cases, one module per concern; ``python -m bench`` runs them all (bench/README.md)."""

from bench import bare
from bench.cases.codec import flat_tensor
from bench.cases.common import SOURCE_PHOTO, SSD, SSD_ATTRS, log, machine, make_jpeg, venv_python
from bench.cases.interpreter import bare_interpreters
from bench.cases.overhead import constant_detector, overhead
from bench.cases.pipeline import in_process, profile_in_process
from bench.cases.socket import ours, sdk_alternative, sdk_client
from bench.cases.targets import paired

__all__ = ["SOURCE_PHOTO", "SSD", "SSD_ATTRS", "bare", "bare_interpreters", "constant_detector", "flat_tensor", "in_process",
           "log", "machine", "make_jpeg", "ours", "overhead", "paired", "profile_in_process", "sdk_alternative",
           "sdk_client", "venv_python"]
