"""A built-in medical instance-segmentation dataset: synthetic chest radiographs, in COCO format.

Each image is a posterior-anterior chest X-ray drawn from simple parts: air around a bright torso,
two darker lung fields, the mediastinum with the spine and the heart between them, 8-12 rib arcs
per side, lung texture, a varied exposure (gain, gradient, low-frequency drift) and quantum noise.
Findings sit in the lungs only: ``nodule`` (a small, roughly round blob) and ``lesion`` (a larger
irregular blob, the union of 2-4 ellipses), 0-3 per image and never overlapping; about a quarter of
the images have none, since negatives matter in medical data.

Masks match the annotation exactly: each finding's mask is drawn first, from polygons rasterized
with pycocotools, and its brightness is then added through that mask only, with a soft falloff
that stays inside it. Annotations are compressed RLEs.

Pixels are 12-bit (0..4095) and written either as DICOM files, as a scanner would, or as 16-bit
PNGs. The DICOM files exercise what readers must honour: about a fifth are ``MONOCHROME1``
(inverted: high values are dark), some carry a rescale intercept of -1024, and every file has a
display window. The PNGs always hold the ``MONOCHROME2`` values (high is bright, no rescale).

The same arguments give byte-identical files, DICOM UIDs included.
"""
import logging
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from ..utils.errors import UserError
from .chest import MAX_VALUE, draw_chest, expose, smoothstep
from .dicom_writer import write_radiograph
from .rendering import (
    PNG_COMPRESS_LEVEL,
    check_split,
    dataset_folder,
    default_cache_dir,
    dilate,
    ensure_generated,
    erode,
    mask_annotation,
    rasterize,
    render_images,
    smooth_field,
    write_coco_json,
)

__all__ = ["XRAY_CLASSES", "XRAY_FILE_FORMATS", "ensure_xray_dataset", "generate_xray_split"]

logger = logging.getLogger(__name__)

XRAY_CLASSES = ("nodule", "lesion")
_SUFFIXES = {"dicom": ".dcm", "png16": ".png"}
XRAY_FILE_FORMATS = tuple(_SUFFIXES)

# Bump when the generator's output changes, so that cached datasets made by older code are not
# reused: it is part of the cache folder's hash.
GENERATOR_VERSION = 1
TRAIN_SEED, VAL_SEED = 0, 1
MIN_IMAGE_SIZE = 64

# Findings. Sizes in pixels at a 256-pixel image, scaled with the image.
P_NUM_FINDINGS = (0.25, 0.35, 0.25, 0.15)  # 0, 1, 2, 3 findings
P_NODULE = 0.6
NODULE_RADIUS = (4.0, 12.0)
NODULE_VERTICES = 32
NODULE_WOBBLE = 0.08  # radius varies by up to this fraction, in 2 or 3 lobes
LESION_RADIUS = (15.0, 35.0)  # radius of the circle bounding the lesion
LESION_ELLIPSES = (2, 4)
LESION_VERTICES = 24
NODULE_ADD = (400.0, 800.0)
LESION_ADD = (300.0, 600.0)
LESION_TEXTURE = 0.25  # lesion brightness varies by +-this fraction
# A finding's edge pixels get this fraction of its brightness, rising to all of it over the falloff
# depth: a soft edge that still ends exactly at the mask.
FINDING_EDGE_FLOOR = 0.35
FINDING_FALLOFF = 0.5  # depth of the falloff, as a fraction of the finding's radius
MAX_FALLOFF_PX = 8
FINDING_GAP_PX = 3  # findings keep at least this far apart, so they never touch
MAX_PLACEMENT_TRIES = 30
REFERENCE_SIZE = 256

# DICOM: which files take the less common encodings.
P_MONOCHROME1 = 0.2
P_RESCALE_INTERCEPT = 0.3
RESCALE_INTERCEPT = -1024
P_COMPUTED_RADIOGRAPHY = 0.3  # Modality CR; the rest are DX
# The display window runs from the darkest lung to the densest bone, with a margin on both sides.
WINDOW_LUNG_PERCENTILE, WINDOW_BONE_PERCENTILE, WINDOW_MARGIN = 0.5, 99.5, 0.05
_UID_ROOT = "gn_detection:data/xray"


