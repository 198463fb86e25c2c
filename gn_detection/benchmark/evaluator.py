"""COCOEvaluator's backends timed against each other on synthetic predictions.

faster-coco-eval is meant to give pycocotools' numbers faster; ``benchmark_evaluator`` measures
both on the same few hundred images of made-up ground truth and detections and checks that every
metric agrees.
"""
import contextlib
import json
import logging
import math
import os
import statistics
import tempfile
import time
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch

from ..evaluation import coco as coco_module
from ..evaluation.coco import BACKENDS, COCOEvaluator
from ..utils.errors import UserError

__all__ = ["synthetic_coco", "benchmark_evaluator"]

logger = logging.getLogger(__name__)

# (min, max) side in pixels of a small, medium and large object: COCO's area ranges split at
# 32^2 and 96^2, and an ellipse covers pi/4 of its box, so each range gets objects of its own
_SIDES = ((6, 30), (36, 100), (120, 230))
_CROWD_PROBABILITY = 0.1  # per image, one crowd region: COCOeval must ignore detections on it
_MISS_PROBABILITY = 0.1
_WRONG_LABEL_PROBABILITY = 0.05
# Poisson mean. A detector keeps up to 100 boxes per image above a 0.05 score (detectron2 and
# COCO practice): most are low-scored boxes on background, and COCOeval must rank them all.
_FALSE_POSITIVES_PER_IMAGE = 40.0
# in AP points: the backends average the same precisions in a different order, which can move
# the last bit of a mean (~1e-15), far below any printed digit
_SAME_AP = 1e-9


def _ellipse_polygon(rng: np.random.Generator, cx: float, cy: float, w: float, h: float,
                     width: int, height: int) -> List[float]:
    # jittered radii so masks are not exact ellipses and a mask's IoU differs from its box's
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    radii = 1 + rng.uniform(-0.15, 0.15, angles.size)
    xs = np.clip(cx + w / 2 * radii * np.cos(angles), 0, width)
    ys = np.clip(cy + h / 2 * radii * np.sin(angles), 0, height)
    return np.round(np.stack([xs, ys], axis=1).ravel(), 2).tolist()


def _rasterize(polygon: List[float], height: int, width: int) -> dict:
    return mask_util.merge(mask_util.frPyObjects([polygon], height, width))


def _json_rle(rle: dict) -> dict:
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def _random_object(rng: np.random.Generator, width: int, height: int) -> Tuple[float, ...]:
    """Centre and size (cx, cy, w, h) of an object of random size class that fits the image."""
    low, high = _SIDES[rng.integers(len(_SIDES))]
    w, h = rng.uniform(low, high, 2)
    cx, cy = rng.uniform(w / 2, width - w / 2), rng.uniform(h / 2, height - h / 2)
    return float(cx), float(cy), float(w), float(h)


def _detection(rng: np.random.Generator, image: dict, category_id: int, obj: Tuple[float, ...],
               score: float) -> List[dict]:
    """A COCO result for ``obj`` as a model would give it: its box drawn a little apart from its
    mask, as box and mask heads disagree. Empty if the mask fell outside the image."""
    height, width = image["height"], image["width"]
    rle = _rasterize(_ellipse_polygon(rng, *obj, width, height), height, width)
    if mask_util.area(rle) == 0:
        return []
    x, y, w, h = mask_util.toBbox(rle) + rng.normal(0, 0.03, 4) * np.tile(obj[2:], 2)
    return [{"image_id": image["id"], "category_id": category_id, "score": score,
             "bbox": [float(x), float(y), float(max(w, 1.0)), float(max(h, 1.0))],
             "segmentation": _json_rle(rle)}]


