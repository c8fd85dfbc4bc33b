"""Detections and classifications through the in-process vision service, with synthetic TFLite models.

Each test builds a real TFLiteModel from devkit/models.py (constant outputs, whatever the image), puts it in a
ResourceManager and creates a VisionService on it, so the whole path runs: decode, resize, tensorize, infer, and the
mapping of the outputs back to the original image.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
import pytest

from devkit import models as model_factory
from module.vision import detections as results
from module.vision.classifications import Classification
from module.vision.config import Thresholds
from module.vision.detections import Detection
from module.vision.imaging import Letterbox, open_image, to_model_input
from module.vision.layouts import Quantization
from module.vision.plan import DetectorPlan
from module.vision.service import VisionService
from tests.support.vision_harness import BOX, BOX_PX, HEIGHT, WIDTH, Harness, boxes_of, check_detection, harness, image_bytes

__all__ = ["harness"]  # the fixture



def inverse(order: Sequence[int]) -> list[int]:
    """TFLite BoundingBoxProperties.index (position of coordinate k) -> Viam xmin_ymin_xmax_ymax_order."""
    viam = [0] * 4
    for coordinate, position in enumerate(order):
        viam[position] = coordinate
    return viam


# --- box order ---------------------------------------------------------------------------------------------------------

# Several of the 24 orders, including ones that are not their own inverse (so index vs order mix-ups show).
ORDERS = [(0, 1, 2, 3), (1, 0, 3, 2), (1, 2, 3, 0), (3, 0, 1, 2), (2, 3, 0, 1), (0, 3, 1, 2), (3, 2, 0, 1),
          (2, 0, 3, 1)]


@pytest.mark.parametrize("index", ORDERS, ids=str)
def test_box_order_from_config(harness: Harness, index: tuple[int, int, int, int]) -> None:
    model = model_factory.detector_model([BOX], [0], [0.9], box_order=index)
    service = harness.service(model, xmin_ymin_xmax_ymax_order=inverse(index))
    found = service.detections(image_bytes())
    assert boxes_of(found) == [BOX_PX]
    check_detection(found[0], WIDTH, HEIGHT)


@pytest.mark.parametrize("index", ORDERS, ids=str)
def test_box_order_from_metadata(harness: Harness, index: tuple[int, int, int, int]) -> None:
    model = model_factory.detector_model([BOX], [0], [0.9], box_order=index, metadata=True)
    assert boxes_of(harness.service(model).detections(image_bytes())) == [BOX_PX]


def test_default_box_order_is_ssd(harness: Harness) -> None:
    model = model_factory.detector_model([BOX], [0], [0.9], box_order=(1, 0, 3, 2))
    assert boxes_of(harness.service(model).detections(image_bytes())) == [BOX_PX]


def test_config_box_order_beats_metadata(harness: Harness) -> None:
    # The metadata says [ymin, xmin, ymax, xmax]; the user says the model actually emits [xmin, ymin, xmax, ymax].
    model = model_factory.detector_model([BOX], [0], [0.9], box_order=(1, 0, 3, 2), metadata=True)
    found = harness.service(model, xmin_ymin_xmax_ymax_order=[0, 1, 2, 3]).detections(image_bytes())
    # The stored row is (0.2, 0.1, 0.9, 0.6), now read as xmin, ymin, xmax, ymax.
    assert boxes_of(found) == [(40, 10, 180, 60)]


def test_every_order_is_a_different_reading(harness: Harness) -> None:
    """Sanity check of the test itself: reading the same row with all 24 orders does not always give one box."""
    model = model_factory.detector_model([BOX], [0], [0.9], box_order=(0, 1, 2, 3))
    harness.model(model)
    readings = {tuple(boxes_of(harness.vision(xmin_ymin_xmax_ymax_order=list(o)).detections(image_bytes()))[0])
                for o in itertools.permutations(range(4))}
    assert len(readings) > 1


# --- pixel vs normalised -------------------------------------------------------------------------------------------------

PIXEL_BOX = (4.0, 8.0, 16.0, 24.0)  # on the 32 x 32 model input
PIXEL_BOX_PX = (25, 25, 100, 75)  # x * 200/32, y * 100/32


def test_pixel_boxes_from_metadata(harness: Harness) -> None:
    model = model_factory.detector_model([PIXEL_BOX], [0], [0.9], pixel=True, metadata=True)
    assert boxes_of(harness.service(model).detections(image_bytes())) == [PIXEL_BOX_PX]


def test_pixel_boxes_by_heuristic(harness: Harness) -> None:
    model = model_factory.detector_model([PIXEL_BOX], [0], [0.9])
    assert boxes_of(harness.service(model).detections(image_bytes())) == [PIXEL_BOX_PX]


def test_normalized_boxes_by_heuristic(harness: Harness) -> None:
    model = model_factory.detector_model([BOX], [0], [0.9])
    assert boxes_of(harness.service(model).detections(image_bytes())) == [BOX_PX]


def test_metadata_pixel_beats_the_heuristic(harness: Harness) -> None:
    # A 1x1-pixel box at the corner looks normalised to the heuristic; the metadata says PIXEL.
    model = model_factory.detector_model([(0.0, 0.0, 1.0, 1.0)], [0], [0.9], pixel=True, metadata=True)
    assert boxes_of(harness.service(model).detections(image_bytes())) == [(0, 0, 6, 3)]
    plain = model_factory.detector_model([(0.0, 0.0, 1.0, 1.0)], [0], [0.9])
    assert boxes_of(harness.service(plain).detections(image_bytes())) == [(0, 0, WIDTH, HEIGHT)]


def test_metadata_ratio_boxes_overshooting_are_clamped(harness: Harness) -> None:
    model = model_factory.detector_model([(-0.05, -0.01, 1.02, 1.1)], [0], [0.9], metadata=True)
    found = harness.service(model).detections(image_bytes())
    assert boxes_of(found) == [(0, 0, WIDTH, HEIGHT)]
    check_detection(found[0], WIDTH, HEIGHT)


def test_boxes_scale_with_the_original_image_not_the_model_input(harness: Harness) -> None:
    service = harness.service(model_factory.detector_model([BOX], [0], [0.9], input_size=(16, 48)))
    for width, height in ((200, 100), (37, 311), (640, 480)):
        found = service.detections(image_bytes(width, height))
        expected = (round(BOX[0] * width), round(BOX[1] * height), round(BOX[2] * width), round(BOX[3] * height))
        assert boxes_of(found) == [expected]
        check_detection(found[0], width, height)


# --- letterbox -----------------------------------------------------------------------------------------------------------

def rectangle_image(size: tuple[int, int], box: tuple[int, int, int, int], fmt: str = "PNG") -> bytes:
    """A black image with a white rectangle covering ``box`` (x0, y0, x1, y1; x1/y1 exclusive)."""
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = 255
    out = io.BytesIO()
    PIL.Image.fromarray(pixels).save(out, fmt, quality=95)
    return out.getvalue()


def where_the_model_sees_it(data: bytes, model_size: tuple[int, int]) -> list[float]:
    """The rectangle's box, normalised, in the letterboxed model input the service itself builds."""
    canvas, _ = to_model_input(open_image(data), model_size, letterbox=True)
    ys, xs = np.nonzero(canvas.max(axis=2) > 127)
    width, height = model_size
    return [xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height]