def generate_xray_split(
    root: str, split: str, *, num_images: int, seed: int, image_size: int = 256, file_format: str = "dicom"
) -> str:
    """Write ``root/<split>/<image id:06d>.dcm`` (``.png`` for png16) and ``root/annotations/instances_<split>.json``.

    Image ids run 1..``num_images``; image k depends only on ``seed``, ``image_size`` and k (not on
    ``file_format``), so a longer split starts with the images of a shorter one, and the DICOM and
    PNG variants hold the same pixels.

    Args:
        root: dataset folder; created if missing.
        split: split name, e.g. ``"train"``; a plain folder name.
        num_images: how many images, >= 1.
        seed: seed of ``numpy.random.default_rng``; equal arguments give byte-identical files.
        image_size: side of the square images in pixels, >= 64; anatomy and findings scale with it.
        file_format: ``"dicom"``: uint16 DICOM, explicit VR little endian, 12 bits stored, some
            MONOCHROME1 and some with a rescale intercept; ``"png16"``: 16-bit gray PNG (mode
            ``I;16``) of the MONOCHROME2 values 0..4095.

    Returns:
        path of the COCO JSON. Categories are 1 ``nodule`` and 2 ``lesion``; annotations carry
        ``bbox`` (XYWH ints, tight on the mask), ``area`` (mask pixels), ``iscrowd`` 0 and a
        compressed RLE ``segmentation`` with ``counts`` as str. Images may have no annotations.

    Raises:
        ValueError: an argument out of range, named in the message.
    """
    check_split(split, "generate_xray_split")
    if num_images < 1:
        raise UserError(f"generate_xray_split: num_images must be >= 1, got {num_images}")
    if image_size < MIN_IMAGE_SIZE:
        raise UserError(f"generate_xray_split: image_size must be >= {MIN_IMAGE_SIZE}, got {image_size}")
    if file_format not in XRAY_FILE_FORMATS:
        raise UserError(
            f"generate_xray_split: file_format must be one of {', '.join(XRAY_FILE_FORMATS)}, got {file_format!r}"
        )
    suffix = _SUFFIXES[file_format]

    image_dir = Path(root) / split
    annotation_dir = Path(root) / "annotations"
    image_dir.mkdir(parents=True, exist_ok=True)
    annotation_dir.mkdir(parents=True, exist_ok=True)

    def write_image(image_id: int) -> Tuple[dict, List[dict]]:
        # One generator per image: images are independent, so threads may render them in any order.
        rng = np.random.default_rng((seed, image_size, image_id))
        pixels, instances, lung_field = _render_image(rng, image_size)
        # Drawn after the pixels and for both formats, so the pixels do not depend on the format.
        encoding = _draw_encoding(rng)
        file_name = f"{image_id:06d}{suffix}"
        if file_format == "dicom":
            uid_sources = [_UID_ROOT, str(GENERATOR_VERSION), split, str(seed), str(image_size), str(image_id)]
            window = _display_window(pixels, lung_field)
            write_radiograph(
                image_dir / file_name, pixels, uid_sources=uid_sources, image_id=image_id, window=window, **encoding
            )
        else:
            Image.fromarray(pixels).save(image_dir / file_name, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        return dict(id=image_id, file_name=file_name, height=image_size, width=image_size), instances

    images, annotations = render_images(write_image, num_images)

    dataset = dict(
        info=dict(
            description="gn_detection synthetic chest radiographs",
            version=GENERATOR_VERSION,
            split=split,
            seed=seed,
            file_format=file_format,
        ),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i, name=name, supercategory="finding") for i, name in enumerate(XRAY_CLASSES, start=1)],
    )
    return write_coco_json(annotation_dir, split, dataset)


