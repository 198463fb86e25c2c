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
    """Per image: detections scoring above ``score_floor`` in each; the detections paired (same
    label, boxes within 1 px) and those left unpaired; over the pairs, the largest box (px) and
    score differences, the smallest mask IoU (masks at 0.5) and the largest mask probability
    difference; and the median seconds per image of the eager model in fp32 and in bf16 autocast,
    and of the export, over ``repeats`` runs (0: detections only, for models too slow to time)."""
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
    """Detections paired by label and box rather than by rank: where scores tie to within float
    noise (a random-weight model scores every box about 1 / classes), their order is arbitrary."""
    expected = {k: v.numpy() for k, v in expected.items()}
    counts = [int((d["scores"] > score_floor).sum()) for d in (expected, got)]
    pairs = _pair(expected, got)
    row = dict(eager_detections=counts[0], exported_detections=counts[1], paired=len(pairs),
               unpaired_eager=len(expected["scores"]) - len(pairs), unpaired_exported=len(got["scores"]) - len(pairs))
    if not pairs:
        return row
    mine, theirs = (np.array(index) for index in zip(*pairs))
    ours, eager = got["masks"][theirs] >= 0.5, expected["masks"][mine, 0] >= 0.5
    union = (ours | eager).sum((1, 2))
    iou = np.where(union > 0, (ours & eager).sum((1, 2)) / np.maximum(union, 1), 1.0)  # two empty masks agree
    return dict(
        row,
        max_box_difference=float(np.abs(expected["boxes"][mine] - got["boxes"][theirs]).max()),
        max_score_difference=float(np.abs(expected["scores"][mine] - got["scores"][theirs]).max()),
        min_mask_iou=float(iou.min()),
        # IoU at 0.5 means nothing where a mask hovers at 0.5, as an untrained model's do
        max_mask_difference=float(np.abs(got["masks"][theirs] - expected["masks"][mine, 0]).max()),
    )


def _pair(expected: Dict[str, np.ndarray], got: Dict[str, np.ndarray], within_px: float = 1.0):
    """(eager index, exported index) pairs: each eager detection, best first, takes the nearest
    unpaired exported box of its label (largest coordinate difference) within ``within_px``."""
    distance = np.abs(expected["boxes"][:, None, :] - got["boxes"][None, :, :]).max(axis=2)
    distance[expected["labels"][:, None] != got["labels"][None, :]] = np.inf
    pairs = []
    if distance.size == 0:
        return pairs
    for i in range(len(distance)):
        j = int(np.argmin(distance[i]))
        if distance[i, j] <= within_px:
            pairs.append((i, j))
            distance[:, j] = np.inf
    return pairs


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
