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
import hashlib
import json
import logging
import math
import os
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .generated import ensure_generated, render_images, write_coco_json
from .synthetic import PNG_COMPRESS_LEVEL, _erode, _rasterize, _smooth_field

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

# Pixel values: 12 bits, as most digital radiography detectors deliver.
BITS_STORED = 12
MAX_VALUE = 2**BITS_STORED - 1

# Geometry, as fractions of the image side (the image is square); each drawn per image.
TORSO_CENTRE_JITTER = 0.03
TORSO_SEMI_AXES = ((0.38, 0.46), (0.60, 0.72))  # (x range, y range); taller than the image
TORSO_CENTRE_Y = (0.52, 0.60)
LUNG_OFFSET_X = (0.17, 0.22)  # lung centre from the midline
LUNG_CENTRE_Y = (0.40, 0.48)
LUNG_SEMI_AXES = ((0.12, 0.16), (0.25, 0.31))
LUNG_TILT_DEG = (0.0, 10.0)  # apices lean toward the midline
MEDIASTINUM_HALF_WIDTH = (0.05, 0.07)
SPINE_HALF_WIDTH = (0.025, 0.035)
VERTEBRA_PERIOD = (0.045, 0.06)
HEART_OFFSET = ((0.06, 0.10), (0.16, 0.21))  # from the midline (toward image right) and lung centre
HEART_SEMI_AXES = ((0.15, 0.19), (0.11, 0.14))
TORSO_SQUARENESS = 3.0  # exponent of the torso's superellipse: boxier than an ellipse
CLAVICLE_SPAN = ((0.04, 0.06), (0.30, 0.36))  # inner and outer end, from the midline
CLAVICLE_RISE = (0.04, 0.08)  # the outer end is higher
CLAVICLE_THICKNESS = (0.02, 0.03)
EDGE_SOFTNESS = 0.08  # organ edges blend over this fraction of their radius
RIBS_PER_SIDE = (8, 12)
RIB_THICKNESS = (0.018, 0.026)
RIB_RISE = (0.03, 0.07)  # how far a rib climbs from the spine before curving down
RIB_DROP = (0.18, 0.26)  # how far it falls at the side of the chest
RIB_DROP_GROWTH = 0.8  # lower ribs fall this much more, relative to the top rib
RIB_FADE = 0.08  # ribs fade out over this far below the lungs

# Intensities in 12-bit units before the exposure is applied (MONOCHROME2: dense is bright).
AIR_LEVEL = (150.0, 450.0)
SOFT_TISSUE_LEVEL = (1700.0, 2100.0)
LUNG_LEVEL = (750.0, 1100.0)
MEDIASTINUM_ADD = (300.0, 550.0)
SPINE_ADD = (150.0, 350.0)
HEART_ADD = (250.0, 450.0)
RIB_ADD = (200.0, 380.0)
CLAVICLE_ADD = (250.0, 400.0)
LUNG_TEXTURE = (150.0, 300.0)
LUNG_TEXTURE_CELLS = (10, 16)

