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
import csv
import difflib
import logging
import math
import os
import posixpath
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from ..utils.file_io import atomic_write_json

__all__ = [
    "CSV_COLUMNS",
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "PrepareReport",
    "prepare_from_csv",
    "prepare_from_masks",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
LAYOUTS = ("instances", "label_map")
CSV_COLUMNS = ("image", "x1", "y1", "x2", "y2", "label")

_DICOM_EXTENSION = ".dcm"
# A DICOM file (Part 10) starts with a 128-byte preamble followed by the magic "DICM"; files
# exported without the .dcm extension are recognised by it.
_DICOM_MAGIC_OFFSET = 128
_DICOM_MAGIC = b"DICM"
_MASK_EXTENSION = ".png"
_NAME_SEPARATOR = "__"  # between image stem, class name and instance index in a mask's name
_EXIF_ORIENTATION = 0x0112
# EXIF orientations 5-8 include a 90-degree turn: read_image (which applies them) gives W x H.
_EXIF_TRANSPOSED = (5, 6, 7, 8)
_LISTED = 20  # entries a summary list shows before "... and N more"
_CLOSE_MATCHES = 3


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
                lines.extend(f"  {e}" for e in entries[:_LISTED])
                if len(entries) > _LISTED:
                    lines.append(f"  ... and {len(entries) - _LISTED} more")
        return "\n".join(lines)


@dataclass
class _ImageFile:
    image_id: int
    file_name: str  # relative to the image folder
    height: int
    width: int
    exif_rotated: bool


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
        ImportError: a DICOM image and no pydicom.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"prepare_from_masks: unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    classes = _check_class_names(class_names, forbid_separator=layout == "instances")
    _check_dir(mask_dir, "mask")
    if os.path.realpath(mask_dir) == os.path.realpath(image_dir):
        raise ValueError(
            f"{mask_dir}: the masks must be in a folder of their own; here they would be taken as images too"
        )
    images, ignored = _list_images(image_dir)
    by_stem = _images_by_stem(images, image_dir)
    mask_names, ignored_masks = _list_masks(mask_dir)
    report = PrepareReport(
        output_json=output_json,
        class_names=classes,
        num_images=len(images),
        counts={},
        ignored_files=ignored + ignored_masks,
    )

    annotations: Dict[int, List[dict]] = {im.image_id: [] for im in images}
    if layout == "instances":
        parsed = [(_parse_instance_name(n, mask_dir, by_stem, classes), n) for n in mask_names]
        # instances in image order, then class order, then by k as a number (2 before 10)
        parsed.sort(key=lambda p: (p[0][0].image_id, p[0][1], p[0][2], p[1]))
        for (image, category_id, _), name in parsed:
            path = os.path.join(mask_dir, name)
            mask = _read_binary_mask(path)
            _check_mask_size(mask, image, path, image_dir)
            if not mask.any():
                report.empty_masks.append(path)
                continue
            annotations[image.image_id].append(_mask_annotation(mask, image.image_id, category_id))
    else:
        seen: Dict[int, str] = {}
        for name in mask_names:
            path = os.path.join(mask_dir, name)
            image = _lookup_image(name[: -len(_MASK_EXTENSION)], by_stem, path)
            if image.image_id in seen:
                raise ValueError(f"{path}: a second label map for {image.file_name}, after {seen[image.image_id]}")
            seen[image.image_id] = path
            label_map = _read_label_map(path, classes)
            _check_mask_size(label_map, image, path, image_dir)
            for value in np.unique(label_map[label_map > 0]).tolist():
                components, count = _connected_components(label_map == value)
                for c in range(1, count + 1):
                    annotations[image.image_id].append(_mask_annotation(components == c, image.image_id, value))

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
        ImportError: a DICOM image and no pydicom.
    """
    if class_names is not None:
        class_names = _check_class_names(class_names, forbid_separator=False)
    images, ignored = _list_images(image_dir)
    by_name = {im.file_name: im for im in images}
    rows = _read_csv(csv_file)
    if not rows:
        raise ValueError(f"{csv_file}: no rows after the header {','.join(CSV_COLUMNS)}")

    boxes: List[Tuple[int, _ImageFile, List[float], str]] = []  # (line, image, [x1, y1, x2, y2], label)
    for line, row in rows:
        name = row["image"]
        if not name:
            raise ValueError(f"{csv_file}: line {line}: the 'image' column is empty")
        image = by_name.get(posixpath.normpath(name.replace("\\", "/")))
        if image is None:
            raise ValueError(
                f"{csv_file}: line {line}: image {name!r} is not among the {len(images)} images in {image_dir}"
                f"{_close_matches_hint(name, list(by_name))}"
            )
        if not any(row[c] for c in CSV_COLUMNS[1:]):
            continue  # an image stated to have no box
        boxes.append((line, image, _parse_box(row, line, image, csv_file), row["label"]))

    labels = [label for _, _, _, label in boxes]
    if class_names is None:
        class_names = sorted(set(labels))
        if not class_names:
            raise ValueError(f"{csv_file}: no row has a box, so there are no classes; pass class_names")
    category_ids = {name: k for k, name in enumerate(class_names, start=1)}

    annotations: Dict[int, List[dict]] = {im.image_id: [] for im in images}
    for line, image, (x1, y1, x2, y2), label in boxes:
        if label not in category_ids:
            raise ValueError(
                f"{csv_file}: line {line}: label {label!r} is not a class; known classes: {', '.join(class_names)}"
                f"{_close_matches_hint(label, list(class_names))}"
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
    images: List[_ImageFile],
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



def _check_dir(path: str, kind: str) -> None:
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such {kind} folder")


def _list_images(image_dir: str) -> Tuple[List[_ImageFile], List[str]]:
    """The images directly in ``image_dir``, sorted by name, with ids 1..N; and the other entries."""
    _check_dir(image_dir, "image")
    images, ignored = [], []
    for name in sorted(os.listdir(image_dir)):
        path = os.path.join(image_dir, name)
        if os.path.isdir(path):
            ignored.append(path + os.sep)
            continue
        ext = os.path.splitext(name)[1].lower()
        if ext in IMAGE_EXTENSIONS:
            height, width, rotated = _image_size(path)
        elif ext == _DICOM_EXTENSION or _has_dicom_magic(path):
            height, width = _dicom_size(path)
            rotated = False
        else:
            ignored.append(path)
            continue
        images.append(_ImageFile(len(images) + 1, name, height, width, rotated))
    if not images:
        raise ValueError(
            f"{image_dir}: no image in this folder (extensions {', '.join(IMAGE_EXTENSIONS)}, or DICOM); "
            f"subfolders are not searched"
        )
    return images, ignored


def _image_size(path: str) -> Tuple[int, int, bool]:
    """(height, width, turned by EXIF) as read_image will see it; reads the header only."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: cannot be read as an image ({e})") from e
    if orientation in _EXIF_TRANSPOSED:
        height, width = width, height
    return height, width, orientation not in (1, None)


