"""Reading what ``prepare`` turns into COCO: the image folder, instance masks or label maps, and
a CSV of boxes. Every reader names the file (and the CSV line) in its errors."""
import csv
import difflib
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

from ..data.dicom import is_dicom, read_dicom
from ..utils.errors import UserError

__all__ = [
    "CSV_COLUMNS",
    "IMAGE_EXTENSIONS",
    "LISTED",
    "MASK_EXTENSION",
    "NAME_SEPARATOR",
    "ImageFile",
    "check_dir",
    "check_mask_size",
    "close_matches_hint",
    "connected_components",
    "few",
    "images_by_stem",
    "list_images",
    "list_masks",
    "lookup_image",
    "parse_box",
    "parse_instance_name",
    "read_binary_mask",
    "read_csv",
    "read_label_map",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
CSV_COLUMNS = ("image", "x1", "y1", "x2", "y2", "label")
_DICOM_EXTENSION = ".dcm"  # files exported without it are recognised by their DICM magic
MASK_EXTENSION = ".png"
NAME_SEPARATOR = "__"  # between image stem, class name and instance index in a mask's name
_EXIF_ORIENTATION = 0x0112
LISTED = 20  # entries a list shows before "... and N more"
_CLOSE_MATCHES = 3
# EXIF orientations 5-8 include a 90-degree turn: read_image (which applies them) gives W x H.
_EXIF_TRANSPOSED = (5, 6, 7, 8)


@dataclass
class ImageFile:
    image_id: int
    file_name: str  # relative to the image folder
    height: int
    width: int
    exif_rotated: bool


def check_dir(path: str, kind: str) -> None:
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such {kind} folder")


def list_images(image_dir: str) -> Tuple[List[ImageFile], List[str]]:
    """The images directly in ``image_dir``, sorted by name, with ids 1..N; and the other entries."""
    check_dir(image_dir, "image")
    images, ignored = [], []
    for name in sorted(os.listdir(image_dir)):
        path = os.path.join(image_dir, name)
        if os.path.isdir(path):
            ignored.append(path + os.sep)
            continue
        ext = os.path.splitext(name)[1].lower()
        if ext in IMAGE_EXTENSIONS:
            height, width, rotated = _image_size(path)
        elif ext == _DICOM_EXTENSION or is_dicom(path):
            height, width = _dicom_size(path)
            rotated = False
        else:
            ignored.append(path)
            continue
        images.append(ImageFile(len(images) + 1, name, height, width, rotated))
    if not images:
        raise UserError(
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
        raise UserError(f"{path}: cannot be read as an image ({e})") from e
    if orientation in _EXIF_TRANSPOSED:
        height, width = width, height
    return height, width, orientation not in (1, None)


def _dicom_size(path: str) -> Tuple[int, int]:
    """Decoded, as training will read it, so that a truncated file, one without pixel data or
    one no installed decoder reads is reported now, naming it, rather than when training starts."""
    return read_dicom(path).shape


def images_by_stem(images: List[ImageFile], image_dir: str) -> Dict[str, ImageFile]:
    by_stem: Dict[str, ImageFile] = {}
    for im in images:
        stem = os.path.splitext(im.file_name)[0]
        if stem in by_stem:
            raise UserError(
                f"{image_dir}: {by_stem[stem].file_name} and {im.file_name} have the same stem {stem!r}, "
                f"so a mask name cannot tell which one it belongs to; rename one"
            )
        by_stem[stem] = im
    return by_stem


def lookup_image(stem: str, by_stem: Dict[str, ImageFile], mask_path: str) -> ImageFile:
    if stem not in by_stem:
        raise UserError(
            f"{mask_path}: names the image {stem!r}, which is not among the {len(by_stem)} images"
            f"{close_matches_hint(stem, list(by_stem))}"
        )
    return by_stem[stem]


def list_masks(mask_dir: str) -> Tuple[List[str], List[str]]:
    names, ignored = [], []
    for name in sorted(os.listdir(mask_dir)):
        path = os.path.join(mask_dir, name)
        if os.path.isdir(path):
            ignored.append(path + os.sep)
        elif name.lower().endswith(MASK_EXTENSION):
            names.append(name)
        else:
            ignored.append(path)
    if not names:
        raise UserError(f"{mask_dir}: no {MASK_EXTENSION} mask in this folder")
    return names, ignored


def parse_instance_name(
    name: str, mask_dir: str, by_stem: Dict[str, ImageFile], classes: List[str]
) -> Tuple[ImageFile, int, int]:
    """``<image stem>__<class name>__<k>.png`` -> (image, category id, k)."""
    path = os.path.join(mask_dir, name)
    # split from the right: image stems may contain "__", class names may not
    parts = name[: -len(MASK_EXTENSION)].rsplit(NAME_SEPARATOR, 2)
    if len(parts) != 3 or not parts[0] or not parts[2].isdigit():
        raise UserError(
            f"{path}: an instance mask must be named <image stem>__<class name>__<k>.png "
            f"(k an integer), e.g. case07__{classes[0]}__0.png"
        )
    stem, class_name, k = parts
    image = lookup_image(stem, by_stem, path)
    if class_name not in classes:
        raise UserError(
            f"{path}: names the class {class_name!r}, which is not in class_names; "
            f"known classes: {', '.join(classes)}{close_matches_hint(class_name, classes)}"
        )
    return image, classes.index(class_name) + 1, int(k)


def _read_mask_pixels(path: str) -> Tuple[np.ndarray, str]:
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image), image.mode
    except (OSError, SyntaxError, ValueError) as e:
        raise UserError(f"{path}: cannot be read as a PNG mask ({e})") from e


def read_binary_mask(path: str) -> np.ndarray:
    """(H, W) bool: nonzero in any colour channel; an alpha channel is ignored."""
    pixels, mode = _read_mask_pixels(path)
    if pixels.ndim == 3:
        if mode.endswith(("A", "a")):  # RGBA, LA, PA, La, RGBa: the last channel is alpha
            pixels = pixels[..., :-1]
        return pixels.any(axis=2)
    return pixels != 0


def read_label_map(path: str, classes: List[str]) -> np.ndarray:
    """(H, W) int64 class values, checked to lie in 0..K."""
    num_classes = len(classes)
    pixels, mode = _read_mask_pixels(path)
    if pixels.ndim != 2:
        raise UserError(
            f"{path}: a label map must have one channel (PIL mode L, P, I;16 or I), got mode {mode!r}; "
            f"pixel value v is class class_names[v - 1]"
        )
    pixels = pixels.astype(np.int64)
    bad = np.unique(pixels[(pixels < 0) | (pixels > num_classes)]).tolist()
    if bad:
        raise UserError(
            f"{path}: pixel values {few(bad)} are not classes; with {num_classes} classes "
            f"({', '.join(classes)}) values must be 0 (background) to {num_classes}"
        )
    return pixels


def check_mask_size(mask: np.ndarray, image: ImageFile, mask_path: str, image_dir: str) -> None:
    if mask.shape == (image.height, image.width):
        return
    hint = ""
    if image.exif_rotated and mask.shape == (image.width, image.height):
        hint = (
            "; the image has an EXIF orientation that turns it, and the mask matches the unturned pixels: "
            "draw the mask on the image as displayed, or strip the EXIF orientation"
        )
    raise UserError(
        f"{mask_path}: the mask is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image "
        f"{os.path.join(image_dir, image.file_name)} is {image.height}x{image.width}{hint}"
    )


def connected_components(mask: np.ndarray) -> Tuple[np.ndarray, int]:
    """4-connected components of a (H, W) bool mask: (labels 0..n, int32), n; numbered in raster
    order of their first pixel, as scipy.ndimage.label does."""
    try:
        from scipy import ndimage
    except ImportError:
        return _label_runs(mask)
    labels, count = ndimage.label(mask)
    return labels.astype(np.int32), int(count)


def _label_runs(mask: np.ndarray) -> Tuple[np.ndarray, int]:
    """connected_components in NumPy: union-find over the horizontal runs of each row.

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


def read_csv(csv_file: str) -> List[Tuple[int, Dict[str, str]]]:
    """(line number, row with the CSV_COLUMNS stripped) for each data row."""
    if not os.path.isfile(csv_file):
        raise FileNotFoundError(f"{csv_file}: no such CSV file")
    with open(csv_file, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise UserError(
                f"{csv_file}: the header must have the columns {','.join(CSV_COLUMNS)}; "
                f"missing {', '.join(missing)}; found {','.join(header) or '(nothing)'}"
            )
        reader.fieldnames = header
        rows = []
        for row in reader:
            rows.append((reader.line_num, {c: (row.get(c) or "").strip() for c in CSV_COLUMNS}))
    return rows


def parse_box(row: Dict[str, str], line: int, image: ImageFile, csv_file: str) -> List[float]:
    values = [row[c] for c in CSV_COLUMNS[1:5]]
    shown = ", ".join(f"{c}={v!r}" for c, v in zip(CSV_COLUMNS[1:5], values))
    where = f"{csv_file}: line {line}: box {shown} of image {image.file_name}"
    if not row["label"]:
        raise UserError(f"{where}: the label is empty")
    try:
        x1, y1, x2, y2 = (float(v) for v in values)
    except ValueError:
        raise UserError(f"{where}: coordinates must be numbers") from None
    shown = f"x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g}"
    where = (
        f"{csv_file}: line {line}: box {shown} of image {image.file_name} "
        f"(width {image.width}, height {image.height})"
    )
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise UserError(f"{where}: coordinates must be finite")
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
        raise UserError(f"{where}: {', '.join(problems)}")
    return [_int_if_whole(v) for v in (x1, y1, x2, y2)]


def _int_if_whole(value: float):
    return int(value) if value.is_integer() else value


def close_matches_hint(name: str, known: List[str]) -> str:
    close = difflib.get_close_matches(name, known, n=_CLOSE_MATCHES)
    return f"; close matches: {', '.join(close)}" if close else ""


def few(values: Sequence) -> str:
    shown = ", ".join(str(v) for v in values[:LISTED])
    return shown + (f", ... and {len(values) - LISTED} more" if len(values) > LISTED else "")