# Exposure: overall gain, a linear gradient and a low-frequency drift; then noise whose variance
# grows with the signal (quantum noise) plus a constant part (detector electronics).
EXPOSURE_GAIN = (0.8, 1.15)
GRADIENT_AMPLITUDE = (0.0, 400.0)
DRIFT_AMPLITUDE, DRIFT_CELLS = (0.0, 250.0), (2, 3)
QUANTUM_NOISE = (0.5, 1.2)  # std = this * sqrt(value)
ELECTRONIC_NOISE = (4.0, 12.0)

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
FIELD_OF_VIEW_MM = 350.0
STUDY_DATE = "20000101"  # fixed, so that files are reproducible
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
    _check_split(split)
    if num_images < 1:
        raise ValueError(f"generate_xray_split: num_images must be >= 1, got {num_images}")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"generate_xray_split: image_size must be >= {MIN_IMAGE_SIZE}, got {image_size}")
    if file_format not in XRAY_FILE_FORMATS:
        raise ValueError(
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
            _write_dicom(
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
            raise ValueError(f"ensure_xray_dataset: {name} must be >= 1, got {value}")
    if file_format not in XRAY_FILE_FORMATS:
        raise ValueError(
            f"ensure_xray_dataset: file_format must be one of {', '.join(XRAY_FILE_FORMATS)}, got {file_format!r}"
        )
    parent = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    splits = {"train": (num_train, TRAIN_SEED), "val": (num_val, VAL_SEED)}
    params = json.dumps(dict(version=GENERATOR_VERSION, splits=splits, file_format=file_format), sort_keys=True)
    digest = hashlib.sha256(params.encode("utf-8")).hexdigest()[:10]
    folder = parent / f"{file_format}_train{num_train}_val{num_val}_{digest}"

    def generate(root: str) -> None:
        for split, (num_images, seed) in splits.items():
            generate_xray_split(root, split, num_images=num_images, seed=seed, file_format=file_format)

    return ensure_generated(
        folder, splits, generate, what=f"the chest X-ray dataset ({num_train} train, {num_val} val {file_format} images)", caller="ensure_xray_dataset"
    )


def _render_image(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, List[dict], np.ndarray]:
    """One radiograph.

    Returns:
        pixels: (size, size) uint16 in 0..MAX_VALUE, MONOCHROME2.
        annotations: without ids, one per finding.
        lung_field: (size, size) bool, where findings may lie: pure lung, away from its soft edge,
            the heart and the mediastinum.
    """
    ys = np.arange(size, dtype=np.float32)[:, None]
    xs = np.arange(size, dtype=np.float32)[None, :]

    midline = size * (0.5 + rng.uniform(-TORSO_CENTRE_JITTER, TORSO_CENTRE_JITTER))
    torso = _soft_ellipse(
        xs, ys, midline, size * rng.uniform(*TORSO_CENTRE_Y),
        size * rng.uniform(*TORSO_SEMI_AXES[0]), size * rng.uniform(*TORSO_SEMI_AXES[1]), 0.0, TORSO_SQUARENESS,
    )
    lung_y = size * rng.uniform(*LUNG_CENTRE_Y)
    lungs = np.zeros((size, size), dtype=np.float32)
    for side in (-1, 1):
        tilt = math.radians(rng.uniform(*LUNG_TILT_DEG)) * side
        lung = _soft_ellipse(
            xs, ys, midline + side * size * rng.uniform(*LUNG_OFFSET_X), lung_y + size * rng.uniform(-0.02, 0.02),
            size * rng.uniform(*LUNG_SEMI_AXES[0]), size * rng.uniform(*LUNG_SEMI_AXES[1]), tilt,
        )
        lungs = np.maximum(lungs, lung)
    mediastinum = _soft_band(xs, midline, size * rng.uniform(*MEDIASTINUM_HALF_WIDTH))
    spine = _soft_band(xs, midline, size * rng.uniform(*SPINE_HALF_WIDTH))
    heart = _soft_ellipse(
        xs, ys, midline + size * rng.uniform(*HEART_OFFSET[0]), lung_y + size * rng.uniform(*HEART_OFFSET[1]),
        size * rng.uniform(*HEART_SEMI_AXES[0]), size * rng.uniform(*HEART_SEMI_AXES[1]), 0.0,
    )
    lungness = lungs * (1 - heart) * (1 - mediastinum) * torso
    lung_field = lungness >= 0.999

    air, tissue, lung = (rng.uniform(*r) for r in (AIR_LEVEL, SOFT_TISSUE_LEVEL, LUNG_LEVEL))
    pixels = air + (tissue - air) * torso - (tissue - lung) * lungness
    # the heart and the mediastinum are one dense block: where they overlap, neither adds to the other
    pixels += np.maximum(rng.uniform(*MEDIASTINUM_ADD) * mediastinum, rng.uniform(*HEART_ADD) * heart) * torso
    period = size * rng.uniform(*VERTEBRA_PERIOD)
    vertebrae = 0.75 + 0.25 * np.cos(ys * np.float32(2 * math.pi / period) + np.float32(rng.uniform(0, 2 * math.pi)))
    pixels += rng.uniform(*SPINE_ADD) * spine * vertebrae * torso
    pixels += _ribs(rng, xs, ys, size, midline, lung_y) * torso
    pixels += _clavicles(rng, xs, ys, size, midline, lung_y) * torso
    cells = int(rng.integers(LUNG_TEXTURE_CELLS[0], LUNG_TEXTURE_CELLS[1] + 1))
    texture = (_smooth_field(rng, size, size, cells) - 0.5).astype(np.float32)
    pixels += rng.uniform(*LUNG_TEXTURE) * texture * lungness

    annotations = _add_findings(rng, pixels, lung_field, size)

    pixels *= np.float32(rng.uniform(*EXPOSURE_GAIN))
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (xs - size / 2) * math.cos(angle) + (ys - size / 2) * math.sin(angle)
    pixels += np.float32(rng.uniform(*GRADIENT_AMPLITUDE) / size) * ramp
    cells = int(rng.integers(DRIFT_CELLS[0], DRIFT_CELLS[1] + 1))
    drift = (_smooth_field(rng, size, size, cells) - 0.5).astype(np.float32)
    pixels += np.float32(rng.uniform(*DRIFT_AMPLITUDE)) * drift

    quantum, electronic = rng.uniform(*QUANTUM_NOISE), rng.uniform(*ELECTRONIC_NOISE)
    sigma = np.sqrt(np.float32(quantum**2) * np.maximum(pixels, 0) + np.float32(electronic**2))
    pixels += sigma * rng.standard_normal((size, size), dtype=np.float32)
    return np.clip(np.rint(pixels), 0, MAX_VALUE).astype(np.uint16), annotations, lung_field


def _soft_ellipse(
    xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, ax: float, ay: float, tilt: float, power: float = 2.0
) -> np.ndarray:
    """(H, W) float32 in 0..1: 1 inside the (tilted) ellipse, falling to 0 over its outer EDGE_SOFTNESS.

    ``power`` > 2 gives a superellipse, |u|^p + |v|^p <= 1: a rounded box.
    """
    c, s = math.cos(tilt), math.sin(tilt)
    u = np.abs(((xs - cx) * c + (ys - cy) * s) / ax)
    v = np.abs((-(xs - cx) * s + (ys - cy) * c) / ay)
    radius = np.sqrt(u * u + v * v) if power == 2 else (u**power + v**power) ** (1 / power)
    return _smoothstep((1 - radius) / EDGE_SOFTNESS)


def _soft_band(xs: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    """(1, W) float32 in 0..1: a vertical band, soft over its outer EDGE_SOFTNESS."""
    return _smoothstep((1 - np.abs(xs - centre) / half_width) / EDGE_SOFTNESS)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, 1)
    return t * t * (3 - 2 * t)


def _ribs(
    rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, size: int, midline: float, lung_y: float
) -> np.ndarray:
    """(H, W) float32: the added brightness of the posterior rib arcs of both sides.

    A side's ribs follow one family of curves, y = y_k - rise * u + drop * g(y) * u^2 with u the
    distance from the spine over the half chest and g growing downward (lower ribs slope more).
    A rib is a band of constant height h = y - curve, so h indexes a 1-D profile of all ribs, and
    one interpolation draws them all.
    """
    ribs = np.zeros((size, size), dtype=np.float32)
    half_chest = size * (LUNG_OFFSET_X[1] + LUNG_SEMI_AXES[0][1])
    top = lung_y - size * LUNG_SEMI_AXES[1][1]
    bottom = lung_y + size * LUNG_SEMI_AXES[1][1]
    growth = 1 + RIB_DROP_GROWTH * np.clip((ys - top) / (bottom - top), 0, 1)
    for side in (-1, 1):
        u = np.clip(side * (xs - midline) / half_chest, 0, None)
        height = ys - size * (-rng.uniform(*RIB_RISE) * u + rng.uniform(*RIB_DROP) * growth * u * u)
        count = int(rng.integers(RIBS_PER_SIDE[0], RIBS_PER_SIDE[1] + 1))
        spacing = size * 2 * LUNG_SEMI_AXES[1][1] / count
        starts = top + spacing * (np.arange(count) + rng.uniform(-0.15, 0.15, size=count))
        thickness = size * rng.uniform(*RIB_THICKNESS, size=count)
        amplitude = rng.uniform(*RIB_ADD, size=count)
        grid = np.arange(math.floor(height.min()), math.ceil(height.max()) + 1, 0.25)
        profile = np.zeros_like(grid)
        for start, thick, amp in zip(starts, thickness, amplitude):
            # flat-topped: the cortex of a rib is as bright as its middle
            profile += amp * np.sqrt(np.clip(1 - ((grid - start) / (thick / 2)) ** 2, 0, None))
        in_side = (side * (xs - midline) > 0).astype(np.float32)
        ribs += in_side * np.interp(height, grid, profile).astype(np.float32)
    return ribs * _smoothstep((bottom + size * RIB_FADE - ys) / (size * RIB_FADE))


def _clavicles(
    rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, size: int, midline: float, lung_y: float
) -> np.ndarray:
    """(H, W) float32: the added brightness of the two clavicles, bands rising from the midline outward."""
    bones = np.zeros((size, size), dtype=np.float32)
    top = lung_y - size * LUNG_SEMI_AXES[1][0]
    for side in (-1, 1):
        x0, x1 = (midline + side * size * rng.uniform(*span) for span in CLAVICLE_SPAN)
        y0 = top + size * rng.uniform(-0.02, 0.02)
        y1 = y0 - size * rng.uniform(*CLAVICLE_RISE)
        # distance from the segment (x0, y0)-(x1, y1)
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy), 0, 1)
        distance = np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy))
        half = size * rng.uniform(*CLAVICLE_THICKNESS) / 2
        bones += rng.uniform(*CLAVICLE_ADD) * np.sqrt(np.clip(1 - (distance / half) ** 2, 0, None))
    return bones


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
                mask = _rasterize(_nodule_polygon(rng, radius, centre_x, centre_y), size, size)
            else:
                radius = scale * rng.uniform(*LESION_RADIUS)
                mask = _lesion_mask(rng, radius, centre_x, centre_y, size)
            if mask.any() and not (mask & ~lung_field).any() and not (mask & occupied).any():
                break
        else:
            continue
        occupied |= _dilate(mask, FINDING_GAP_PX)
        brightness = rng.uniform(*(NODULE_ADD if is_nodule else LESION_ADD))
        _brighten(rng, pixels, mask, brightness, radius, textured=not is_nodule)
        rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
        annotations.append(
            dict(
                category_id=XRAY_CLASSES.index("nodule" if is_nodule else "lesion") + 1,
                bbox=[int(v) for v in mask_utils.toBbox(rle)],
                area=int(mask.sum()),
                segmentation=dict(size=[size, size], counts=rle["counts"].decode("ascii")),
            )
        )
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
        mask |= _rasterize(_flatten(px, py), size, size)
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
        inner = _erode(inner)
    weight = FINDING_EDGE_FLOOR + (1 - FINDING_EDGE_FLOOR) * _smoothstep((depth - 1) / max(falloff - 1, 1))
    if textured:
        field = _smooth_field(rng, crop.shape[0], crop.shape[1], 3).astype(np.float32)
        weight *= 1 + LESION_TEXTURE * (2 * field - 1)
    pixels[window] += np.where(crop, np.float32(brightness) * weight, 0)


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """4-neighbour dilation, ``steps`` times."""
    for _ in range(steps):
        p = np.pad(mask, 1)
        mask = mask | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return mask


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