def _has_dicom_magic(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(_DICOM_MAGIC_OFFSET)
        return f.read(len(_DICOM_MAGIC)) == _DICOM_MAGIC


def _dicom_size(path: str) -> Tuple[int, int]:
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:
        raise ImportError(f"{path} is a DICOM file; reading it needs pydicom: pip install pydicom") from None
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: cannot be read as DICOM ({e})") from e
    # Rows x Columns is the size of each frame of a multi-frame file; read_image reads one frame.
    rows, columns = ds.get("Rows"), ds.get("Columns")
    if rows is None or columns is None:
        raise ValueError(f"{path}: a DICOM file without Rows/Columns (no image in it?)")
    return int(rows), int(columns)


def _images_by_stem(images: List[_ImageFile], image_dir: str) -> Dict[str, _ImageFile]:
    by_stem: Dict[str, _ImageFile] = {}
    for im in images:
        stem = os.path.splitext(im.file_name)[0]
        if stem in by_stem:
            raise ValueError(
                f"{image_dir}: {by_stem[stem].file_name} and {im.file_name} have the same stem {stem!r}, "
                f"so a mask name cannot tell which one it belongs to; rename one"
            )
        by_stem[stem] = im
    return by_stem


def _lookup_image(stem: str, by_stem: Dict[str, _ImageFile], mask_path: str) -> _ImageFile:
    if stem not in by_stem:
        raise ValueError(
            f"{mask_path}: names the image {stem!r}, which is not among the {len(by_stem)} images"
            f"{_close_matches_hint(stem, list(by_stem))}"
        )
    return by_stem[stem]



def _list_masks(mask_dir: str) -> Tuple[List[str], List[str]]:
    names, ignored = [], []
    for name in sorted(os.listdir(mask_dir)):
        path = os.path.join(mask_dir, name)
        if os.path.isdir(path):
            ignored.append(path + os.sep)
        elif name.lower().endswith(_MASK_EXTENSION):
            names.append(name)
        else:
            ignored.append(path)
    if not names:
        raise ValueError(f"{mask_dir}: no {_MASK_EXTENSION} mask in this folder")
    return names, ignored


def _parse_instance_name(
    name: str, mask_dir: str, by_stem: Dict[str, _ImageFile], classes: List[str]
) -> Tuple[_ImageFile, int, int]:
    """``<image stem>__<class name>__<k>.png`` -> (image, category id, k)."""
    path = os.path.join(mask_dir, name)
    # split from the right: image stems may contain "__", class names may not
    parts = name[: -len(_MASK_EXTENSION)].rsplit(_NAME_SEPARATOR, 2)
    if len(parts) != 3 or not parts[0] or not parts[2].isdigit():
        raise ValueError(
            f"{path}: an instance mask must be named <image stem>__<class name>__<k>.png "
            f"(k an integer), e.g. case07__{classes[0]}__0.png"
        )
    stem, class_name, k = parts
    image = _lookup_image(stem, by_stem, path)
    if class_name not in classes:
        raise ValueError(
            f"{path}: names the class {class_name!r}, which is not in class_names; "
            f"known classes: {', '.join(classes)}{_close_matches_hint(class_name, classes)}"
        )
    return image, classes.index(class_name) + 1, int(k)


def _read_mask_pixels(path: str) -> Tuple[np.ndarray, str]:
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image), image.mode
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: cannot be read as a PNG mask ({e})") from e


