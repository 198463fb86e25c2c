"""COCO box and mask AP of a model's eval outputs, gathered from every process.

The numbers are COCOeval's (pycocotools, or faster-coco-eval which gives the same numbers
faster), reported in percent like detectron2: AP, AP50, AP75, APs, APm, APl, and AP per category.
Optionally also FROC, the medical-detection sensitivities at fixed false positives per image
(froc.py).
"""
import contextlib
import copy
import io
import logging
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch
from tabulate import tabulate

from ..utils import comm
from ..utils.errors import UserError
from ..utils.file_io import atomic_write_json
from .froc import FROC_FPS_PER_IMAGE
from .froc import froc as compute_froc

__all__ = ["COCOEvaluator", "BACKENDS", "output_to_coco_results"]

logger = logging.getLogger(__name__)

BACKENDS = ("pycocotools", "faster_coco_eval")

# COCOeval.stats[0:6], in its order; the recall entries after them are not reported.
_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
_MASK_THRESHOLD = 0.5  # mask head outputs are probabilities; COCO wants binary masks


def output_to_coco_results(image_id: int, output: Dict[str, torch.Tensor],
                           category_ids: Sequence[int]) -> List[dict]:
    """One image's eval output as COCO result entries, one per detection.

    Args:
        image_id: the COCO image id.
        output: ``boxes`` (R, 4) XYXY in the image's pixels, ``labels`` (R,) contiguous labels
            1..K, ``scores`` (R,), and optionally ``masks`` (R, 1, H, W) probabilities. Any device.
        category_ids: COCO category id of label k at index k - 1.

    Returns:
        Entries with ``image_id``, ``category_id``, ``bbox`` (XYWH), ``score`` and, with masks,
        ``segmentation`` as compressed RLE whose ``counts`` is a str (JSON-ready).

    Raises:
        ValueError: a missing key, mismatched lengths, or a label outside 1..K.
    """
    for key in ("boxes", "labels", "scores"):
        if key not in output:
            raise UserError(f"image {image_id}: the output has no {key!r}; it has {sorted(output)}")
    boxes = output["boxes"].detach().to("cpu", torch.float64).numpy()
    labels = output["labels"].detach().cpu().numpy().astype(np.int64)
    scores = output["scores"].detach().cpu().float().numpy()
    num = len(boxes)
    if boxes.shape != (num, 4) or labels.shape != (num,) or scores.shape != (num,):
        raise UserError(
            f"image {image_id}: expected boxes (R, 4), labels (R,) and scores (R,); got "
            f"{tuple(boxes.shape)}, {tuple(labels.shape)} and {tuple(scores.shape)}"
        )
    if num and (labels.min() < 1 or labels.max() > len(category_ids)):
        raise UserError(
            f"image {image_id}: labels must lie in 1..{len(category_ids)} (one per entry of "
            f"category_ids); got {sorted(set(labels.tolist()))}"
        )
    xywh = boxes.copy()
    xywh[:, 2:] -= xywh[:, :2]

    results = [
        {"image_id": int(image_id), "category_id": int(category_ids[label - 1]),
         "bbox": [float(v) for v in box], "score": float(score)}
        for box, label, score in zip(xywh, labels, scores)
    ]
    if "masks" in output:
        for result, rle in zip(results, _encode_masks(image_id, output["masks"], num)):
            result["segmentation"] = rle
    return results


