"""FROC: lesion sensitivity at fixed false positives per image, the medical-detection companion
of COCO AP.

A free-response ROC curve plots, as the score threshold falls, the fraction of ground-truth
lesions found against the mean number of false positives per image; it is summarised by the
sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 false positives per image and their mean (the LUNA16
challenge's CPM score, Setio et al., "Validation, comparison, and combination of algorithms for
automatic detection of pulmonary nodules in computed tomography images", MedIA 2017).

Conventions, where LUNA16 and the literature leave a choice:

- Class-agnostic by default: a lesion is found if any detection hits it, whatever either's
  category, as a reader finds a finding; ``class_agnostic=False`` asks for matching categories.
- A lesion is hit at threshold t if a detection with score >= t in its image has box IoU
  >= ``iou_threshold`` with it (LUNA16 asks for the candidate to lie inside the nodule instead).
- A detection is a false positive only if it hits no lesion. A second detection of a lesion
  already hit is not a false positive, as LUNA16 merges the candidates of one nodule.
- Crowd ground truth (``iscrowd=1``) is neither a lesion to find nor a source of false
  positives: a detection covering a crowd region (intersection over the detection's area
  >= ``iou_threshold``, COCOeval's crowd rule) and hitting no lesion is ignored.
- The sensitivity at a rate r is read off the step curve (the best sensitivity whose false
  positives per image do not exceed r), not interpolated between thresholds as LUNA16 does.
- With no lesion at all every sensitivity and the per-image recall are 0, not NaN.
"""
from collections import defaultdict
from typing import Dict, Hashable, List, Sequence, Tuple

import numpy as np

from ..utils.errors import UserError

__all__ = ["FROC_FPS_PER_IMAGE", "froc"]

# the seven rates of LUNA16's CPM score
FROC_FPS_PER_IMAGE = (0.125, 0.25, 0.5, 1, 2, 4, 8)


