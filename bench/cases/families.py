"""Case: model families (issue 12). Per family, post-processing alone (raw outputs -> Detections, exactly the
service's code path) and GetDetections / GetClassifications end to end in-process, zero-config.

Run just this case: ``python -m bench.cases.families [--samples N]`` (prints a table, writes
bench/results/families-<time>.json). ``python -m bench`` runs it too and puts the rows in its report.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from bench.cases.common import TESTDATA, log
from bench.stats import summary, time_calls

MODELS = (  # (row label, file)
    ("yolov8 [1,84,8400] float (YOLOv8n)", "yolov8n_int8_dynamic_640_coco80.tflite"),
    ("yolov8 [1,84,8400] int8 out (YOLO11n)", "yolo11n_full_integer_quant_640_coco80.tflite"),
    ("yolov8 [1,5,8400] NCHW input (1 class)", "yolo_custom_int8_nchw_640_shuttlecock_1class.tflite"),
    ("yolov5 [1,25200,85] float (fp16)", "yolov5n_fp16_640_coco80.tflite"),
    ("yolov5 [1,25200,85] uint8 out", "yolov5n_int8_640_coco80.tflite"),
    ("end2end [1,300,6] (YOLO26n)", "yolo26n_int8_320_coco80.tflite"),
    ("ssd TF2 post-processed", "ssd_tf2_mobilenet_v2_fpnlite_320_float_metadata_11class.tflite"),
    ("classifier [1,2] (Teachable Machine)", "teachable_machine_float_224_cats_dogs.tflite"),
)
PHOTO = "cats_and_dogs.jpg"  # 1200 x 600 JPEG, several objects


def families(n: int) -> dict[str, Any]:
    from module.mlmodel.config import TFLiteConfig
    from module.mlmodel.model import TFLiteModel
    from module.resource.manager import ResourceManager
    from module.resource.names import MLMODEL_API
    from module.resource.registry import ResourceContext
    from module.vision.classifications import class_probabilities, class_table, classifications
    from module.vision.config import VisionConfig
    from module.vision.detections import detections, yolo_detections
    from module.vision.imaging import open_image, to_model_input
    from module.vision.plan import make_plan
    from module.vision.service import VisionService
    from module.vision.tensorize import image_to_tensor

    jpeg = (TESTDATA / "images" / PHOTO).read_bytes()
    rows = []
    resources = ResourceManager()
    try:
        for label, file in MODELS:
            path = TESTDATA / "models" / file
            if not path.exists():
                continue
            log(f"families: {label}")
            model = TFLiteModel(TFLiteConfig.parse({"model_path": str(path), "num_threads": 1, "pool_size": 1}),
                                name=file)
            resources.put(MLMODEL_API, file, model)
            config = VisionConfig.parse({"mlmodel_name": file})
            service = VisionService.create(ResourceContext("vis", (), resources, lambda: None), config)
            plan = make_plan(model.metadata(), config)
            family = plan.family
            thresholds = config.thresholds.with_defaults(family.min_confidence, family.iou_threshold,
                                                         family.max_detections)
            image = open_image(jpeg, "image/jpeg")
            original = image.size
            rgb, letterbox = to_model_input(image, plan.input.size, letterbox=plan.resize_mode == "letterbox",
                                            fill=plan.fill, center_crop=plan.resize_mode == "center_crop")
            outputs = model.infer({plan.input_name: image_to_tensor(rgb, plan.input)})
            geometry = {"model_size": (rgb.shape[1], rgb.shape[0]), "letterbox": letterbox, "original_size": original}

            def post(plan: Any = plan, outputs: Any = outputs, geometry: Any = geometry, thresholds: Any = thresholds,
                     ) -> int:
                if plan.yolo is not None:
                    return len(yolo_detections(outputs, plan.yolo, plan.layout, plan.labels, thresholds,
                                               max_candidates=plan.max_candidates, **geometry))
                if plan.detector is not None:
                    return len(detections(outputs, plan.detector, plan.labels, thresholds, **geometry))
                probs = class_probabilities(outputs, plan.classifier)
                return len(classifications(probs, class_table(plan.labels, thresholds, probs.size), 5))

            if plan.detects:
                def call(service: Any = service) -> Any:
                    return service.detections(jpeg, "image/jpeg")
            else:
                def call(service: Any = service) -> Any:
                    return service.classifications(jpeg, "image/jpeg", 5)
            rows.append({"family": label, "model": file, "layout": plan.layout.kind, "results": post(),
                         "postprocess_ms": summary(time_calls(post, n)),
                         "end_to_end_ms": summary(time_calls(call, max(10, n // 5)))})
    finally:
        resources.close_all()
    return {"photo": PHOTO, "rows": rows}


def render(result: dict[str, Any]) -> list[str]:
    lines = ["### Model families, in-process, zero-config (ms; photo " + str(result.get("photo")) + ")", "",
             "| family | layout | results | post-processing p50 | p90 | GetDetections / GetClassifications p50 | p90 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in result.get("rows", []):
        post, e2e = row["postprocess_ms"], row["end_to_end_ms"]
        lines.append(f"| {row['family']} | {row['layout']} | {row['results']} | {post['p50']:.3f} | {post['p90']:.3f} "
                     f"| {e2e['p50']:.1f} | {e2e['p90']:.1f} |")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cases.families", description=__doc__)
    parser.add_argument("--samples", type=int, default=200, help="post-processing samples per family (default 200)")
    args = parser.parse_args(argv)
    result = families(args.samples)
    print("\n".join(render(result)))
    out_dir = Path(__file__).resolve().parents[1] / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"families-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