def _write_dicom(
    path: Path, pixels: np.ndarray, *, uid_sources: List[str], image_id: int, window: Tuple[int, int],
    monochrome1: bool, intercept: int, modality: str,
) -> None:
    """Write MONOCHROME2 ``pixels`` (uint16, 0..MAX_VALUE) as a DICOM file.

    MONOCHROME1 files store MAX_VALUE - pixels. ``window`` (centre, width) is in MONOCHROME2 stored
    units; the file holds it in modality units (after the rescale), inverted with the pixels for
    MONOCHROME1.
    """
    # Imported here: pydicom is needed only to write DICOM, not for the PNG variant.
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        ComputedRadiographyImageStorage,
        DigitalXRayImageStorageForPresentation,
        ExplicitVRLittleEndian,
    )

    def uid(kind: str) -> str:
        # A "2.25." UID from a name-based UUID (ISO/IEC 9834-8), so equal arguments give equal UIDs.
        # Not pydicom's generate_uid: with prefix=None it ignores entropy_srcs and is random.
        return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, '/'.join([*uid_sources, kind])).int}"

    size = pixels.shape[0]
    centre, width = window
    stored = MAX_VALUE - pixels if monochrome1 else pixels
    if monochrome1:
        centre = MAX_VALUE - centre

    sop_class = ComputedRadiographyImageStorage if modality == "CR" else DigitalXRayImageStorageForPresentation
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid("image")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid("series")
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Modality = modality
    ds.StudyDate = ds.SeriesDate = STUDY_DATE
    ds.PatientName = "Synthetic^Chest"
    ds.PatientID = f"GN{image_id:06d}"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = image_id
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.ImagerPixelSpacing = [round(FIELD_OF_VIEW_MM / size, 4)] * 2
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.PresentationLUTShape = "INVERSE" if monochrome1 else "IDENTITY"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.WindowCenter = centre + intercept
    ds.WindowWidth = width
    ds.VOILUTFunction = "LINEAR"
    ds.PixelData = stored.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def _check_split(split: str) -> None:
    if not isinstance(split, str) or not split or split in (".", "..") or any(c in split for c in "/\\"):
        raise ValueError(f"generate_xray_split: split must be a plain folder name such as 'train', got {split!r}")


def _default_cache_dir() -> Path:
    base = os.environ.get("GN_DETECTION_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "gn_detection") / "xray_v1"