def _read_binary_mask(path: str) -> np.ndarray:
    """(H, W) bool: nonzero in any colour channel; an alpha channel is ignored."""
    pixels, mode = _read_mask_pixels(path)
    if pixels.ndim == 3:
        if mode.endswith(("A", "a")):  # RGBA, LA, PA, La, RGBa: the last channel is alpha
            pixels = pixels[..., :-1]
        return pixels.any(axis=2)
    return pixels != 0


def _read_label_map(path: str, classes: List[str]) -> np.ndarray:
    """(H, W) int64 class values, checked to lie in 0..K."""
    num_classes = len(classes)
    pixels, mode = _read_mask_pixels(path)
    if pixels.ndim != 2:
        raise ValueError(
            f"{path}: a label map must have one channel (PIL mode L, P, I;16 or I), got mode {mode!r}; "
            f"pixel value v is class class_names[v - 1]"
        )
    pixels = pixels.astype(np.int64)
    bad = np.unique(pixels[(pixels < 0) | (pixels > num_classes)]).tolist()
    if bad:
        raise ValueError(
            f"{path}: pixel values {_few(bad)} are not classes; with {num_classes} classes "
            f"({', '.join(classes)}) values must be 0 (background) to {num_classes}"
        )
    return pixels


def _check_mask_size(mask: np.ndarray, image: _ImageFile, mask_path: str, image_dir: str) -> None:
    if mask.shape == (image.height, image.width):
        return
    hint = ""
    if image.exif_rotated and mask.shape == (image.width, image.height):
        hint = (
            "; the image has an EXIF orientation that turns it, and the mask matches the unturned pixels: "
            "draw the mask on the image as displayed, or strip the EXIF orientation"
        )
    raise ValueError(
        f"{mask_path}: the mask is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image "
        f"{os.path.join(image_dir, image.file_name)} is {image.height}x{image.width}{hint}"
    )


def _connected_components(mask: np.ndarray) -> Tuple[np.ndarray, int]:
    """4-connected components of a (H, W) bool mask: (labels 0..n, int32), n; numbered in raster
    order of their first pixel, as scipy.ndimage.label does."""
    try:
        from scipy import ndimage
    except ImportError:
        return _label_runs(mask)
    labels, count = ndimage.label(mask)
    return labels.astype(np.int32), int(count)


def _label_runs(mask: np.ndarray) -> Tuple[np.ndarray, int]:
    """_connected_components in NumPy: union-find over the horizontal runs of each row.

    The Python loops go over runs, not pixels, so a 1024x1024 map with a few hundred regions
    takes milliseconds.
    """
    height, width = mask.shape
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)  # steps[:, j] = mask[:, j] - mask[:, j - 1]
    rows, starts = np.nonzero(steps == 1)  # a run starts at column j ...
    _, ends = np.nonzero(steps == -1)  # ... and ends before column j; both in raster order
    rows, starts, ends = rows.tolist(), starts.tolist(), ends.tolist()
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    row_bounds = np.searchsorted(np.asarray(rows, dtype=np.int64), np.arange(height + 1)).tolist()
    for r in range(1, height):
        i, i_end = row_bounds[r - 1], row_bounds[r]  # runs of the row above
        j, j_end = row_bounds[r], row_bounds[r + 1]  # runs of this row
        while i < i_end and j < j_end:
            if starts[i] < ends[j] and starts[j] < ends[i]:  # share at least one column
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            if ends[i] < ends[j]:
                i += 1
            else:
                j += 1

    labels = np.zeros((height, width), dtype=np.int32)
    numbers: Dict[int, int] = {}
    for run in range(len(rows)):
        number = numbers.setdefault(root(run), len(numbers) + 1)
        labels[rows[run], starts[run]:ends[run]] = number
    return labels, len(numbers)


