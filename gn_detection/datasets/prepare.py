"""Build a COCO instances JSON from the layouts medical data usually comes in, checked on the way.

Three layouts are read; in each, the images are the files directly inside ``image_dir`` (not its
subfolders) with an image extension (``IMAGE_EXTENSIONS``) or DICOM (``.dcm``, or ``DICM`` at
byte 128), sorted by file name and numbered 1..N.

* ``prepare_from_masks(..., layout="instances")``: ``mask_dir`` holds one binary PNG per instance,
  named ``<image stem>__<class name>__<k>.png`` (two underscores; ``k`` an integer telling apart
  the instances of one class in one image), e.g. ``case07__lesion__0.png`` for ``case07.dcm``.
  Nonzero pixels (in any colour channel; alpha is ignored) are the instance.
* ``prepare_from_masks(..., layout="label_map")``: ``mask_dir`` holds one single-channel PNG per
  image, named ``<image stem>.png``, whose pixel value v > 0 is class ``class_names[v - 1]``. Each
  4-connected component of each class is one instance (as ``scipy.ndimage.label`` by default: two
  regions of one class touching only at a corner are two instances; regions of one class that
  share an edge are one).
* ``prepare_from_csv``: boxes only, one per row of a CSV with the header
  ``image,x1,y1,x2,y2,label``. The segmentation written is the box itself, as one polygon, so
  Mask R-CNN trains its mask head on box-shaped masks.

Masks become compressed RLE; boxes are tight XYWH in pixel-edge coordinates; area is the pixel
count. Mistakes that would corrupt the dataset (a mask of another size than its image, a file or
row naming an unknown image or class, an impossible box) raise ``ValueError`` naming the file or
line and the values. Everything else worth a look (images without annotations, which are kept;
empty masks, which are skipped; files that are neither images nor masks) goes to the
``PrepareReport``.
"""
import logging
import os
import posixpath
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.errors import UserError
from ..utils.file_io import atomic_write_json
from .prepare_inputs import (
    CSV_COLUMNS,
    IMAGE_EXTENSIONS,
    LISTED,
    MASK_EXTENSION,
    NAME_SEPARATOR,
    ImageFile,
    check_dir,
    check_mask_size,
    close_matches_hint,
    connected_components,
    images_by_stem,
    list_images,
    list_masks,
    lookup_image,
    parse_box,
    parse_instance_name,
    read_binary_mask,
    read_csv,
    read_label_map,
)
from .rendering import mask_annotation

__all__ = [
    "CSV_COLUMNS",
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "PrepareReport",
    "prepare_from_csv",
    "prepare_from_masks",
]

logger = logging.getLogger(__name__)

LAYOUTS = ("instances", "label_map")


