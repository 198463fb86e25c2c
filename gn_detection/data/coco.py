"""Load COCO-format instance annotations into per-image records, checked and cleaned once.

Every problem the model would otherwise meet later, deep inside torch, is handled here: malformed
JSON and unknown ids raise errors naming the file and the id; empty boxes and segmentations are
dropped with one warning per file.
"""
import contextlib
import gc
import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..utils.errors import UserError
from .json_file import read_json
from .segmentation import check_rle, is_valid_polygon

__all__ = ["CocoInstances", "load_coco_json"]

logger = logging.getLogger(__name__)

_IDS_SHOWN = 5  # how many ids a message lists before "..."



@dataclass
class CocoInstances:
    """A loaded COCO instance dataset.

    Attributes:
        records: one dict per image: ``file_name`` (joined with the image root), ``image_id``,
            ``height``, ``width`` and ``annotations``, a list of dicts with ``id``, ``bbox``
            (absolute XYXY floats, clipped to the image), ``category_id`` (contiguous, 1..K),
            ``segmentation`` (polygons, or the RLE dict as in the JSON) and ``iscrowd`` (0 or 1).
        thing_classes: category names in contiguous order; label k is ``thing_classes[k - 1]``.
        category_ids: COCO category id of contiguous label k is ``category_ids[k - 1]``.
    """

    records: List[dict]
    thing_classes: List[str]
    category_ids: List[int]


def load_coco_json(json_file: str, image_root: str, *, filter_empty: bool = True) -> CocoInstances:
    """Read a COCO instances JSON into records the data pipeline can use without further checks.

    Categories sorted by id get contiguous labels 1..K (0 is the background). Boxes partly outside
    their image are clipped. Polygons with fewer than 3 points are removed. Dropped, with one
    warning per file: annotations whose box is empty before or after clipping, and those left with
    no segmentation (none given, or no polygon left). Crowd annotations are kept (training skips
    them, evaluation needs them), unless their segmentation is empty: evaluation could not
    rasterize it.

    Args:
        json_file: path of the COCO JSON.
        image_root: folder the images' ``file_name`` entries are relative to.
        filter_empty: remove images left with no annotation (for training); keep them for
            evaluation.

    Returns:
        CocoInstances with one record per kept image, in the JSON's order.

    Raises:
        FileNotFoundError: ``json_file`` does not exist.
        ValueError: the file is not valid JSON or not COCO instances, or an annotation names an
            unknown category or image, or an RLE's size is not its image's size. The message names
            the file, the id and what is wrong.
    """
    with _cyclic_gc_paused():
        return _load_coco_json(json_file, image_root, filter_empty)


def _load_coco_json(json_file: str, image_root: str, filter_empty: bool) -> CocoInstances:
    data = _read_json(json_file)
    images, annotations, categories = _check_top_level(data, json_file)
    del data  # the annotations are freed one by one as they are read: COCO train's JSON is ~1.5 GB in Python

    category_ids, thing_classes = _read_categories(categories, json_file)
    contiguous = {cat_id: label for label, cat_id in enumerate(category_ids, start=1)}
    records = _read_images(images, image_root, json_file)

    drops = _Drops()
    num_annotations = len(annotations)
    for index, ann in enumerate(annotations):
        annotations[index] = None
        kept = _read_annotation(ann, records, contiguous, json_file, drops)
        if kept is not None:
            records[ann["image_id"]]["annotations"].append(kept)
    drops.log(json_file, num_annotations)

    kept = list(records.values())
    if filter_empty:
        kept = [r for r in kept if r["annotations"]]
        if len(kept) < len(records):
            logger.info(
                "%s: removed %d of %d images that have no annotation left",
                json_file, len(records) - len(kept), len(records),
            )
    return CocoInstances(records=kept, thing_classes=thing_classes, category_ids=category_ids)


def _read_annotation(ann: Any, records: Dict[int, dict], contiguous: Dict[int, int], json_file: str,
                     drops: "_Drops") -> Optional[dict]:
    """The annotation as a record holds it, or None when it is dropped (and ``drops`` says why).

    COCO train has 860k annotations: the common case is checked with a few lookups and type tests,
    and anything unusual goes to ``_explain_bad_annotation``, which names the problem.
    """
    try:
        ann_id, image_id, category_id, bbox = ann["id"], ann["image_id"], ann["category_id"], ann["bbox"]
        record, label = records[image_id], contiguous[category_id]
        x, y, w, h = bbox
        total = x + y + w + h  # a TypeError for a non-number; inf or nan for a non-finite one
    except (KeyError, TypeError, ValueError):
        _explain_bad_annotation(ann, records, contiguous, json_file)
        raise
    iscrowd = ann.get("iscrowd", 0)
    if (
        type(ann_id) is not int or type(image_id) is not int or type(category_id) is not int
        or iscrowd not in (0, 1) or type(bbox) is not list or total - total != 0
        or bool in (type(x), type(y), type(w), type(h))
    ):
        _explain_bad_annotation(ann, records, contiguous, json_file)
    box = _clip_xywh(x, y, w, h, record["height"], record["width"])
    if box is None:
        drops.add("an empty box (before or after clipping to the image)", ann_id)
        return None
    segmentation = _clean_segmentation(ann.get("segmentation"), record, ann_id, json_file, drops)
    if segmentation is None:
        drops.add("no valid segmentation", ann_id)
        return None
    return {"id": ann_id, "bbox": box, "category_id": label, "segmentation": segmentation, "iscrowd": int(iscrowd)}


