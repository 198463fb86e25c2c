"""An exported model checked against the eager one on image files: the detections compared (boxes,
scores, labels, masks) and the time per image of each, side by side in one process."""
import statistics
import time
from typing import Dict, Sequence

import numpy as np
import torch

from ..deploy.predictor import ExportedPredictor
from ..engine.predictor import Predictor

__all__ = ["compare_with_eager"]


def compare_with_eager(cfg, weights: str, model_dir: str, images: Sequence[str], *, repeats: int = 3,
                       score_floor: float = 0.05) -> Dict:
    """Per image: detections scoring above ``score_floor`` in each, the largest box (px) and score
    differences, the smallest mask IoU (masks at 0.5), whether labels agree; and the median
    seconds per image of the eager model in fp32 and in bf16 autocast, and of the export, over
    ``repeats`` runs (0: detections only, for models too slow to time here)."""
    eager, exported = Predictor(cfg, weights), ExportedPredictor(model_dir)
    rows, times = [], {"eager_fp32": [], "eager_bf16": [], "exported": []}
    for path in images:
        image = exported.read(path)
        _, expected = eager(path)
        got = exported.predict(image)
        rows.append(dict(image=path, size=list(image.shape[:2]), **_difference(expected, got, score_floor)))
        for _ in range(repeats):
            times["eager_fp32"].append(_seconds(lambda: eager(path)))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                times["eager_bf16"].append(_seconds(lambda: eager(path)))
            times["exported"].append(_seconds(lambda: exported(path)))
    if not repeats:
        return dict(images=rows)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return dict(
        images=rows, seconds_per_image=medians, threads=torch.get_num_threads(),
        speedup_over_eager_fp32=medians["eager_fp32"] / medians["exported"],
        speedup_over_eager_bf16=medians["eager_bf16"] / medians["exported"],
    )


def _difference(expected: Dict[str, torch.Tensor], got: Dict[str, np.ndarray], score_floor: float) -> Dict:
    expected = {k: v.numpy() for k, v in expected.items()}
    counts = [int((d["scores"] > score_floor).sum()) for d in (expected, got)]
    n = min(len(expected["scores"]), len(got["scores"]))
    if n == 0:
        return dict(eager_detections=counts[0], exported_detections=counts[1])
    ours, theirs = got["masks"][:n] >= 0.5, expected["masks"][:n, 0] >= 0.5
    iou = (ours & theirs).sum((1, 2)) / np.maximum((ours | theirs).sum((1, 2)), 1)
    return dict(
        eager_detections=counts[0], exported_detections=counts[1],
        max_box_difference=float(np.abs(expected["boxes"][:n] - got["boxes"][:n]).max()),
        max_score_difference=float(np.abs(expected["scores"][:n] - got["scores"][:n]).max()),
        min_mask_iou=float(iou.min()),
        same_labels=bool((expected["labels"][:n] == got["labels"][:n]).all()),
    )


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