@pytest.mark.parametrize(("size", "box", "model_size", "fmt"), [
    ((200, 100), (40, 20, 120, 80), (64, 64), "PNG"),  # wide: padding above and below
    ((90, 300), (10, 50, 70, 290), (64, 64), "PNG"),  # tall: padding left and right
    ((333, 101), (0, 0, 333, 101), (64, 64), "PNG"),  # the whole image, odd sizes
    ((641, 479), (600, 3, 641, 30), (64, 64), "PNG"),  # at the edge
    ((1920, 1080), (300, 200, 1500, 900), (64, 64), "JPEG"),  # decoded at reduced size (JPEG draft) first
    ((720, 1280), (100, 50, 700, 600), (320, 240), "JPEG"),  # a model input that is not square
])
def test_letterbox_round_trip(harness: Harness, size: tuple[int, int], box: tuple[int, int, int, int],
                              model_size: tuple[int, int], fmt: str) -> None:
    """A rectangle drawn on the image, found where the letterboxed model input shows it, maps back onto itself."""
    data = rectangle_image(size, box, fmt)
    seen = where_the_model_sees_it(data, model_size)
    model = model_factory.detector_model([seen], [0], [0.9], box_order=(0, 1, 2, 3),
                                         input_size=(model_size[1], model_size[0]), metadata=True)
    harness.model(model)
    found = harness.vision(resize_mode="letterbox").detections(data)
    assert len(found) == 1
    error = np.abs(np.array(boxes_of(found)[0]) - np.array(box)).max()
    one_model_pixel = max(size[0] / model_size[0], size[1] / model_size[1])
    assert error <= max(2.0, one_model_pixel)  # 2 px, or one model pixel when those are bigger
    check_detection(found[0], *size)
    # The same model output read as a stretched image lands elsewhere: the mode matters.
    stretched = harness.vision(resize_mode="stretch").detections(data)
    assert np.abs(np.array(boxes_of(stretched)[0]) - np.array(box)).max() > 5