def _explain_bad_annotation(ann: Any, records: Dict[int, dict], contiguous: Dict[int, int], json_file: str) -> None:
    """Raise the error that says what is wrong with an annotation the fast path refused."""
    _check_fields(ann, ("id", "image_id", "category_id", "bbox"), "annotation", json_file)
    where = f"annotation id={ann['id']!r}"
    for key in ("id", "image_id", "category_id"):
        _check_int(ann[key], key, where, json_file)
    if ann["category_id"] not in contiguous:
        raise UserError(
            f"{json_file}: {where}: category_id {ann['category_id']} is not among the categories; "
            f"known category ids: {', '.join(map(str, contiguous))}"
        )
    if ann["image_id"] not in records:
        raise UserError(
            f"{json_file}: {where}: image_id {ann['image_id']} is not among the {len(records)} images "
            f"(ids {_few(list(records))})"
        )
    if ann.get("iscrowd", 0) not in (0, 1):
        raise UserError(f"{json_file}: {where}: iscrowd must be 0 or 1, got {ann['iscrowd']!r}")
    raise UserError(f"{json_file}: {where}: bbox must be 4 finite numbers [x, y, w, h], got {ann['bbox']!r}")


@contextlib.contextmanager
def _cyclic_gc_paused():
    """Parsing COCO train makes ~3M lists and dicts, none in a cycle; the cyclic collector would
    walk them over and over as they are made (a third of the load time). Paused, then restored."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Drops:
    """Dropped annotations and removed polygons, by reason, for one warning per file."""

    def __init__(self) -> None:
        self.by_reason: Dict[str, List[int]] = {}
        self.polygons: Dict[int, int] = {}  # annotation id -> polygons removed from it

    def add(self, reason: str, ann_id: int) -> None:
        self.by_reason.setdefault(reason, []).append(ann_id)

    def log(self, json_file: str, num_annotations: int) -> None:
        parts = [f"{len(ids)} with {reason} (ids {_few(ids)})" for reason, ids in self.by_reason.items()]
        dropped = sum(len(ids) for ids in self.by_reason.values())
        message = f"dropped {dropped} of {num_annotations} annotations: {'; '.join(parts)}" if parts else ""
        if self.polygons:
            removed = (
                f"removed {sum(self.polygons.values())} polygons with fewer than 3 points or an odd number of "
                f"coordinates (annotation ids {_few(list(self.polygons))})"
            )
            message = f"{message}; {removed}" if message else removed
        if message:
            logger.warning("%s: %s", json_file, message)


def _read_categories(categories: List[dict], json_file: str) -> Tuple[List[int], List[str]]:
    """The category ids in ascending order, and their names in that order."""
    for cat in categories:
        _check_fields(cat, ("id", "name"), "category", json_file)
        _check_int(cat["id"], "id", f"category {cat['id']!r}", json_file)
    category_ids = sorted(cat["id"] for cat in categories)
    _check_unique(category_ids, "category", json_file)
    names = {cat["id"]: str(cat["name"]) for cat in categories}
    return category_ids, [names[i] for i in category_ids]


def _read_images(images: List[dict], image_root: str, json_file: str) -> Dict[int, dict]:
    """image id -> its record, with no annotations yet. As for annotations, the common case is a
    few lookups and type tests, and ``_explain_bad_image`` names any problem."""
    records: Dict[int, dict] = {}
    for img in images:
        try:
            image_id, file_name, height, width = img["id"], img["file_name"], img["height"], img["width"]
        except (KeyError, TypeError):
            _explain_bad_image(img, json_file)
            raise
        if (
            type(image_id) is not int or type(height) is not int or type(width) is not int or height <= 0 or width <= 0
            or type(file_name) is not str or image_id in records
        ):
            _explain_bad_image(img, json_file)
        records[image_id] = {
            "file_name": os.path.join(image_root, file_name),
            "image_id": image_id,
            "height": height,
            "width": width,
            "annotations": [],
        }
    return records


def _explain_bad_image(img: Any, json_file: str) -> None:
    """Raise the error that says what is wrong with an image entry the fast path refused."""
    _check_fields(img, ("id", "file_name", "height", "width"), "image", json_file)
    where = f"image id={img['id']!r}"
    _check_int(img["id"], "id", where, json_file)
    _check_int(img["height"], "height", where, json_file, positive=True)
    _check_int(img["width"], "width", where, json_file, positive=True)
    if not isinstance(img["file_name"], str):
        raise UserError(f"{json_file}: {where}: file_name must be a string, got {img['file_name']!r}")
    raise UserError(f"{json_file}: image id {img['id']} appears more than once in 'images'")


def _read_json(json_file: str) -> Any:
    try:
        return read_json(json_file)
    except FileNotFoundError:
        raise FileNotFoundError(f"{json_file}: no such annotation file") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{json_file}: not valid JSON: {e}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{json_file}: not valid JSON (not UTF-8 text: {e})") from None


def _check_top_level(data: Any, json_file: str):
    if not isinstance(data, dict):
        raise UserError(
            f"{json_file}: not a COCO instances file; expected a JSON object with 'images', 'annotations' "
            f"and 'categories', got a JSON {type(data).__name__}"
        )
    lists = []
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise UserError(f"{json_file}: not a COCO instances file; the key '{key}' is missing")
        if not isinstance(data[key], list):
            raise UserError(f"{json_file}: '{key}' must be a list, got {type(data[key]).__name__}")
        lists.append(data[key])
    return lists


def _check_fields(entry: Any, keys: Sequence[str], kind: str, json_file: str) -> None:
    if not isinstance(entry, dict):
        raise UserError(f"{json_file}: every {kind} must be a JSON object, got {entry!r}")
    missing = [k for k in keys if k not in entry]
    if missing:
        article = "an" if kind[0] in "aeiou" else "a"
        who = f"{kind} id={entry['id']!r}" if "id" in entry else f"{article} {kind} ({_short(entry)})"
        raise UserError(f"{json_file}: {who} has no {', '.join(repr(k) for k in missing)}")


def _check_int(value: Any, key: str, where: str, json_file: str, positive: bool = False) -> None:
    # bool is an int subclass; true/false in an id field is a typo, not an id
    if isinstance(value, bool) or not isinstance(value, int) or (positive and value <= 0):
        kind = "a positive integer" if positive else "an integer"
        raise UserError(f"{json_file}: {where}: {key} must be {kind}, got {value!r}")


def _check_unique(ids: Sequence[int], kind: str, json_file: str) -> None:
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise UserError(f"{json_file}: {kind} ids appear more than once: {_few(repeated)}")


def _clip_xywh(x: float, y: float, w: float, h: float, height: int, width: int) -> Optional[List[float]]:
    """COCO XYWH -> XYXY clipped to the image; None when empty before or after clipping."""
    if w <= 0 or h <= 0:
        return None
    # Conditional expressions, not min/max calls: this runs once per annotation.
    x1, y1, width, height = x + w, y + h, float(width), float(height)
    x0 = 0.0 if x < 0 else width if x > width else float(x)
    x1 = 0.0 if x1 < 0 else width if x1 > width else float(x1)
    y0 = 0.0 if y < 0 else height if y > height else float(y)
    y1 = 0.0 if y1 < 0 else height if y1 > height else float(y1)
    if x1 <= x0 or y1 <= y0:
        return None
    return [x0, y0, x1, y1]


def _clean_segmentation(
    segmentation: Any, record: dict, ann_id: int, json_file: str, drops: _Drops
) -> Optional[list]:
    """Polygons without the degenerate ones, or the RLE as it is; None when nothing usable is left."""
    if not segmentation:  # missing, null, [] or {}
        return None
    if isinstance(segmentation, dict):
        return check_rle(segmentation, record, f"annotation id={ann_id!r}", json_file)
    if type(segmentation) is not list:
        _raise_not_polygons(segmentation, ann_id, json_file)
    all_valid = True
    for polygon in segmentation:
        if type(polygon) is not list:
            _raise_not_polygons(segmentation, ann_id, json_file)
        try:
            total = sum(polygon)
        except TypeError:
            total = math.nan
        if total - total != 0:  # inf or nan: a non-finite coordinate, or a non-number
            raise UserError(
                f"{json_file}: annotation id={ann_id!r}: polygon coordinates must be finite numbers, got {_short(polygon)}"
            )
        all_valid = all_valid and is_valid_polygon(polygon)
    if all_valid:
        return segmentation
    polygons = [p for p in segmentation if is_valid_polygon(p)]
    drops.polygons[ann_id] = len(segmentation) - len(polygons)
    return polygons or None


def _raise_not_polygons(segmentation: Any, ann_id: int, json_file: str) -> None:
    raise UserError(
        f"{json_file}: annotation id={ann_id!r}: segmentation must be a list of polygons (lists of x, y coordinates) "
        f"or an RLE dict, got {_short(segmentation)}"
    )


def _few(ids: Sequence[Any]) -> str:
    shown = ", ".join(str(i) for i in ids[:_IDS_SHOWN])
    return shown + (", ..." if len(ids) > _IDS_SHOWN else "")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