@dataclass
class PrepareReport:
    """What a prepare_* call wrote and what it found on the way.

    Attributes:
        output_json: the file written.
        class_names: category names; category id k is ``class_names[k - 1]``.
        num_images: images in the JSON, with or without annotations.
        counts: annotations per class name, every class listed (0 included).
        images_without_annotations: file names (relative to the image folder) of images that got
            no annotation; they are in the JSON all the same, as negatives.
        empty_masks: mask files with no nonzero pixel; skipped.
        ignored_files: files in the image or mask folder that are neither images nor masks (and
            subfolders, which are not searched), as paths.
        exif_rotated_images: images whose EXIF orientation turns or flips them; their size is the
            one read_image gives (after the turn), and masks are taken to be drawn on the turned
            image. Check a few by eye.
        masks_are_boxes: True for CSV input: the segmentations are the boxes.
    """

    output_json: str
    class_names: List[str]
    num_images: int
    counts: Dict[str, int]
    images_without_annotations: List[str] = field(default_factory=list)
    empty_masks: List[str] = field(default_factory=list)
    ignored_files: List[str] = field(default_factory=list)
    exif_rotated_images: List[str] = field(default_factory=list)
    masks_are_boxes: bool = False

    @property
    def num_annotations(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """A readable multi-line account: counts per class, then each list (at most 20 entries)."""
        lines = [
            f"Wrote {self.output_json}: {self.num_images} images, {self.num_annotations} annotations, "
            f"{len(self.class_names)} classes."
        ]
        id_width = max(len("id"), len(str(len(self.class_names))))
        name_width = max([len("class")] + [len(n) for n in self.class_names])
        lines.append(f"  {'id':>{id_width}}  {'class':<{name_width}}  instances")
        for k, name in enumerate(self.class_names, start=1):
            lines.append(f"  {k:>{id_width}}  {name:<{name_width}}  {self.counts[name]:>9}")
        unused = [n for n in self.class_names if self.counts[n] == 0]
        if unused:
            lines.append(f"Classes with no instance: {', '.join(unused)}")
        if self.masks_are_boxes:
            lines.append("Segmentations are the boxes (CSV input): the mask head will learn box-shaped masks.")
        sections = (
            ("Images without annotations (kept, as negatives)", self.images_without_annotations),
            ("Empty masks (skipped)", self.empty_masks),
            ("Files ignored (neither images nor masks; subfolders are not searched)", self.ignored_files),
            ("Images turned by their EXIF orientation (masks taken as drawn on the turned image)",
             self.exif_rotated_images),
        )
        for title, entries in sections:
            if entries:
                lines.append(f"{title}: {len(entries)}")
                lines.extend(f"  {e}" for e in entries[:LISTED])
                if len(entries) > LISTED:
                    lines.append(f"  ... and {len(entries) - LISTED} more")
        return "\n".join(lines)


def prepare_from_masks(
    image_dir: str,
    mask_dir: str,
    output_json: str,
    *,
    class_names: Sequence[str],
    layout: str = "instances",
) -> PrepareReport:
    """Write a COCO instances JSON for the images in ``image_dir`` and the PNG masks in ``mask_dir``.

    Args:
        image_dir: folder of the images (PNG, JPEG, TIFF, BMP or DICOM); ``file_name`` in the
            JSON is relative to it.
        mask_dir: folder of the masks, apart from the images. With ``layout="instances"``, one
            binary PNG per instance named ``<image stem>__<class name>__<k>.png``; with
            ``layout="label_map"``, one PNG per image named ``<image stem>.png`` whose value v > 0
            is ``class_names[v - 1]``. Images without a mask file have no annotation.
        output_json: the JSON to write (atomically: a temporary file, then a rename).
        class_names: category names, ids 1..K in this order. With the instances layout they may
            not contain ``"__"``.
        layout: ``"instances"`` or ``"label_map"``.

    Returns:
        PrepareReport of the counts and of everything skipped or worth a look.

    Raises:
        ValueError: a mask whose size is not its image's (naming both sizes); a mask name that is
            not the pattern, or names an unknown image or class (listing close matches or the known
            classes); a label map with a value above K or with colour channels; two images with one
            stem; no mask file; bad ``class_names`` or ``layout``; an unreadable image or mask.
        FileNotFoundError: ``image_dir`` or ``mask_dir`` is not a folder.
    """
    if layout not in LAYOUTS:
        raise UserError(f"prepare_from_masks: unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    classes = _check_class_names(class_names, forbid_separator=layout == "instances")
    check_dir(mask_dir, "mask")
    if os.path.realpath(mask_dir) == os.path.realpath(image_dir):
        raise UserError(
            f"{mask_dir}: the masks must be in a folder of their own; here they would be taken as images too"
        )
    images, ignored = list_images(image_dir)
    by_stem = images_by_stem(images, image_dir)
    mask_names, ignored_masks = list_masks(mask_dir)
    report = PrepareReport(
        output_json=output_json,
        class_names=classes,
        num_images=len(images),
        counts={},
        ignored_files=ignored + ignored_masks,
    )

    annotations: Dict[int, List[dict]] = {im.image_id: [] for im in images}
    if layout == "instances":
        parsed = [(parse_instance_name(n, mask_dir, by_stem, classes), n) for n in mask_names]
        # instances in image order, then class order, then by k as a number (2 before 10)
        parsed.sort(key=lambda p: (p[0][0].image_id, p[0][1], p[0][2], p[1]))
        for (image, category_id, _), name in parsed:
            path = os.path.join(mask_dir, name)
            mask = read_binary_mask(path)
            check_mask_size(mask, image, path, image_dir)
            if not mask.any():
                report.empty_masks.append(path)
                continue
            annotations[image.image_id].append(dict(mask_annotation(mask, category_id), image_id=image.image_id, iscrowd=0))
    else:
        seen: Dict[int, str] = {}
        for name in mask_names:
            path = os.path.join(mask_dir, name)
            image = lookup_image(name[: -len(MASK_EXTENSION)], by_stem, path)
            if image.image_id in seen:
                raise UserError(f"{path}: a second label map for {image.file_name}, after {seen[image.image_id]}")
            seen[image.image_id] = path
            label_map = read_label_map(path, classes)
            check_mask_size(label_map, image, path, image_dir)
            for value in np.unique(label_map[label_map > 0]).tolist():
                components, count = connected_components(label_map == value)
                for c in range(1, count + 1):
                    annotations[image.image_id].append(dict(mask_annotation(components == c, value), image_id=image.image_id, iscrowd=0))

    report.exif_rotated_images = [
        im.file_name for im in images if im.exif_rotated and annotations[im.image_id]
    ]
    if report.empty_masks:
        logger.warning("%s: skipped %d empty masks (no nonzero pixel)", mask_dir, len(report.empty_masks))
    return _finish(images, annotations, classes, output_json, report)


def prepare_from_csv(
    image_dir: str,
    csv_file: str,
    output_json: str,
    *,
    class_names: Optional[Sequence[str]] = None,
) -> PrepareReport:
    """Write a COCO instances JSON for the images in ``image_dir`` and the boxes in ``csv_file``.

    The CSV's header is ``image,x1,y1,x2,y2,label`` (more columns are ignored): ``image`` is a file
    name relative to ``image_dir``; x1, y1, x2, y2 are the box's corners in pixels, pixel-edge
    coordinates (a box covering columns 2..5 has x1 = 2, x2 = 6); ``label`` a class name. A row
    with only ``image`` filled in states that the image has no box. Images in ``image_dir`` that no
    row names are kept, without annotations.

    There are no masks: each annotation's segmentation is its box as one polygon
    ``[[x1, y1, x2, y1, x2, y2, x1, y2]]``, so Mask R-CNN still gets a (box-shaped) mask target.

    Args:
        image_dir: folder of the images; ``file_name`` in the JSON is relative to it.
        csv_file: the boxes, UTF-8 (a byte-order mark is allowed).
        output_json: the JSON to write (atomically: a temporary file, then a rename).
        class_names: category names, ids 1..K in this order; default: the sorted unique labels.

    Returns:
        PrepareReport of the counts and of the images without boxes.

    Raises:
        ValueError: a missing column; a row naming an image not in ``image_dir`` (with close
            matches) or an unknown label (with the known classes); a coordinate that is not a
            finite number, negative, x2 <= x1, y2 <= y1, or beyond the image (naming the line, the
            values and the image's size); no row.
        FileNotFoundError: ``image_dir`` or ``csv_file`` does not exist.
    """
    if class_names is not None:
        class_names = _check_class_names(class_names, forbid_separator=False)
    images, ignored = list_images(image_dir)
    by_name = {im.file_name: im for im in images}
    rows = read_csv(csv_file)
    if not rows:
        raise UserError(f"{csv_file}: no rows after the header {','.join(CSV_COLUMNS)}")

    boxes: List[Tuple[int, ImageFile, List[float], str]] = []  # (line, image, [x1, y1, x2, y2], label)
    for line, row in rows:
        name = row["image"]
        if not name:
            raise UserError(f"{csv_file}: line {line}: the 'image' column is empty")
        image = by_name.get(posixpath.normpath(name.replace("\\", "/")))
        if image is None:
            raise UserError(
                f"{csv_file}: line {line}: image {name!r} is not among the {len(images)} images in {image_dir}"
                f"{close_matches_hint(name, list(by_name))}"
            )
        if not any(row[c] for c in CSV_COLUMNS[1:]):
            continue  # an image stated to have no box
        boxes.append((line, image, parse_box(row, line, image, csv_file), row["label"]))

    labels = [label for _, _, _, label in boxes]
    if class_names is None:
        class_names = sorted(set(labels))
        if not class_names:
            raise UserError(f"{csv_file}: no row has a box, so there are no classes; pass class_names")
    category_ids = {name: k for k, name in enumerate(class_names, start=1)}

    annotations: Dict[int, List[dict]] = {im.image_id: [] for im in images}
    for line, image, (x1, y1, x2, y2), label in boxes:
        if label not in category_ids:
            raise UserError(
                f"{csv_file}: line {line}: label {label!r} is not a class; known classes: {', '.join(class_names)}"
                f"{close_matches_hint(label, list(class_names))}"
            )
        annotations[image.image_id].append(
            {
                "image_id": image.image_id,
                "category_id": category_ids[label],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]],
                "iscrowd": 0,
            }
        )

    report = PrepareReport(
        output_json=output_json,
        class_names=list(class_names),
        num_images=len(images),
        counts={},
        ignored_files=ignored,
        masks_are_boxes=True,
    )
    return _finish(images, annotations, list(class_names), output_json, report)