def test_letterbox_round_trip_on_a_bigger_model_input(harness: Harness) -> None:
    """With a model input near the image size the round trip is within 1-2 original pixels."""
    size, box, model_size = (400, 240), (37, 51, 211, 199), (320, 320)
    data = rectangle_image(size, box)
    seen = where_the_model_sees_it(data, model_size)
    harness.model(model_factory.detector_model([seen], [0], [0.9], box_order=(0, 1, 2, 3), input_size=model_size,
                                               metadata=True))
    found = harness.vision(resize_mode="letterbox").detections(data)
    assert np.abs(np.array(boxes_of(found)[0]) - np.array(box)).max() <= 2


# --- NMS and max_detections -------------------------------------------------------------------------------------------

# Rows deliberately not in score order.
NMS_BOXES = [(0.6, 0.6, 0.9, 0.9), (0.12, 0.12, 0.52, 0.52), (0.1, 0.1, 0.5, 0.5), (0.11, 0.11, 0.51, 0.51)]
NMS_CLASSES = [0, 0, 0, 1]
NMS_SCORES = [0.6, 0.8, 0.9, 0.7]


def nms_service(harness: Harness, **attrs: Any) -> VisionService:
    model = model_factory.detector_model(NMS_BOXES, NMS_CLASSES, NMS_SCORES)
    return harness.service(model, label_path=harness.labels(["a", "b"]), **attrs)


def scored(detections: Sequence[Detection]) -> list[tuple[str, float]]:
    return [(d.class_name, round(d.confidence, 3)) for d in detections]


def test_without_nms_every_box_is_kept_sorted_by_score(harness: Harness) -> None:
    found = nms_service(harness).detections(image_bytes())
    assert scored(found) == [("a", 0.9), ("a", 0.8), ("b", 0.7), ("a", 0.6)]


def test_nms_per_class(harness: Harness) -> None:
    found = nms_service(harness, iou_threshold=0.5).detections(image_bytes())
    assert scored(found) == [("a", 0.9), ("b", 0.7), ("a", 0.6)]  # b overlaps a but is another class


def test_nms_class_agnostic(harness: Harness) -> None:
    found = nms_service(harness, iou_threshold=0.5, class_agnostic_nms=True).detections(image_bytes())
    assert scored(found) == [("a", 0.9), ("a", 0.6)]


def test_nms_with_a_high_threshold_keeps_overlaps(harness: Harness) -> None:
    found = nms_service(harness, iou_threshold=0.95).detections(image_bytes())
    assert len(found) == 4


@pytest.mark.parametrize(("limit", "expected"), [(1, [0.9]), (2, [0.9, 0.8]), (10, [0.9, 0.8, 0.7, 0.6])])
def test_max_detections_keeps_the_best(harness: Harness, limit: int, expected: list[float]) -> None:
    found = nms_service(harness, max_detections=limit).detections(image_bytes())
    assert [round(d.confidence, 3) for d in found] == expected


def test_max_detections_after_nms(harness: Harness) -> None:
    found = nms_service(harness, iou_threshold=0.5, max_detections=2).detections(image_bytes())
    assert scored(found) == [("a", 0.9), ("b", 0.7)]


# --- thresholds --------------------------------------------------------------------------------------------------------

THRESHOLD_CLASSES = [0, 1, 2, 0, 1]  # cat, dog, bird, cat, dog
THRESHOLD_SCORES = [0.3, 0.625, 0.4375, 0.8125, 0.1875]  # exact in float32


