"""The tflite_cpu mlmodel service over a real socket: a module process started like viam-server starts it."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from devkit import models as model_factory
from devkit.standin.launcher import MLMODEL, ModuleProcess
from devkit.testdata import require_testdata
from module.gen.common.v1 import common_pb2
from module.gen.service.mlmodel.v1 import mlmodel_pb2 as pb
from module.gen.service.mlmodel.v1 import mlmodel_pb2_grpc
from module.mlmodel import flat_tensors
from module.mlmodel.labels import parse_labels
from module.mlmodel.runtime import load_runtime
from module.resource.structs import struct_to_dict
from module.server import MAX_MESSAGE_BYTES

LABELS = ["background", "cat", "dog"]


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def infer(process: ModuleProcess, name: str, arrays: dict[str, np.ndarray], **kwargs: object) -> dict[str, np.ndarray]:
    request = pb.InferRequest(name=name, input_tensors=flat_tensors.encode_all(arrays))
    response = process.mlmodel.Infer(request, timeout=60, **kwargs)
    return flat_tensors.decode_all(response.output_tensors)


def rpc_error(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value


def test_metadata_infer_and_status(module_process: ModuleProcess, tmp_path: Path) -> None:
    path = write(tmp_path, "classifier.tflite", model_factory.classifier_model(
        [0.1, 0.7, 0.2], dtype="uint8", metadata=True, embedded_labels=LABELS))
    module_process.add("classifier", MLMODEL, {"model_path": path, "num_threads": 2, "pool_size": 2})

    metadata = module_process.mlmodel.Metadata(pb.MetadataRequest(name="classifier"), timeout=10).metadata
    assert (metadata.name, metadata.type) == ("Synthetic classifier", "tflite_classifier")
    (image,) = metadata.input_info
    assert (image.name, image.data_type, list(image.shape)) == ("image", "uint8", [1, 16, 16, 3])
    (probability,) = metadata.output_info
    assert (probability.name, probability.data_type, list(probability.shape)) == ("probability", "uint8", [1, 3])
    assert [(f.name, f.label_type) for f in probability.associated_files] == [
        ("labels.txt", pb.LABEL_TYPE_TENSOR_AXIS)]
    extra = struct_to_dict(probability.extra)
    assert extra["scale"] == pytest.approx(1 / 256) and extra["zero_point"] == 0
    # The embedded labels were extracted into the module's data folder, where a vision service can read them.
    assert Path(extra["labels"]).is_relative_to(module_process.dir)
    assert parse_labels(Path(extra["labels"]).read_bytes()) == tuple(LABELS)

    outputs = infer(module_process, "classifier", {"any name": np.zeros((1, 16, 16, 3), np.uint8)})
    assert list(outputs) == ["probability"]
    np.testing.assert_allclose(outputs["probability"].astype(float) / 256, [[0.1, 0.7, 0.2]], atol=1 / 256)

    status = struct_to_dict(module_process.mlmodel.GetStatus(common_pb2.GetStatusRequest(name="classifier"),
                                                             timeout=10).result)
    assert status["runtime"] == load_runtime("auto").name
    assert status["runtime_version"]
    assert (status["pool_size"], status["num_threads"], status["infer_count"]) == (2, 2, 1)
    assert status["model_path"] == path


def test_real_detector_over_the_socket(module_process: ModuleProcess) -> None:
    testdata = require_testdata("models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite", "images/cat.bmp")
    module_process.add("ssd", MLMODEL, {"model_path": str(testdata / "models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")})
    metadata = module_process.mlmodel.Metadata(pb.MetadataRequest(name="ssd"), timeout=10).metadata
    assert [t.name for t in metadata.output_info] == ["locations", "classes", "scores", "number of detections"]
    assert [list(t.shape) for t in metadata.output_info] == [[1, 10, 4], [1, 10], [1, 10], [1]]
    assert struct_to_dict(metadata.output_info[0].extra)["boxOrder"] == [1, 0, 3, 2]
    pixels = np.asarray(Image.open(testdata / "images/cat.bmp").convert("RGB").resize((300, 300), Image.BILINEAR))
    outputs = infer(module_process, "ssd", {"image": pixels[None]})
    assert int(outputs["classes"][0, 0]) == 16  # cat, reference score 0.7188
    assert outputs["scores"][0, 0] == pytest.approx(0.7188, abs=0.02)
    np.testing.assert_allclose(outputs["locations"][0, 0], [0.131, 0.091, 0.977, 0.708], atol=0.02)


def test_errors_map_to_status_codes_and_the_server_keeps_serving(module_process: ModuleProcess,
                                                                  tmp_path: Path) -> None:
    module_process.add("adder", MLMODEL, {"model_path": write(tmp_path, "add.tflite", model_factory.add_model())})
    module_process.add("other", MLMODEL, {"model_path": write(tmp_path, "p.tflite",
                                                              model_factory.passthrough_model("int8", (2,)))})
    good = {"a": np.ones((1, 4), np.float32), "b": np.full((1, 4), 2, np.float32)}
    stub = module_process.mlmodel

    error = rpc_error(lambda: infer(module_process, "nobody", good))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "'nobody'" in error.details() and "'adder'" in error.details() and "'other'" in error.details()
    error = rpc_error(lambda: stub.Metadata(pb.MetadataRequest(name="nobody"), timeout=10))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = rpc_error(lambda: stub.GetStatus(common_pb2.GetStatusRequest(name="nobody"), timeout=10))
    assert error.code() == grpc.StatusCode.NOT_FOUND

    bad_requests = {
        "unknown tensor name": ({"a": good["a"], "c": good["b"]}, r"unknown input tensor\(s\) 'c'"),
        "missing tensor": ({"a": good["a"]}, r"missing input tensor\(s\) 'b'"),
        "wrong dtype": ({"a": good["a"], "b": good["b"].astype(np.float64)}, r"'b' has dtype float64.*float32"),
        "wrong shape": ({"a": good["a"], "b": np.ones((4, 1), np.float32)}, r"shape \[4, 1\].*\[1, 4\]"),
    }
    for label, (arrays, pattern) in bad_requests.items():
        error = rpc_error(lambda arrays=arrays: infer(module_process, "adder", arrays))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, label
        assert re.search(pattern, error.details()), (label, error.details())

    no_data = pb.InferRequest(name="adder", input_tensors=pb.FlatTensors(tensors={"a": pb.FlatTensor(shape=[1, 4])}))
    error = rpc_error(lambda: stub.Infer(no_data, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "no data" in error.details()
    short = pb.InferRequest(name="adder", input_tensors=pb.FlatTensors(tensors={
        "a": pb.FlatTensor(shape=[1, 4], float_tensor=pb.FlatTensorDataFloat(data=[1, 2, 3]))}))
    error = rpc_error(lambda: stub.Infer(short, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "4 elements" in error.details()

    np.testing.assert_array_equal(infer(module_process, "adder", good)["sum"], np.full((1, 4), 3, np.float32))
    assert "Traceback" not in module_process.log()  # domain errors are not logged as crashes


def test_bad_config_is_invalid_argument_naming_the_attribute(module_process: ModuleProcess, tmp_path: Path) -> None:
    model = write(tmp_path, "add.tflite", model_factory.add_model())
    cases = [
        ({"model_path": model, "num_threads": 0}, "num_threads"),
        ({"model_path": model, "pool_size": "x"}, "pool_size"),
        ({"model_path": model, "runtime": "gpu"}, "runtime"),
        ({"model_path": model, "nmu_threads": 2}, "nmu_threads"),
        ({"model_path": str(tmp_path / "absent.tflite")}, "model_path"),
        ({"model_path": write(tmp_path, "junk.tflite", b"junk")}, "model_path"),
        ({"model_path": model, "label_path": str(tmp_path / "absent.txt")}, "label_path"),
    ]
    for attributes, attribute in cases:
        error = rpc_error(lambda attributes=attributes: module_process.add("bad", MLMODEL, attributes))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, attributes
        assert f"'{attribute}'" in error.details(), (attributes, error.details())
    error = rpc_error(lambda: module_process.validate("bad", MLMODEL, {"model_path": model, "num_threads": 2.5}))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "'num_threads'" in error.details()
    module_process.add("good", MLMODEL, {"model_path": model})
    error = rpc_error(lambda: infer(module_process, "bad", {"a": np.ones((1, 4), np.float32)}))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "'good'" in error.details()


def test_large_tensors_and_the_message_limit(module_process: ModuleProcess, tmp_path: Path) -> None:
    shape = (1, 1024, 1024, 3)  # 12 MiB of float32, three times grpcio's 4 MiB default
    path = write(tmp_path, "big.tflite", model_factory.passthrough_model("float32", shape))
    module_process.add("big", MLMODEL, {"model_path": path, "pool_size": 1})
    data = np.random.default_rng(3).standard_normal(shape, dtype=np.float32)
    outputs = infer(module_process, "big", {"input": data})
    assert outputs["output"].dtype == np.float32
    np.testing.assert_array_equal(outputs["output"], data)

    # A client that allows itself to send more than the module accepts: the module refuses, then keeps serving.
    options = [("grpc.max_send_message_length", 2 * MAX_MESSAGE_BYTES),
               ("grpc.max_receive_message_length", 2 * MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(f"unix:{module_process.socket}", options=options) as channel:
        stub = mlmodel_pb2_grpc.MLModelServiceStub(channel)
        too_big = np.zeros(MAX_MESSAGE_BYTES // 4 + 1024, np.float32)
        request = pb.InferRequest(name="big", input_tensors=flat_tensors.encode_all({"input": too_big}))
        assert request.ByteSize() > MAX_MESSAGE_BYTES
        error = rpc_error(lambda: stub.Infer(request, timeout=60))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        np.testing.assert_array_equal(
            flat_tensors.decode_all(stub.Infer(pb.InferRequest(name="big", input_tensors=flat_tensors.encode_all(
                {"input": data})), timeout=60).output_tensors)["output"], data)
    assert module_process.proc.poll() is None


def test_every_mlmodel_method_is_served_with_the_generated_codecs_except_infers_prebuilt_response() -> None:
    from module.mlmodel.servicer import MLModelServicer, method_handlers
    from module.resource.manager import ResourceManager

    handlers = method_handlers(MLModelServicer(ResourceManager()))
    service = pb.DESCRIPTOR.services_by_name["MLModelService"]
    assert set(handlers) == set(service.methods_by_name), "a new MLModelService method needs a handler here"
    for name, method in service.methods_by_name.items():
        assert handlers[name].request_deserializer.__self__.DESCRIPTOR is method.input_type  # type: ignore[union-attr]
    # Infer's servicer returns the serialized response, and it goes out unchanged.
    outputs = {"y": np.arange(3, dtype=np.float32)}
    wire = flat_tensors.infer_response_bytes(outputs)
    assert handlers["Infer"].response_serializer(wire) is wire  # type: ignore[misc]
    assert pb.InferResponse.FromString(wire) == pb.InferResponse(output_tensors=flat_tensors.encode_all(outputs))