def _mask_annotation(mask: np.ndarray, image_id: int, category_id: int) -> dict:
    """One annotation for a nonempty (H, W) bool mask: compressed RLE, tight XYWH box, pixel area."""
    rle = mask_util.encode(np.asfortranarray(mask, dtype=np.uint8))
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return {
        "image_id": image_id,
        "category_id": int(category_id),
        "bbox": [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)],
        "area": int(mask.sum()),
        "segmentation": {"size": list(mask.shape), "counts": rle["counts"].decode("ascii")},
        "iscrowd": 0,
    }



def _read_csv(csv_file: str) -> List[Tuple[int, Dict[str, str]]]:
    """(line number, row with the CSV_COLUMNS stripped) for each data row."""
    if not os.path.isfile(csv_file):
        raise FileNotFoundError(f"{csv_file}: no such CSV file")
    with open(csv_file, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise ValueError(
                f"{csv_file}: the header must have the columns {','.join(CSV_COLUMNS)}; "
                f"missing {', '.join(missing)}; found {','.join(header) or '(nothing)'}"
            )
        reader.fieldnames = header
        rows = []
        for row in reader:
            rows.append((reader.line_num, {c: (row.get(c) or "").strip() for c in CSV_COLUMNS}))
    return rows


def _parse_box(row: Dict[str, str], line: int, image: _ImageFile, csv_file: str) -> List[float]:
    values = [row[c] for c in CSV_COLUMNS[1:5]]
    shown = ", ".join(f"{c}={v!r}" for c, v in zip(CSV_COLUMNS[1:5], values))
    where = f"{csv_file}: line {line}: box {shown} of image {image.file_name}"
    if not row["label"]:
        raise ValueError(f"{where}: the label is empty")
    try:
        x1, y1, x2, y2 = (float(v) for v in values)
    except ValueError:
        raise ValueError(f"{where}: coordinates must be numbers") from None
    shown = f"x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g}"
    where = (
        f"{csv_file}: line {line}: box {shown} of image {image.file_name} "
        f"(width {image.width}, height {image.height})"
    )
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f"{where}: coordinates must be finite")
    problems = []
    if min(x1, y1, x2, y2) < 0:
        problems.append("a negative coordinate")
    if x2 <= x1:
        problems.append("x2 <= x1")
    if y2 <= y1:
        problems.append("y2 <= y1")
    if x2 > image.width or y2 > image.height:
        problems.append("outside the image")
    if problems:
        raise ValueError(f"{where}: {', '.join(problems)}")
    return [_int_if_whole(v) for v in (x1, y1, x2, y2)]


def _int_if_whole(value: float):
    return int(value) if value.is_integer() else value



def _check_class_names(class_names: Sequence[str], *, forbid_separator: bool) -> List[str]:
    if isinstance(class_names, str):
        raise TypeError(f"class_names must be a list of names, got the string {class_names!r}")
    names = list(class_names)
    if not names:
        raise ValueError("class_names is empty; give at least one class")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"class_names must be non-empty strings, got {name!r} in {names}")
        if forbid_separator and (_NAME_SEPARATOR in name or "/" in name or "\\" in name):
            raise ValueError(
                f"class name {name!r} cannot appear in a mask file name <image stem>__<class name>__<k>.png; "
                f"use no '__' and no slash"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"class_names repeats {', '.join(repeated)}: {names}")
    return names


def _close_matches_hint(name: str, known: List[str]) -> str:
    close = difflib.get_close_matches(name, known, n=_CLOSE_MATCHES)
    return f"; close matches: {', '.join(close)}" if close else ""


def _few(values: Sequence) -> str:
    shown = ", ".join(str(v) for v in values[:_LISTED])
    return shown + (f", ... and {len(values) - _LISTED} more" if len(values) > _LISTED else "")