def synthetic_coco(num_images: int = 500, *, num_categories: int = 3,
                   seed: int = 0) -> Tuple[dict, List[dict]]:
    """A COCO ground-truth dataset and detections of it, fixed for a seed.

    Each image holds 2..8 objects, each small, medium or large (jittered ellipses; polygons, some
    as RLE), and sometimes a crowd region. Most objects and crowds are detected with a shifted,
    rescaled mask whose score falls as the error grows; some are missed or mislabelled, and every
    image gets a few low-scored false positives, so AP lands well inside (0, 100).

    Returns:
        ``(dataset, results)``: the dataset as its JSON dict, and the detections as COCO result
        entries with ``bbox`` (XYWH), ``score`` and ``segmentation`` (compressed RLE, str counts).
    """
    rng = np.random.default_rng(seed)
    category_ids = list(range(1, num_categories + 1))
    images, annotations, results = [], [], []
    for image_id in range(1, num_images + 1):
        width, height = (int(v) for v in rng.integers(240, 400, 2))
        image = {"id": image_id, "width": width, "height": height, "file_name": f"{image_id:06d}.jpg"}
        images.append(image)
        crowd = rng.random() < _CROWD_PROBABILITY
        for i in range(int(rng.integers(2, 9)) + crowd):
            obj = _random_object(rng, width, height)
            category_id = int(rng.choice(category_ids))
            polygon = _ellipse_polygon(rng, *obj, width, height)
            rle = _rasterize(polygon, height, width)
            is_crowd = crowd and i == 0
            # COCO stores crowd regions as RLE; some plain objects as RLE too, as converted datasets do
            segmentation = _json_rle(rle) if is_crowd or rng.random() < 0.2 else [polygon]
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": category_id,
                "iscrowd": int(is_crowd), "segmentation": segmentation,
                "area": float(mask_util.area(rle)), "bbox": mask_util.toBbox(rle).tolist(),
            })
            if rng.random() < _MISS_PROBABILITY:
                continue
            error = rng.uniform(0.02, 0.25)  # relative to the object's size
            cx, cy, w, h = obj
            guess = (cx + rng.normal(0, error) * w, cy + rng.normal(0, error) * h,
                     w * math.exp(rng.normal(0, error)), h * math.exp(rng.normal(0, error)))
            if rng.random() < _WRONG_LABEL_PROBABILITY:
                category_id = int(rng.choice(category_ids))
            score = float(np.clip(1 - 3 * error + rng.normal(0, 0.05), 0.01, 0.99))
            results += _detection(rng, image, category_id, guess, score)
        for _ in range(rng.poisson(_FALSE_POSITIVES_PER_IMAGE)):
            obj = _random_object(rng, width, height)
            results += _detection(rng, image, int(rng.choice(category_ids)), obj,
                                  float(rng.uniform(0.01, 0.6)))
    categories = [{"id": c, "name": f"class{c}"} for c in category_ids]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _model_outputs(dataset: dict, results: List[dict], category_ids: Sequence[int],
                   with_masks: bool) -> Iterator[Tuple[int, dict]]:
    """``(image_id, eval output)`` per image, the form ``COCOEvaluator.process`` takes."""
    by_image: Dict[int, List[dict]] = {image["id"]: [] for image in dataset["images"]}
    for result in results:
        by_image[result["image_id"]].append(result)
    sizes = {image["id"]: (image["height"], image["width"]) for image in dataset["images"]}
    for image_id, mine in by_image.items():
        boxes = torch.tensor([r["bbox"] for r in mine], dtype=torch.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        output = {
            "boxes": boxes,
            "labels": torch.tensor([category_ids.index(r["category_id"]) + 1 for r in mine]),
            "scores": torch.tensor([r["score"] for r in mine], dtype=torch.float64),
        }
        if with_masks:
            masks = np.zeros((len(mine), *sizes[image_id]), dtype=np.float32)
            if mine:
                masks[:] = mask_util.decode([r["segmentation"] for r in mine]).transpose(2, 0, 1)
            output["masks"] = torch.from_numpy(masks)[:, None]
        yield image_id, output


@contextlib.contextmanager
def _quiet_evaluator() -> Iterator[None]:
    # each evaluate logs a summary and a per-category table per task; a benchmark runs many
    coco_logger = logging.getLogger(coco_module.__name__)
    level = coco_logger.level
    coco_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        coco_logger.setLevel(level)


def _max_abs_diff(a: dict, b: dict) -> float:
    """The largest absolute difference between two ``{task: {metric: value}}``: NaN matches NaN;
    a metric NaN or missing in just one of them differs by inf."""
    flat_a = {(task, key): v for task, values in a.items() for key, v in values.items()}
    flat_b = {(task, key): v for task, values in b.items() for key, v in values.items()}
    if flat_a.keys() != flat_b.keys():
        return math.inf
    diffs = [0.0 if math.isnan(x) and math.isnan(y) else abs(x - y)
             for x, y in ((flat_a[k], flat_b[k]) for k in flat_a)]
    # nan - number is nan, which max() would pass over
    return max((math.inf if math.isnan(d) else d for d in diffs), default=0.0)


def benchmark_evaluator(num_images: int = 500, *, num_categories: int = 80, repeats: int = 3, seed: int = 0,
                        tasks: Sequence[str] = ("bbox", "segm")) -> dict:
    """Median seconds of ``COCOEvaluator.evaluate`` with each backend, and whether they agree.

    The detections of ``synthetic_coco(num_images, num_categories=..., seed=seed)`` (COCO's 80
    categories by default) are given to one COCOEvaluator
    per backend (untimed); then ``evaluate`` (load results, evaluate, accumulate, summarize, per
    task) runs ``repeats`` times per backend, interleaved, so drifts in the machine's speed hit
    both alike.

    Args:
        tasks: ``("bbox",)`` or ``("bbox", "segm")``: COCOEvaluator always scores boxes, and
            masks when it is given them.

    Returns:
        ``num_images``, ``num_annotations``, ``num_detections``, ``repeats``, ``tasks``;
        ``seconds`` (backend -> median s) and ``all_seconds`` (backend -> each run's s);
        ``metrics`` (backend -> what ``evaluate`` returned: task -> AP, AP50, ..., AP-<class>);
        ``speedup`` (pycocotools' median / faster_coco_eval's); ``max_abs_diff`` (the largest
        difference between the backends over every metric of every task, in AP points; NaN
        matches NaN); ``identical_ap`` (``max_abs_diff`` at most 1e-9, i.e. equal up to
        floating-point summation order) and ``bitwise_identical_ap`` (``max_abs_diff`` 0).
    """
    if "bbox" not in tasks or not set(tasks) <= {"bbox", "segm"}:
        raise UserError(f"tasks={tuple(tasks)}: use ('bbox',) or ('bbox', 'segm'); "
                         f"COCOEvaluator always scores boxes")
    if repeats < 1:
        raise UserError(f"repeats={repeats}: need at least 1")
    dataset, results = synthetic_coco(num_images, num_categories=num_categories, seed=seed)
    category_ids = [c["id"] for c in dataset["categories"]]
    with_masks = "segm" in tasks

    with tempfile.TemporaryDirectory() as folder:
        json_file = os.path.join(folder, "ground_truth.json")
        with open(json_file, "w") as f:
            json.dump(dataset, f)
        evaluators = {b: COCOEvaluator(json_file, category_ids=category_ids, backend=b) for b in BACKENDS}
    for evaluator in evaluators.values():
        for image_id, output in _model_outputs(dataset, results, category_ids, with_masks):
            evaluator.process([image_id], [output])

    times: Dict[str, List[float]] = {b: [] for b in BACKENDS}
    metrics: Dict[str, dict] = {}
    with _quiet_evaluator():
        for i in range(repeats):
            for backend, evaluator in evaluators.items():
                start = time.perf_counter()
                metrics[backend] = evaluator.evaluate()
                times[backend].append(time.perf_counter() - start)
                logger.info("%s: run %d/%d  %.3f s", backend, i + 1, repeats, times[backend][-1])

    seconds = {b: statistics.median(t) for b, t in times.items()}
    max_diff = _max_abs_diff(metrics["pycocotools"], metrics["faster_coco_eval"])
    return {
        "num_images": num_images,
        "num_categories": num_categories,
        "num_annotations": len(dataset["annotations"]),
        "num_detections": len(results),
        "repeats": repeats,
        "tasks": sorted(tasks),
        "seconds": seconds,
        "all_seconds": times,
        "metrics": metrics,
        "speedup": seconds["pycocotools"] / seconds["faster_coco_eval"],
        "identical_ap": max_diff <= _SAME_AP,
        "bitwise_identical_ap": max_diff == 0.0,
        "max_abs_diff": max_diff,
    }
