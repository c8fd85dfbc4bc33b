"""Tests for module/mlmodel/config.py: the tflite_cpu attributes, read the way they arrive (a protobuf Struct)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from module.errors import ConfigError
from module.mlmodel.config import Interpreters, TFLiteConfig, cpu_cores
from module.resource.structs import dict_to_struct, struct_to_dict

MODEL = "/models/detector.tflite"


def parse(**attributes: Any) -> TFLiteConfig:
    """Parse attributes after a trip through a Struct, as viam-server sends them (every number a double)."""
    return TFLiteConfig.parse(struct_to_dict(dict_to_struct(attributes)))


def test_defaults() -> None:
    config = parse(model_path=MODEL)
    assert config.model_path == MODEL
    assert config.label_path == ""
    assert (config.num_threads, config.pool_size) == (None, None)  # not set: the automatic scheme
    assert config.runtime == "auto"
    assert cpu_cores() == len(os.sched_getaffinity(0))


def test_defaults_build_one_thread_per_core_plus_one_interpreter_with_every_core() -> None:
    config = parse(model_path=MODEL)
    assert config.interpreters(cores=4) == Interpreters(count=4, threads=1, solo_threads=4)
    assert config.interpreters(cores=2) == Interpreters(count=2, threads=1, solo_threads=2)
    assert config.interpreters(cores=1) == Interpreters(count=1, threads=1, solo_threads=0)  # nothing to gain


@pytest.mark.parametrize(("attrs", "expected"), [
    ({"num_threads": 1}, Interpreters(count=4, threads=1)),
    ({"num_threads": 4, "pool_size": 1}, Interpreters(count=1, threads=4)),  # the old "lowest latency" advice
    ({"pool_size": 1}, Interpreters(count=1, threads=1)),
    ({"pool_size": 3}, Interpreters(count=3, threads=1)),
    ({"num_threads": 2}, Interpreters(count=4, threads=2)),
])
def test_explicit_threads_or_pool_size_are_exactly_what_is_built(attrs: dict[str, int], expected: Interpreters) -> None:
    assert parse(model_path=MODEL, **attrs).interpreters(cores=4) == expected


def test_all_attributes() -> None:
    config = parse(model_path=MODEL, label_path="/models/labels.txt", num_threads=4, pool_size=3,
                   runtime="tflite-runtime")
    assert config == TFLiteConfig(model_path=MODEL, label_path="/models/labels.txt", num_threads=4, pool_size=3,
                                  runtime="tflite-runtime")


def test_struct_doubles_are_whole_numbers() -> None:
    config = TFLiteConfig.parse({"model_path": MODEL, "num_threads": 3.0, "pool_size": 2.0})
    assert (config.num_threads, config.pool_size) == (3, 2)
    assert isinstance(config.num_threads, int) and isinstance(config.pool_size, int)


@pytest.mark.parametrize("runtime", ["auto", "ai-edge-litert", "tflite-runtime"])
def test_runtime_choices(runtime: str) -> None:
    assert parse(model_path=MODEL, runtime=runtime).runtime == runtime


def test_package_reference_is_accepted_like_viams_model() -> None:
    assert parse(model_path=MODEL, package_reference="org/pkg").model_path == MODEL


@pytest.mark.parametrize(("attributes", "attribute", "detail"), [
    ({}, "model_path", "required"),
    ({"model_path": ""}, "model_path", "required"),
    ({"model_path": 3}, "model_path", "string"),
    ({"model_path": ["a.tflite"]}, "model_path", "string"),
    ({"model_path": "/models/model.onnx"}, "model_path", ".tflite"),
    ({"model_path": "/models/tflite"}, "model_path", ".tflite"),
    ({"label_path": 7}, "label_path", "string"),
    ({"num_threads": 0}, "num_threads", "whole number"),
    ({"num_threads": -1}, "num_threads", "whole number"),
    ({"num_threads": 2.5}, "num_threads", "whole number"),
    ({"num_threads": "x"}, "num_threads", "whole number"),
    ({"num_threads": "2"}, "num_threads", "whole number"),
    ({"num_threads": True}, "num_threads", "whole number"),
    ({"num_threads": 100000}, "num_threads", "whole number"),
    ({"pool_size": 0}, "pool_size", "whole number"),
    ({"pool_size": -3}, "pool_size", "whole number"),
    ({"pool_size": 1.5}, "pool_size", "whole number"),
    ({"pool_size": "many"}, "pool_size", "whole number"),
    ({"pool_size": False}, "pool_size", "whole number"),
    ({"pool_size": 100000}, "pool_size", "whole number"),
    ({"runtime": "tensorflow"}, "runtime", "auto, ai-edge-litert, tflite-runtime"),
    ({"runtime": 1}, "runtime", "string"),
    ({"model_pth": "/x.tflite"}, "model_pth", "unknown attribute"),
    ({"numthreads": 2}, "numthreads", "unknown attribute"),
])
def test_bad_values_name_the_attribute(attributes: dict[str, Any], attribute: str, detail: str) -> None:
    raw = attributes if not attributes or "model_path" in attributes else {"model_path": MODEL, **attributes}
    with pytest.raises(ConfigError) as info:
        parse(**raw)
    message = str(info.value)
    assert f"'{attribute}'" in message
    assert detail in message


def test_bad_value_message_shows_what_came() -> None:
    with pytest.raises(ConfigError, match=r"'num_threads' must be a whole number .*got 2\.5"):
        parse(model_path=MODEL, num_threads=2.5)
    with pytest.raises(ConfigError, match=r"got 'x'"):
        parse(model_path=MODEL, num_threads="x")


def test_unknown_attribute_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse(model_path=MODEL, threads=2)
    message = str(info.value)
    for known in ("model_path", "label_path", "num_threads", "pool_size", "runtime"):
        assert known in message


def test_no_dependencies() -> None:
    deps = parse(model_path=MODEL).dependencies()
    assert deps.required == () and deps.optional == ()