def froc(detections: Sequence[dict], ground_truth: Sequence[dict], image_ids: Sequence[int], *,
         iou_threshold: float = 0.5, fps_per_image: Sequence[float] = FROC_FPS_PER_IMAGE,
         recall_score_threshold: float = 0.5, class_agnostic: bool = True) -> Dict[str, float]:
    """Sensitivity at fixed false positives per image, and the mean per-image recall.

    Thresholds sweep every distinct detection score, highest first. At threshold t the
    sensitivity is (lesions hit by detections with score >= t) / (all lesions) and the false
    positives per image are (false positives with score >= t) / ``len(image_ids)``; see the
    module docstring for what counts as a hit and a false positive.

    Args:
        detections: COCO result entries: ``image_id``, ``category_id``, ``bbox`` (XYWH, pixels),
            ``score``; other keys (``segmentation``) are ignored. Every ``image_id`` must be in
            ``image_ids``.
        ground_truth: COCO annotations: ``image_id``, ``category_id``, ``bbox`` (XYWH) and
            optionally ``iscrowd`` (default 0). Annotations of images outside ``image_ids`` are
            ignored, so a whole dataset's annotations may be passed to score part of it.
        image_ids: the evaluated images, each once, including those with no detection or no
            lesion: all of them divide the false positives.
        iou_threshold: the box IoU at or above which a detection hits a lesion; default 0.5.
        fps_per_image: the false-positive rates at which sensitivity is reported; default
            ``FROC_FPS_PER_IMAGE``, LUNA16's seven.
        recall_score_threshold: the score from which a detection counts in ``recall_per_image``;
            default 0.5.
        class_agnostic: if False, a detection hits only lesions of its own category, and covers
            only crowd regions of its own category.

    Returns:
        ``sensitivity@<r>`` for each r in ``fps_per_image`` (``f"{r:g}"``: ``sensitivity@0.125``,
        ``sensitivity@1``), the best sensitivity with at most r false positives per image (0 if
        no threshold qualifies); ``mean_sensitivity``, their mean; ``recall_per_image``, the mean
        over images with at least one lesion of (lesions hit by detections with score >=
        ``recall_score_threshold``) / (its lesions); all in percent. Also ``images_with_lesions``
        and ``lesions``, the counts behind them.

    Raises:
        ValueError: a bad threshold or rate, a repeated image id, a detection of an image not
            in ``image_ids``, or an entry without a needed key.
    """
    if not 0 < iou_threshold <= 1:
        raise UserError(f"froc: iou_threshold must lie in (0, 1]; got {iou_threshold}")
    rates = [float(r) for r in fps_per_image]
    if not rates or any(not r > 0 for r in rates):
        raise UserError(f"froc: fps_per_image must be non-empty and positive; got {list(fps_per_image)}")
    image_set = {int(i) for i in image_ids}
    if len(image_set) != len(image_ids):
        repeated = sorted({int(i) for i in image_ids if list(image_ids).count(i) > 1})
        raise UserError(f"froc: image_ids must each appear once; {repeated} repeat")

    # group by what may match what: the image, or (image, category) when categories must agree
    def group(entry: dict) -> Hashable:
        image_id = int(entry["image_id"])
        return image_id if class_agnostic else (image_id, int(entry["category_id"]))

    dets_by_group: Dict[Hashable, List[dict]] = defaultdict(list)
    for det in detections:
        _check_keys(det, ("image_id", "category_id", "bbox", "score"), "detection")
        if int(det["image_id"]) not in image_set:
            raise UserError(f"froc: a detection is of image {det['image_id']}, which is not in image_ids")
        dets_by_group[group(det)].append(det)
    lesions_by_group: Dict[Hashable, List[dict]] = defaultdict(list)
    crowds_by_group: Dict[Hashable, List[dict]] = defaultdict(list)
    for ann in ground_truth:
        _check_keys(ann, ("image_id", "category_id", "bbox"), "ground-truth annotation")
        if int(ann["image_id"]) not in image_set:
            continue
        (crowds_by_group if ann.get("iscrowd", 0) else lesions_by_group)[group(ann)].append(ann)

    # per lesion: its image and the best score of a detection hitting it (-inf if none does);
    # per false positive: its score
    lesion_images: List[int] = []
    lesion_scores: List[float] = []
    fp_scores: List[float] = []
    for key in set(dets_by_group) | set(lesions_by_group):
        dets, lesions = dets_by_group.get(key, []), lesions_by_group.get(key, [])
        scores = np.array([float(d["score"]) for d in dets], dtype=np.float64)
        hits = _box_iou(_xyxy(dets), _xyxy(lesions)) >= iou_threshold  # (D, L)
        best = np.where(hits, scores[:, None], -np.inf).max(axis=0, initial=-np.inf)
        lesion_scores.extend(best.tolist())
        lesion_images.extend(int(a["image_id"]) for a in lesions)
        covered = _crowd_overlap(_xyxy(dets), _xyxy(crowds_by_group.get(key, []))) >= iou_threshold
        false_positive = ~hits.any(axis=1) & ~covered.any(axis=1)
        fp_scores.extend(scores[false_positive].tolist())

    num_lesions = len(lesion_scores)
    result = {f"sensitivity@{r:g}": 0.0 for r in rates}
    result.update(mean_sensitivity=0.0, recall_per_image=0.0, images_with_lesions=0, lesions=0)
    if num_lesions == 0:
        return result

    best_scores = np.array(lesion_scores)
    sensitivity, fps = _froc_curve(best_scores, np.array(fp_scores),
                                   [float(d["score"]) for d in detections], len(image_set))
    for r in rates:
        within = fps <= r
        result[f"sensitivity@{r:g}"] = float(sensitivity[within].max()) * 100 if within.any() else 0.0
    result["mean_sensitivity"] = float(np.mean([result[f"sensitivity@{r:g}"] for r in rates]))

    found = best_scores >= recall_score_threshold
    per_image: Dict[int, Tuple[int, int]] = defaultdict(lambda: (0, 0))  # image -> (hit, lesions)
    for image_id, hit in zip(lesion_images, found):
        hit_count, count = per_image[image_id]
        per_image[image_id] = (hit_count + int(hit), count + 1)
    result["recall_per_image"] = float(np.mean([h / n for h, n in per_image.values()])) * 100
    result["images_with_lesions"] = len(per_image)
    result["lesions"] = num_lesions
    return result


def _froc_curve(lesion_scores: np.ndarray, fp_scores: np.ndarray, det_scores: List[float],
                num_images: int) -> Tuple[np.ndarray, np.ndarray]:
    """(sensitivity as a fraction, false positives per image) at each distinct detection score,
    highest first."""
    thresholds = np.unique(np.asarray(det_scores, dtype=np.float64))[::-1]
    # count of values >= t, for each threshold t, by binary search in the sorted values
    hits = len(lesion_scores) - np.searchsorted(np.sort(lesion_scores), thresholds, side="left")
    fps = len(fp_scores) - np.searchsorted(np.sort(fp_scores), thresholds, side="left")
    return hits / len(lesion_scores), fps / num_images


def _check_keys(entry: dict, keys: Sequence[str], what: str) -> None:
    missing = [k for k in keys if k not in entry]
    if missing:
        raise UserError(f"froc: a {what} has no {missing}; it has {sorted(entry)}")


def _xyxy(entries: Sequence[dict]) -> np.ndarray:
    """(N, 4) XYXY boxes from the XYWH ``bbox`` of COCO entries."""
    boxes = np.array([e["bbox"] for e in entries], dtype=np.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) intersection areas of XYXY boxes."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    size = np.clip(bottom_right - top_left, 0, None)
    return size[..., 0] * size[..., 1]


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) IoU of XYXY boxes; 0 where both boxes are empty."""
    inter = _intersection(a, b)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _crowd_overlap(dets: np.ndarray, crowds: np.ndarray) -> np.ndarray:
    """(D, C) share of each detection's area inside each crowd region, as COCOeval measures a
    detection against crowd ground truth; 0 for an empty detection."""
    inter = _intersection(dets, crowds)
    area = np.broadcast_to(_area(dets)[:, None], inter.shape)
    return np.divide(inter, area, out=np.zeros_like(inter), where=area > 0)