def threshold_service(harness: Harness, **attrs: Any) -> VisionService:
    boxes = [(0.1 * i, 0.1, 0.1 * i + 0.05, 0.2) for i in range(5)]
    model = model_factory.detector_model(boxes, THRESHOLD_CLASSES, THRESHOLD_SCORES)
    return harness.service(model, label_path=harness.labels(["cat", "dog", "bird"]), **attrs)


@pytest.mark.parametrize(("attrs", "expected"), [
    ({}, [("cat", 0.812), ("dog", 0.625), ("bird", 0.438), ("cat", 0.3), ("dog", 0.188)]),
    ({"default_minimum_confidence": 0.5}, [("cat", 0.812), ("dog", 0.625)]),
    # A listed label uses its own threshold, the rest keep the default (Viam would drop every unlisted label).
    ({"default_minimum_confidence": 0.5, "label_confidences": {"cat": 0.25}},
     [("cat", 0.812), ("dog", 0.625), ("cat", 0.3)]),
    ({"default_minimum_confidence": 0.5, "label_confidences": {"CAT": 0.9}}, [("dog", 0.625)]),
    ({"label_confidences": {"bird": 0.5}}, [("cat", 0.812), ("dog", 0.625), ("cat", 0.3), ("dog", 0.188)]),
    ({"default_minimum_confidence": 0.3}, [("cat", 0.812), ("dog", 0.625), ("bird", 0.438), ("cat", 0.3)]),
    ({"allowed_labels": ["Dog"]}, [("dog", 0.625), ("dog", 0.188)]),
    ({"allowed_labels": ["dog", "bird"], "default_minimum_confidence": 0.4}, [("dog", 0.625), ("bird", 0.438)]),
    ({"allowed_labels": ["dog", "cat"], "label_confidences": {"dog": 0.7}}, [("cat", 0.812), ("cat", 0.3)]),
    ({"allowed_labels": []}, []),
    ({"default_minimum_confidence": 1.0}, []),
], ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_threshold_rules(harness: Harness, attrs: dict[str, Any], expected: list[tuple[str, float]]) -> None:
    assert scored(threshold_service(harness, **attrs).detections(image_bytes())) == expected


def test_thresholds_apply_to_classifications(harness: Harness) -> None:
    model = model_factory.classifier_model([0.125, 0.5, 0.375])
    service = harness.service(model, label_path=harness.labels(["a", "b", "c"]), default_minimum_confidence=0.2,
                              label_confidences={"c": 0.4})
    assert [c.class_name for c in service.classifications(image_bytes())] == ["b"]


def test_classifications_follow_set_thresholds_and_a_replaced_model(harness: Harness) -> None:
    """The per-class table is built once, so it must be rebuilt when the thresholds or the model change."""
    service = harness.service(model_factory.classifier_model([0.125, 0.5, 0.375]),
                              label_path=harness.labels(["a", "b", "c"]))
    assert [c.class_name for c in service.classifications(image_bytes())] == ["b", "c", "a"]
    service.do_command({"command": "set_thresholds", "label_confidences": {"b": 0.9}, "allowed_labels": ["b", "c"]})
    assert [c.class_name for c in service.classifications(image_bytes())] == ["c"]
    service.do_command({"command": "set_thresholds", "default_minimum_confidence": 0.4})
    assert [c.class_name for c in service.classifications(image_bytes())] == []
    service.do_command({"command": "set_thresholds", "default_minimum_confidence": 0.0, "label_confidences": {},
                        "allowed_labels": None})
    harness.model(model_factory.classifier_model([0.6, 0.1, 0.2, 0.1]))  # four classes: the fourth has no label
    assert [(c.class_name, round(c.confidence, 3)) for c in service.classifications(image_bytes())] == [
        ("a", 0.6), ("c", 0.2), ("b", 0.1), ("3", 0.1)]


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_a_score_equal_to_its_threshold_is_kept(harness: Harness, dtype: str) -> None:
    """'score >= threshold': 0.7 from the model (float32 0.69999999, or 7 x 0.1 dequantised) passes 0.7."""
    model = model_factory.classifier_model([0.7, 0.3], dtype=dtype, quant=(0.1, 0) if dtype == "uint8" else None)
    service = harness.service(model, default_minimum_confidence=0.7)
    assert [c.class_name for c in service.classifications(image_bytes())] == ["0"]
    service = harness.service(model, default_minimum_confidence=0.9, label_confidences={"1": 0.3})
    assert [c.class_name for c in service.classifications(image_bytes())] == ["1"]
    boxes = [(0.1, 0.1, 0.2, 0.2)] * 2
    detector = harness.service(model_factory.detector_model(boxes, [0, 1], [0.7, 0.6]), default_minimum_confidence=0.7)
    assert [d.class_name for d in detector.detections(image_bytes())] == ["0"]


# --- n_detections, odd rows, labels ----------------------------------------------------------------------------------

def test_n_detections_truncates_padded_rows(harness: Harness) -> None:
    boxes = [(0.1, 0.1, 0.2, 0.2), (0.3, 0.3, 0.4, 0.4), (0.0, 0.0, 1.0, 1.0), (0.5, 0.5, 0.6, 0.6)]
    # Rows 3 and 4 are padding past the valid count; give them high scores to prove they are ignored.
    model = model_factory.detector_model(boxes, [0, 1, 2, 3], [0.5, 0.4, 0.99, 0.98], count=2)
    found = harness.service(model).detections(image_bytes())
    assert scored(found) == [("0", 0.5), ("1", 0.4)]


@pytest.mark.parametrize(("count", "expected"), [(0, 0), (4, 4), (10, 4), (float("nan"), 4)])
def test_n_detections_bounds(harness: Harness, count: float, expected: int) -> None:
    boxes = [(0.1, 0.1, 0.2, 0.2)] * 4
    model = model_factory.detector_model(boxes, [0] * 4, [0.9] * 4, count=count)
    assert len(harness.service(model).detections(image_bytes())) == expected


def test_out_of_range_class_gets_its_number(harness: Harness) -> None:
    boxes = [(0.1, 0.1, 0.2, 0.2)] * 5
    model = model_factory.detector_model(boxes, [1, 7, 3, -2, 2], [0.9, 0.8, 0.7, 0.6, 0.5])
    found = harness.service(model, label_path=harness.labels(["cat", "", "bird"])).detections(image_bytes())
    # A blank label line names nothing: the index is used, like an index past the end (never a failed call).
    assert [d.class_name for d in found] == ["1", "7", "3", "-2", "bird"]


def test_rows_with_a_non_finite_class_are_dropped(harness: Harness) -> None:
    boxes = [(0.1, 0.1, 0.2, 0.2)] * 3
    model = model_factory.detector_model(boxes, [1, math.nan, math.inf], [0.9, 0.8, 0.7])
    found = harness.service(model, label_path=harness.labels(["cat", "dog"])).detections(image_bytes())
    assert [(d.class_name, round(d.confidence, 2)) for d in found] == [("dog", 0.9)]


def test_rows_with_non_finite_boxes_are_dropped_not_fatal(harness: Harness) -> None:
    boxes = [(0.1, 0.1, 0.2, 0.2), (math.nan, 0.1, 0.2, 0.2), (0.3, 0.3, 0.4, 0.4)]
    model = model_factory.detector_model(boxes, [0, 0, 0], [0.9, 0.8, math.nan])
    found = harness.service(model).detections(image_bytes())
    assert scored(found) == [("0", 0.9)]


def test_every_detection_has_pixels_and_normalized_coordinates(harness: Harness) -> None:
    boxes = [(0.0, 0.2, 0.0, 0.4),  # zero width at the left edge
             (1.0, 0.0, 1.0, 0.0),  # zero size at the right edge
             (0.3, 0.3, 0.3001, 0.3001),  # smaller than a pixel
             (0.9, 0.8, 0.1, 0.2),  # corners swapped
             (-3.0, -3.0, 5.0, 5.0)]  # far outside the image (RATIO per the metadata): clamped
    model = model_factory.detector_model(boxes, [0] * 5, [0.9, 0.8, 0.7, 0.6, 0.5], metadata=True)
    found = harness.service(model).detections(image_bytes(37, 23))
    assert len(found) == 5
    for d in found:
        check_detection(d, 37, 23)
    assert boxes_of(found)[3] == (4, 5, 33, 18)


def test_empty_output_gives_no_detections(harness: Harness) -> None:
    model = model_factory.detector_model([(0.1, 0.1, 0.2, 0.2)], [0], [0.9], count=0)
    assert harness.service(model).detections(image_bytes()) == []


def test_detector_without_category_takes_the_best_class(harness: Harness) -> None:
    scores = [[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]]
    model = model_factory.detector_model([BOX, (0.0, 0.0, 0.5, 0.5)], None, scores, with_category=False,
                                         metadata=True, embedded_labels=["cat", "dog", "bird"])
    found = harness.service(model).detections(image_bytes())
    assert scored(found) == [("dog", 0.7), ("cat", 0.6)]
    assert boxes_of(found)[0] == BOX_PX


def test_labels_precedence_for_detections(harness: Harness) -> None:
    model = model_factory.detector_model([BOX], [1], [0.9], metadata=True, embedded_labels=["e0", "e1"])
    harness.model(model)
    assert [d.class_name for d in harness.vision().detections(image_bytes())] == ["e1"]  # embedded
    vision_labels = harness.labels(["v0", "v1"], "vision.txt")
    assert [d.class_name for d in harness.vision(label_path=vision_labels).detections(image_bytes())] == ["v1"]
    harness.model(model, label_path=harness.labels(["m0", "m1"], "mlmodel.txt"))  # the mlmodel's own label_path
    assert [d.class_name for d in harness.vision().detections(image_bytes())] == ["m1"]
    assert [d.class_name for d in harness.vision(label_path=vision_labels).detections(image_bytes())] == ["v1"]
    harness.model(model_factory.detector_model([BOX], [1], [0.9]))  # no labels anywhere
    assert [d.class_name for d in harness.vision().detections(image_bytes())] == ["1"]


# --- classifications -------------------------------------------------------------------------------------------------

def named(found: Sequence[Classification]) -> list[tuple[str, float]]:
    return [(c.class_name, round(c.confidence, 4)) for c in found]


def test_probabilities_are_kept_and_sorted(harness: Harness) -> None:
    service = harness.service(model_factory.classifier_model([0.1, 0.7, 0.2]),
                              label_path=harness.labels(["a", "b", "c"]))
    assert named(service.classifications(image_bytes())) == [("b", 0.7), ("c", 0.2), ("a", 0.1)]


def test_logits_are_softmaxed(harness: Harness) -> None:
    logits = np.array([2.0, 1.0, -1.0])
    expected = np.exp(logits) / np.exp(logits).sum()
    service = harness.service(model_factory.classifier_model(list(logits)))
    found = service.classifications(image_bytes())
    assert [c.class_name for c in found] == ["0", "1", "2"]
    np.testing.assert_allclose([c.confidence for c in found], expected, rtol=1e-5)


def test_single_output_logit_gets_a_sigmoid(harness: Harness) -> None:
    found = harness.service(model_factory.classifier_model([2.0])).classifications(image_bytes())
    assert len(found) == 1 and found[0].confidence == pytest.approx(1 / (1 + math.exp(-2.0)), rel=1e-5)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_quantized_scores_are_dequantized(harness: Harness, dtype: str) -> None:
    probs = [0.1, 0.7, 0.2]
    service = harness.service(model_factory.classifier_model(probs, dtype=dtype))
    found = service.classifications(image_bytes())
    assert [c.class_name for c in found] == ["1", "2", "0"]
    np.testing.assert_allclose([c.confidence for c in found], [0.7, 0.2, 0.1], atol=1 / 256)


def test_quantized_scores_with_other_parameters(harness: Harness) -> None:
    # A uint8 output with zero point 100: raw values above 100 would look like "percent" to Viam.
    service = harness.service(model_factory.classifier_model([0.25, 0.75], dtype="uint8", quant=(1 / 128, 100)))
    assert named(service.classifications(image_bytes())) == [("1", 0.75), ("0", 0.25)]


def test_labels_precedence_for_classifications(harness: Harness) -> None:
    model = model_factory.classifier_model([0.2, 0.8], metadata=True, embedded_labels=["e0", "e1"])
    harness.model(model)
    assert harness.vision().classifications(image_bytes(), n=1)[0].class_name == "e1"
    vision_labels = harness.labels(["v0", "v1"], "vision.txt")
    assert harness.vision(label_path=vision_labels).classifications(image_bytes(), n=1)[0].class_name == "v1"
    harness.model(model_factory.classifier_model([0.2, 0.8]))
    assert harness.vision().classifications(image_bytes(), n=1)[0].class_name == "1"


def test_classifier_with_fewer_labels_than_outputs(harness: Harness) -> None:
    service = harness.service(model_factory.classifier_model([0.1, 0.2, 0.7]), label_path=harness.labels(["a"]))
    assert [c.class_name for c in service.classifications(image_bytes())] == ["2", "1", "a"]


# --- input layout and normalisation, seen through models that return the per-channel mean of their input ---------------

def solid_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    PIL.Image.new("RGB", (width, height), rgb).save(out, "PNG")
    return out.getvalue()


SOLID = (255, 0, 102)  # R, G, B; a constant image survives any resize unchanged


@pytest.mark.parametrize("model", ["nchw", "dynamic"])
@pytest.mark.parametrize(("attrs", "expected"), [
    # mean 0, std 1: the model sees v / 255, so its "probabilities" are the channel values themselves.
    ({"input_image_mean_value": [0, 0, 0], "input_image_std_dev": [1, 1, 1]}, [("0", 1.0), ("2", 0.4), ("1", 0.0)]),
    ({"input_image_mean_value": [0, 0, 0], "input_image_std_dev": [1, 1, 1], "input_image_bgr": True},
     [("2", 1.0), ("0", 0.4), ("1", 0.0)]),
    ({"input_image_mean_value": [0.5, 0, 0], "input_image_std_dev": [1, 1, 0.5]}, [("2", 0.8), ("0", 0.5), ("1", 0.0)]),
], ids=["mean0-std1", "bgr", "per-channel"])
def test_float_input_normalisation_and_layout(harness: Harness, model: str, attrs: dict[str, Any],
                                              expected: list[tuple[str, float]]) -> None:
    data = model_factory.nchw_model((8, 12)) if model == "nchw" else model_factory.dynamic_model()
    service = harness.service(data, **attrs)
    found = service.classifications(solid_png(37, 23, SOLID))
    assert [c.class_name for c in found] == [name for name, _ in expected]
    np.testing.assert_allclose([c.confidence for c in found], [p for _, p in expected], atol=1e-5)


def test_default_float_normalisation_is_minus_one_to_one(harness: Harness) -> None:
    # (v/255 - 0.5) / 0.5 gives channel means 1, -1, -0.2: logits, so the service softmaxes them.
    service = harness.service(model_factory.nchw_model())
    found = service.classifications(solid_png(20, 20, SOLID))
    logits = np.array([1.0, -1.0, -0.2])
    expected = np.exp(logits) / np.exp(logits).sum()
    assert [c.class_name for c in found] == ["0", "2", "1"]
    np.testing.assert_allclose([c.confidence for c in found], expected[[0, 2, 1]], atol=1e-5)


# --- quantised detector outputs (no synthetic TFLite detector has them: results.detections directly) ---------------------

@pytest.mark.parametrize(("dtype", "zero_point"), [("uint8", 0), ("int8", -128)])
def test_quantized_detector_outputs_are_dequantized(dtype: str, zero_point: int) -> None:
    location_scale, score_scale = 1 / 255, 1 / 256
    boxes = np.array([[[0.2, 0.1, 0.8, 0.6], [0.0, 0.0, 1.0, 1.0]]])  # ymin, xmin, ymax, xmax
    scores = np.array([[0.75, 0.25]])
    outputs = {
        "location": (np.rint(boxes / location_scale) + zero_point).astype(dtype),
        "score": (np.rint(scores / score_scale) + zero_point).astype(dtype),
        "category": np.array([[1.0, 0.0]], dtype=np.float32),
    }
    plan = DetectorPlan(location="location", score="score", category="category", count=None, box_order=(1, 0, 3, 2),
                        normalized=None, score_quant=Quantization(score_scale, zero_point),
                        location_quant=Quantization(location_scale, zero_point))
    found = results.detections(outputs, plan, ("a", "b"), Thresholds(default_minimum_confidence=0.5), model_size=(10, 10),
                       letterbox=Letterbox(0.1, 0.2, 0.0, 0.0), original_size=(100, 50))  # stretched 100x50 -> 10x10
    assert [(d.class_name, d.confidence) for d in found] == [("b", 0.75)]  # 0.25 is below 0.5 once dequantized
    assert boxes_of(found) == [(10, 10, 60, 40)]  # normalised (by the heuristic) once dequantized