def _encode_masks(image_id: int, masks: torch.Tensor, num: int) -> List[dict]:
    if masks.dim() != 4 or masks.shape[0] != num or masks.shape[1] != 1:
        raise UserError(
            f"image {image_id}: expected masks (R, 1, H, W) with R={num}; got {tuple(masks.shape)}"
        )
    if num == 0:
        return []
    binary = (masks[:, 0] > _MASK_THRESHOLD).cpu().numpy().astype(np.uint8)
    # pycocotools wants (H, W, R) in Fortran order and encodes all R masks in one call
    rles = mask_util.encode(np.asfortranarray(binary.transpose(1, 2, 0)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


class COCOEvaluator:
    """Accumulates eval outputs per image, then runs COCOeval for boxes and, if given, masks.

    Only the images given to ``process`` (on any process) are evaluated, so an evaluation on
    part of a dataset scores that part; an image processed twice (a padded distributed sampler)
    counts once.

    Args:
        json_file: COCO ground truth; its crowd regions are honoured by COCOeval as usual.
        category_ids: COCO category id of each contiguous label, label k at index k - 1; all must
            be categories of ``json_file``. Only these categories are evaluated.
        class_names: name of each label, same order, used in the ``AP-<name>`` keys and the log;
            default ``str(category_id)``.
        output_dir: if set, the main process writes ``inference/coco_instances_results.json``
            (the COCO results) and ``inference/results.json`` (what ``evaluate`` returns) there.
        backend: ``"pycocotools"`` or ``"faster_coco_eval"`` (same numbers, faster; needs
            ``pip install faster-coco-eval``).
        froc: if True, ``evaluate`` also returns ``"froc"``: ``froc.froc`` of the box detections
            against the ground truth of the processed images in ``category_ids`` (with its
            defaults: class-agnostic, IoU 0.5, LUNA16's seven rates). Default False.
    """

    def __init__(self, json_file: str, *, category_ids: Sequence[int],
                 class_names: Optional[Sequence[str]] = None, output_dir: Optional[str] = None,
                 backend: str = "pycocotools", froc: bool = False):
        self._coco_cls, self._eval_cls = _load_backend(backend)
        self._backend = backend
        self._json_file = json_file
        self._output_dir = output_dir
        self._froc = froc
        self._category_ids = [int(c) for c in category_ids]
        if not self._category_ids or len(set(self._category_ids)) != len(self._category_ids):
            raise UserError(f"category_ids must be non-empty and unique; got {list(category_ids)}")
        if class_names is None:
            class_names = [str(c) for c in self._category_ids]
        if len(class_names) != len(self._category_ids):
            raise UserError(
                f"class_names has {len(class_names)} names but category_ids has "
                f"{len(self._category_ids)} ids; give one name per id"
            )
        self._names = dict(zip(self._category_ids, class_names))

        with _stdout_to_debug_log():
            self._coco_gt = self._coco_cls(json_file)
        missing = sorted(set(self._category_ids) - set(self._coco_gt.getCatIds()))
        if missing:
            raise UserError(
                f"{json_file}: category_ids {missing} are not categories of this file; "
                f"it has {sorted(self._coco_gt.getCatIds())}"
            )
        self.reset()

    def reset(self) -> None:
        """Forget every processed image."""
        # image id -> (its COCO result entries, whether masks were given)
        self._predictions: Dict[int, Tuple[List[dict], bool]] = {}

    def process(self, image_ids: Sequence[int], outputs: Sequence[dict]) -> None:
        """Store the COCO results of a batch: ``outputs[i]`` is the eval output of ``image_ids[i]``.

        See ``output_to_coco_results`` for the keys of an output. Masks are kept as RLE.
        """
        if len(image_ids) != len(outputs):
            raise UserError(f"got {len(image_ids)} image_ids but {len(outputs)} outputs")
        for image_id, output in zip(image_ids, outputs):
            image_id = int(image_id)
            if image_id not in self._coco_gt.imgs:
                raise UserError(f"{self._json_file}: has no image with id {image_id}")
            if "masks" in output:
                image = self._coco_gt.imgs[image_id]
                size = tuple(output["masks"].shape[-2:])
                if size != (image["height"], image["width"]):
                    raise UserError(
                        f"image {image_id}: masks are {size[0]}x{size[1]} (HxW) but "
                        f"{self._json_file} says the image is {image['height']}x{image['width']}; "
                        f"paste masks at the original image size"
                    )
            results = output_to_coco_results(image_id, output, self._category_ids)
            self._predictions[image_id] = (results, "masks" in output)

    def evaluate(self) -> dict:
        """Gather every process's results; on the main process, score them.

        Returns:
            On the main process ``{"bbox": {...}, "segm": {...}}`` ("segm" only when masks were
            given), each with AP, AP50, AP75, APs, APm, APl and ``AP-<class name>`` in percent
            (NaN where COCOeval has nothing to score, e.g. no ground truth of that size). With no
            detections at all every metric is 0.0. With ``froc=True`` also ``"froc"``, what
            ``froc.froc`` returns. Other processes return ``{}``.
        """
        gathered = comm.all_gather(self._predictions)
        if not comm.is_main_process():
            return {}
        predictions: Dict[int, Tuple[List[dict], bool]] = {}
        for part in gathered:
            predictions.update(part)

        with_masks = {has_masks for _, has_masks in predictions.values()}
        if len(with_masks) > 1:
            raise UserError("masks were given for some images but not for others; give them for all or none")
        tasks = ["bbox", "segm"] if with_masks == {True} else ["bbox"]
        image_ids = sorted(predictions)
        coco_results = [r for image_id in image_ids for r in predictions[image_id][0]]
        if not predictions:
            logger.warning("COCOEvaluator: no image was processed; every metric is 0")
        elif not coco_results:
            logger.warning("COCOEvaluator: %d images processed but no detections; every metric is 0",
                           len(image_ids))

        metrics = {}
        for task in tasks:
            metrics[task] = self._evaluate_task(task, coco_results, image_ids)
        if self._froc:
            metrics["froc"] = self._evaluate_froc(coco_results, image_ids)
        if self._output_dir:
            folder = os.path.join(self._output_dir, "inference")
            for name, data in (("coco_instances_results.json", coco_results), ("results.json", metrics)):
                atomic_write_json(os.path.join(folder, name), data)
                logger.info("wrote %s", os.path.join(folder, name))
        return metrics

    def _evaluate_task(self, task: str, coco_results: List[dict], image_ids: List[int]) -> dict:
        names = [self._names[c] for c in sorted(self._category_ids)]
        if not coco_results:
            # COCO.loadRes cannot take an empty list
            metrics = {m: 0.0 for m in _METRICS}
            metrics.update({f"AP-{name}": 0.0 for name in names})
            self._log(task, metrics, names)
            return metrics

        with _stdout_to_debug_log():
            coco_dt = _load_results(self._coco_gt, coco_results, task)
            coco_eval = self._make_coco_eval(coco_dt, task)
            coco_eval.params.imgIds = image_ids
            coco_eval.params.catIds = sorted(self._category_ids)
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()

        metrics = {m: _percent(coco_eval.stats[i]) for i, m in enumerate(_METRICS)}
        # precision is (IoU thresholds, recall points, categories, area ranges, max dets);
        # area range 0 is "all", max dets -1 is 100
        precisions = coco_eval.eval["precision"]
        for k, name in enumerate(names):
            precision = precisions[:, :, k, 0, -1]
            precision = precision[precision > -1]
            metrics[f"AP-{name}"] = float(np.mean(precision)) * 100 if precision.size else float("nan")
        self._log(task, metrics, names)
        return metrics

    def _evaluate_froc(self, coco_results: List[dict], image_ids: List[int]) -> dict:
        categories = set(self._category_ids)
        # imgToAnns, not getAnnIds: getAnnIds(imgIds=[]) means every image
        ground_truth = [ann for image_id in image_ids
                        for ann in self._coco_gt.imgToAnns.get(image_id, [])
                        if ann["category_id"] in categories]
        metrics = compute_froc(coco_results, ground_truth, image_ids)
        logger.info("froc sensitivity at FPs/image: %s | mean %.3f (%d lesions in %d images)",
                    " | ".join(f"{r:g} {metrics[f'sensitivity@{r:g}']:.3f}"
                               for r in FROC_FPS_PER_IMAGE),
                    metrics["mean_sensitivity"], metrics["lesions"], metrics["images_with_lesions"])
        return metrics

    def _make_coco_eval(self, coco_dt: Any, task: str) -> Any:
        if self._backend == "faster_coco_eval":
            # Its mask-IoU threads run Python per (image, category) and wait on each other for the
            # interpreter: 0.92x the time without them on 2 cores (benchmark-eval).
            return self._eval_cls(self._coco_gt, coco_dt, task, print_function=logger.debug, rle_iou_max_workers=1)
        return self._eval_cls(self._coco_gt, coco_dt, task)

    def _log(self, task: str, metrics: dict, names: List[str]) -> None:
        logger.info("%s: %s", task, " | ".join(f"{m} {metrics[m]:.3f}" for m in _METRICS))
        # three (category, AP) pairs per row, as detectron2 prints them
        pairs = [(name, f"{metrics[f'AP-{name}']:.3f}") for name in names]
        per_row = 3
        rows = [sum(pairs[i:i + per_row], ()) for i in range(0, len(pairs), per_row)]
        columns = min(per_row, len(pairs))
        table = tabulate(rows, headers=["category", "AP"] * columns, tablefmt="pipe",
                         numalign="left", stralign="center", disable_numparse=True)
        logger.info("%s AP per category:\n%s", task, table)


def _load_backend(backend: str) -> Tuple[Any, Any]:
    """The (COCO, COCOeval) classes of ``backend``."""
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    if backend == "faster_coco_eval":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError as e:
            raise ImportError(
                "COCOEvaluator(backend='faster_coco_eval') needs the faster-coco-eval package: "
                "pip install faster-coco-eval"
            ) from e
        return COCO, COCOeval_faster
    raise UserError(f"COCOEvaluator: backend={backend!r} is unknown; use one of {', '.join(BACKENDS)}")


def _percent(stat: float) -> float:
    # COCOeval reports -1 where nothing could be scored (no ground truth in that area range)
    return float(stat) * 100 if stat >= 0 else float("nan")


class _DebugLogWriter(io.TextIOBase):
    """A text stream that sends each complete line to ``logger.debug``."""

    def __init__(self):
        self._pending = ""

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            if line.strip():
                logger.debug(line)
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            logger.debug(self._pending)
        self._pending = ""


def _load_results(coco_gt: Any, coco_results: List[dict], task: str) -> Any:
    """What ``coco_gt.loadRes`` makes of the results of one task, on new dicts (``coco_results``
    stay as they are), with every mask's area and box computed in one call: loadRes makes two
    calls per detection, a fifth of faster-coco-eval's time. The fields are loadRes's, so are
    the numbers (tested against it): a segm detection takes its area and box from its mask
    (with a box, COCOeval would take the box's area), a bbox detection its area from the box
    and a rectangle polygon as its segmentation.
    """
    if task == "segm":
        # faster-coco-eval's mask API: pycocotools' overflows on lists of over 255 masks
        from faster_coco_eval.core import mask as list_mask_util

        masks = [r["segmentation"] for r in coco_results]
        areas, boxes = list_mask_util.area(masks), list_mask_util.toBbox(masks)
        annotations = [dict(r, area=area, bbox=box) for r, area, box in zip(coco_results, areas, boxes)]
    else:
        annotations = []
        for r in coco_results:
            x, y, w, h = r["bbox"]
            annotation = {k: v for k, v in r.items() if k != "segmentation"}
            annotation.update(segmentation=[[x, y, x, y + h, x + w, y + h, x + w, y]], area=w * h)
            annotations.append(annotation)
    for index, annotation in enumerate(annotations):
        annotation.update(id=index + 1, iscrowd=0)
    coco_dt = type(coco_gt)()
    coco_dt.dataset = dict(
        images=list(coco_gt.dataset["images"]),
        categories=copy.deepcopy(coco_gt.dataset["categories"]),
        annotations=annotations,
    )
    coco_dt.createIndex()
    return coco_dt


@contextlib.contextmanager
def _stdout_to_debug_log() -> Iterator[None]:
    # pycocotools prints its progress and summary table; training logs stay readable without it
    writer = _DebugLogWriter()
    try:
        with contextlib.redirect_stdout(writer):
            yield
    finally:
        writer.flush()