def ensure_xray_dataset(
    cache_dir: Optional[str] = None, *, num_train: int = 160, num_val: int = 40, file_format: str = "dicom"
) -> Dict[str, Tuple[str, str]]:
    """The chest X-ray dataset's train (seed 0) and val (seed 1) splits, generated on first use.

    Cached like ``ensure_shapes_dataset``: a sub-folder of ``cache_dir`` named after the parameters
    and a hash of them and of ``GENERATOR_VERSION``, written into a temporary sibling folder and
    renamed into place once complete, so a killed run leaves no half-written dataset.

    Args:
        cache_dir: parent folder; default ``$GN_DETECTION_CACHE/xray_v1``, or
            ``~/.cache/gn_detection/xray_v1`` when that variable is unset.
        num_train: images in the train split, >= 1.
        num_val: images in the val split, >= 1.
        file_format: ``"dicom"`` or ``"png16"``, as in ``generate_xray_split``.

    Returns:
        ``{"train": (json_file, image_root), "val": (json_file, image_root)}``.

    Raises:
        ValueError: ``num_train`` or ``num_val`` below 1, or an unknown ``file_format``.
        FileNotFoundError: the dataset folder exists but lacks a split's JSON (it was edited by
            hand; delete it to regenerate).
    """
    for name, value in (("num_train", num_train), ("num_val", num_val)):
        if value < 1:
            raise UserError(f"ensure_xray_dataset: {name} must be >= 1, got {value}")
    if file_format not in XRAY_FILE_FORMATS:
        raise UserError(
            f"ensure_xray_dataset: file_format must be one of {', '.join(XRAY_FILE_FORMATS)}, got {file_format!r}"
        )
    parent = Path(cache_dir) if cache_dir is not None else default_cache_dir("xray_v1")
    splits = {"train": (num_train, TRAIN_SEED), "val": (num_val, VAL_SEED)}
    params = dict(version=GENERATOR_VERSION, splits=splits, file_format=file_format)
    folder = dataset_folder(parent, f"{file_format}_train{num_train}_val{num_val}", params)

    def generate(root: str) -> None:
        for split, (num_images, seed) in splits.items():
            generate_xray_split(root, split, num_images=num_images, seed=seed, file_format=file_format)

    return ensure_generated(
        folder, splits, generate, what=f"the chest X-ray dataset ({num_train} train, {num_val} val {file_format} images)", caller="ensure_xray_dataset"
    )


def _render_image(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, List[dict], np.ndarray]:
    """One radiograph: the chest, its findings, the exposure.

    Returns:
        pixels: (size, size) uint16 in 0..MAX_VALUE, MONOCHROME2.
        annotations: without ids, one per finding.
        lung_field: (size, size) bool, where the findings may lie.
    """
    pixels, lung_field = draw_chest(rng, size)
    annotations = _add_findings(rng, pixels, lung_field, size)
    return expose(rng, pixels, size), annotations, lung_field







def _add_findings(rng: np.random.Generator, pixels: np.ndarray, lung_field: np.ndarray, size: int) -> List[dict]:
    """Place 0-3 non-overlapping findings inside ``lung_field``, brighten ``pixels`` through their masks.

    A finding that finds no free spot after MAX_PLACEMENT_TRIES is left out.
    """
    scale = size / REFERENCE_SIZE
    candidates = np.flatnonzero(lung_field)
    occupied = np.zeros_like(lung_field)
    annotations = []
    for _ in range(int(rng.choice(len(P_NUM_FINDINGS), p=P_NUM_FINDINGS))):
        is_nodule = rng.random() < P_NODULE
        for _ in range(MAX_PLACEMENT_TRIES):
            centre_y, centre_x = divmod(int(candidates[rng.integers(len(candidates))]), size)
            if is_nodule:
                radius = scale * rng.uniform(*NODULE_RADIUS)
                mask = rasterize(_nodule_polygon(rng, radius, centre_x, centre_y), size, size)
            else:
                radius = scale * rng.uniform(*LESION_RADIUS)
                mask = _lesion_mask(rng, radius, centre_x, centre_y, size)
            if mask.any() and not (mask & ~lung_field).any() and not (mask & occupied).any():
                break
        else:
            continue
        occupied |= dilate(mask, FINDING_GAP_PX)
        brightness = rng.uniform(*(NODULE_ADD if is_nodule else LESION_ADD))
        _brighten(rng, pixels, mask, brightness, radius, textured=not is_nodule)
        annotations.append(mask_annotation(mask, XRAY_CLASSES.index("nodule" if is_nodule else "lesion") + 1))
    return annotations