def _finish(
    images: List[ImageFile],
    annotations: Dict[int, List[dict]],
    classes: List[str],
    output_json: str,
    report: PrepareReport,
) -> PrepareReport:
    """Number the annotations 1..M in image order, count them, write the JSON."""
    ordered = []
    report.counts = {name: 0 for name in classes}
    for im in images:
        if not annotations[im.image_id]:
            report.images_without_annotations.append(im.file_name)
        for ann in annotations[im.image_id]:
            ordered.append({"id": len(ordered) + 1, **ann})
            report.counts[classes[ann["category_id"] - 1]] += 1
    data = {
        "images": [
            {"id": im.image_id, "file_name": im.file_name, "height": im.height, "width": im.width} for im in images
        ],
        "annotations": ordered,
        "categories": [{"id": k, "name": name} for k, name in enumerate(classes, start=1)],
    }
    atomic_write_json(output_json, data)
    logger.info(
        "%s: %d images (%d without annotations), %d annotations",
        output_json, len(images), len(report.images_without_annotations), len(ordered),
    )
    return report


def _check_class_names(class_names: Sequence[str], *, forbid_separator: bool) -> List[str]:
    if isinstance(class_names, str):
        raise TypeError(f"class_names must be a list of names, got the string {class_names!r}")
    names = list(class_names)
    if not names:
        raise UserError("class_names is empty; give at least one class")
    for name in names:
        if not isinstance(name, str) or not name:
            raise UserError(f"class_names must be non-empty strings, got {name!r} in {names}")
        if forbid_separator and (NAME_SEPARATOR in name or "/" in name or "\\" in name):
            raise UserError(
                f"class name {name!r} cannot appear in a mask file name <image stem>__<class name>__<k>.png; "
                f"use no '__' and no slash"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"class_names repeats {', '.join(repeated)}: {names}")
    return names