def _nodule_polygon(rng: np.random.Generator, radius: float, cx: float, cy: float) -> List[float]:
    """A roughly round polygon: a circle whose radius wobbles in 2 and 3 lobes."""
    angles = np.linspace(0, 2 * math.pi, NODULE_VERTICES, endpoint=False)
    wobble = sum(
        rng.uniform(0, NODULE_WOBBLE) * np.cos(lobes * angles + rng.uniform(0, 2 * math.pi)) for lobes in (2, 3)
    )
    r = radius * (1 + wobble)
    return _flatten(cx + r * np.cos(angles), cy + r * np.sin(angles))


def _lesion_mask(rng: np.random.Generator, radius: float, cx: float, cy: float, size: int) -> np.ndarray:
    """(size, size) bool: a main ellipse and 1-3 smaller ones around it, all within ``radius`` of the centre."""
    mask = np.zeros((size, size), dtype=bool)
    for k in range(int(rng.integers(LESION_ELLIPSES[0], LESION_ELLIPSES[1] + 1))):
        if k == 0:
            offset, axes = 0.0, radius * rng.uniform((0.45, 0.3), (0.7, 0.55))
        else:
            offset, axes = radius * rng.uniform(0.2, 0.5), radius * rng.uniform(0.25, 0.5, size=2)
        direction, tilt = rng.uniform(0, 2 * math.pi, size=2)
        angles = np.linspace(0, 2 * math.pi, LESION_VERTICES, endpoint=False)
        ex, ey = axes[0] * np.cos(angles), axes[1] * np.sin(angles)
        px = cx + offset * math.cos(direction) + ex * math.cos(tilt) - ey * math.sin(tilt)
        py = cy + offset * math.sin(direction) + ex * math.sin(tilt) + ey * math.cos(tilt)
        mask |= rasterize(_flatten(px, py), size, size)
    return mask


def _flatten(px: np.ndarray, py: np.ndarray) -> List[float]:
    return [float(v) for v in np.stack([px, py], axis=1).reshape(-1)]


def _brighten(
    rng: np.random.Generator, pixels: np.ndarray, mask: np.ndarray, brightness: float, radius: float, textured: bool
) -> None:
    """Add ``brightness`` inside ``mask`` only: FINDING_EDGE_FLOOR of it on the edge, all of it deeper in."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    crop = mask[window]
    falloff = int(min(MAX_FALLOFF_PX, max(1, round(FINDING_FALLOFF * radius))))
    depth = np.zeros(crop.shape, dtype=np.float32)  # 1 on the edge, 2 one pixel in, ...
    inner = crop
    for _ in range(falloff):
        depth += inner
        inner = erode(inner)
    weight = FINDING_EDGE_FLOOR + (1 - FINDING_EDGE_FLOOR) * smoothstep((depth - 1) / max(falloff - 1, 1))
    if textured:
        field = smooth_field(rng, crop.shape[0], crop.shape[1], 3).astype(np.float32)
        weight *= 1 + LESION_TEXTURE * (2 * field - 1)
    pixels[window] += np.where(crop, np.float32(brightness) * weight, 0)



def _draw_encoding(rng: np.random.Generator) -> dict:
    """How one image is stored in DICOM: photometric interpretation, rescale and modality."""
    return dict(
        monochrome1=bool(rng.random() < P_MONOCHROME1),
        intercept=RESCALE_INTERCEPT if rng.random() < P_RESCALE_INTERCEPT else 0,
        modality="CR" if rng.random() < P_COMPUTED_RADIOGRAPHY else "DX",
    )


def _display_window(pixels: np.ndarray, lung_field: np.ndarray) -> Tuple[int, int]:
    """(centre, width) of a window that shows the lungs, the findings in them and the bones."""
    low = float(np.percentile(pixels[lung_field], WINDOW_LUNG_PERCENTILE))
    high = float(np.percentile(pixels, WINDOW_BONE_PERCENTILE))
    margin = WINDOW_MARGIN * (high - low)
    low, high = max(0.0, low - margin), min(float(MAX_VALUE), high + margin)
    return round((low + high) / 2), max(1, round(high - low))



