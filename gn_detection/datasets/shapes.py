"""A built-in instance-segmentation dataset: coloured shapes on textured backgrounds, in COCO format.

Each image holds 1..``max_instances`` filled circles, squares and triangles, each in a random
saturated colour (so colour does not give the class away), on a muted background mixed from
colour gradients, low-frequency blobs, stripes and pixel noise. Later shapes occlude earlier ones;
an annotation describes the visible part of its shape, and shapes mostly hidden are left out.

Masks match the pixels exactly: every shape is a polygon (a circle is a 32-gon), rasterized with
pycocotools, the same rasterizer that decodes the polygon annotations, and its colour is written
through that mask with no anti-aliasing. Fully visible shapes are annotated with their polygon,
occluded ones with a compressed RLE of the visible part, so loaders see both kinds.

It is small and quick to learn, for the tiny training run and the tests; the same arguments give
byte-identical files.
"""
import colorsys
import logging
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..utils.errors import UserError
from .rendering import (
    PNG_COMPRESS_LEVEL,
    check_split,
    dataset_folder,
    default_cache_dir,
    ensure_generated,
    erode,
    mask_annotation,
    rasterize,
    render_images,
    smooth_field,
    write_coco_json,
)

__all__ = ["SHAPE_CLASSES", "ensure_shapes_dataset", "generate_shapes_split", "resolve_occlusions"]

logger = logging.getLogger(__name__)

SHAPE_CLASSES = ("circle", "square", "triangle")

# Bump when the generator's output changes, so that cached datasets made by older code are not
# reused: it is part of the cache folder's hash.
GENERATOR_VERSION = 1
TRAIN_SEED, VAL_SEED = 0, 1

# A shape showing less than this fraction of its area is dropped: a sliver is not a fair target.
MIN_VISIBLE_FRACTION = 0.4
CIRCLE_VERTICES = 32
MAX_SQUARE_TILT_DEG = 20.0
P_SQUARE_TILTED = 0.5
# Polygon vertices are rounded before rasterizing, so the JSON holds exactly the rasterized polygon.
POLYGON_DECIMALS = 2

# Colours as HSV ranges (each in 0..1): muted backgrounds, saturated objects. Background values
# overlap object values, so brightness alone does not separate them; saturation and shape do.
BACKGROUND_SATURATION = (0.0, 0.35)
BACKGROUND_VALUE = (0.3, 0.8)
OBJECT_SATURATION = (0.65, 1.0)
OBJECT_VALUE = (0.55, 1.0)

# Background texture: each component's probability and strength.
P_BLOBS, BLOB_CELLS, BLOB_MIX = 0.7, (2, 5), (0.3, 0.7)  # grid cells per side; weight of the blob colour
P_STRIPES, STRIPE_PERIOD, STRIPE_AMPLITUDE = 0.4, (6.0, 24.0), (6.0, 20.0)  # pixels; 0..255 units
P_NOISE, NOISE_AMPLITUDE = 0.8, (4.0, 16.0)  # uniform in +-amplitude, 0..255 units
# Object appearance: a darker 1-pixel outline, mild noise inside.
P_OUTLINE, OUTLINE_DARKEN = 0.3, 0.55
P_OBJECT_NOISE, OBJECT_NOISE_SIGMA = 0.3, (2.0, 8.0)


def generate_shapes_split(
    root: str,
    split: str,
    *,
    num_images: int,
    seed: int,
    image_size: Tuple[int, int] = (128, 160),
    max_instances: int = 4,
    size_range: Tuple[int, int] = (20, 64),
) -> str:
    """Write one split: ``root/<split>/<image id:06d>.png`` and ``root/annotations/instances_<split>.json``.

    Image ids run 1..``num_images``; image k depends only on ``seed`` and k, so a longer split
    starts with the images of a shorter one.

    Args:
        root: dataset folder; created if missing.
        split: split name, e.g. ``"train"``; a plain folder name.
        num_images: how many images, >= 1.
        seed: seed of ``numpy.random.default_rng``; equal arguments give byte-identical files.
        image_size: (min, max) pixels of each side; height and width are drawn independently,
            so images are landscape, portrait or square.
        max_instances: each image gets 1..max_instances shapes before occlusion culling.
        size_range: (min, max) pixels of a shape: a circle's diameter, a square's or a triangle's
            side; shrunk where the shape would not fit the image.

    Returns:
        path of the COCO JSON. Its annotations carry ``bbox`` (XYWH ints, the tight box of the
        visible mask), ``area`` (visible pixels), ``iscrowd`` 0 and ``segmentation``: polygons
        when the shape is fully visible, else a compressed RLE with ``counts`` as str.

    Raises:
        ValueError: an argument out of range, named in the message.
    """
    check_split(split, "generate_shapes_split")
    if num_images < 1:
        raise UserError(f"generate_shapes_split: num_images must be >= 1, got {num_images}")
    if max_instances < 1:
        raise UserError(f"generate_shapes_split: max_instances must be >= 1, got {max_instances}")
    min_side, max_side = _check_range("image_size", image_size)
    _check_range("size_range", size_range)

    image_dir = Path(root) / split
    annotation_dir = Path(root) / "annotations"
    image_dir.mkdir(parents=True, exist_ok=True)
    annotation_dir.mkdir(parents=True, exist_ok=True)

    def write_image(image_id: int) -> Tuple[dict, List[dict]]:
        # One generator per image: images are independent, so threads may render them in any order.
        rng = np.random.default_rng((seed, image_id))
        height, width = (int(v) for v in rng.integers(min_side, max_side + 1, size=2))
        pixels, instances = _render_image(rng, height, width, max_instances, size_range)
        file_name = f"{image_id:06d}.png"
        Image.fromarray(pixels).save(image_dir / file_name, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        return dict(id=image_id, file_name=file_name, height=height, width=width), instances

    images, annotations = render_images(write_image, num_images)

    dataset = dict(
        info=dict(description="gn_detection synthetic shapes", version=GENERATOR_VERSION, split=split, seed=seed),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i, name=name, supercategory="shape") for i, name in enumerate(SHAPE_CLASSES, start=1)],
    )
    return write_coco_json(annotation_dir, split, dataset)


def ensure_shapes_dataset(
    cache_dir: Optional[str] = None, *, num_train: int = 800, num_val: int = 100
) -> Dict[str, Tuple[str, str]]:
    """The shapes dataset's train (seed 0) and val (seed 1) splits, generated on first use.

    The dataset lives in a sub-folder of ``cache_dir`` named after its parameters and a hash of
    them and of ``GENERATOR_VERSION``, so different sizes or a changed generator never reuse stale
    files. It is written into a temporary sibling folder and renamed into place once complete: a
    killed run leaves no half-written dataset, and of two concurrent runs the second to finish
    discards its (identical) copy.

    Args:
        cache_dir: parent folder; default ``$GN_DETECTION_CACHE/shapes_v1``, or
            ``~/.cache/gn_detection/shapes_v1`` when that variable is unset.
        num_train: images in the train split, >= 1.
        num_val: images in the val split, >= 1.

    Returns:
        ``{"train": (json_file, image_root), "val": (json_file, image_root)}``.

    Raises:
        ValueError: ``num_train`` or ``num_val`` below 1.
        FileNotFoundError: the dataset folder exists but lacks a split's JSON (it was edited by
            hand; delete it to regenerate).
    """
    for name, value in (("num_train", num_train), ("num_val", num_val)):
        if value < 1:
            raise UserError(f"ensure_shapes_dataset: {name} must be >= 1, got {value}")
    parent = Path(cache_dir) if cache_dir is not None else default_cache_dir("shapes_v1")
    splits = {"train": (num_train, TRAIN_SEED), "val": (num_val, VAL_SEED)}
    folder = dataset_folder(parent, f"train{num_train}_val{num_val}", dict(version=GENERATOR_VERSION, splits=splits))

    def generate(root: str) -> None:
        for split, (num_images, seed) in splits.items():
            generate_shapes_split(root, split, num_images=num_images, seed=seed)

    return ensure_generated(
        folder, splits, generate, what=f"the shapes dataset ({num_train} train, {num_val} val images)", caller="ensure_shapes_dataset"
    )


def resolve_occlusions(
    full_masks: Sequence[np.ndarray], min_visible: float = MIN_VISIBLE_FRACTION
) -> List[Tuple[int, np.ndarray]]:
    """Visible parts of shapes drawn in order, later ones on top, after dropping hidden ones.

    A shape whose visible part is under ``min_visible`` of its full area (or which is empty) is
    dropped, i.e. not drawn, so the shapes below it may show more. Going from the top down makes
    one pass exact: a shape's visibility depends only on the kept shapes above it.

    Args:
        full_masks: (H, W) bool masks of the whole shapes, in drawing order.
        min_visible: the least visible fraction of a kept shape.

    Returns:
        ``(index, visible_mask)`` of each kept shape, in drawing order; the visible masks are
        disjoint.
    """
    covered = None
    kept = []
    for index in reversed(range(len(full_masks))):
        full = np.asarray(full_masks[index], dtype=bool)
        covered = np.zeros_like(full) if covered is None else covered
        visible = full & ~covered
        full_area = int(full.sum())
        if full_area == 0 or visible.sum() < min_visible * full_area:
            continue
        kept.append((index, visible))
        covered = covered | full
    return kept[::-1]


def _render_image(
    rng: np.random.Generator, height: int, width: int, max_instances: int, size_range: Tuple[int, int]
) -> Tuple[np.ndarray, List[dict]]:
    """One image, (H, W, 3) uint8, and its annotations without ids."""
    pixels = _background(rng, height, width)
    shapes = []
    for _ in range(int(rng.integers(1, max_instances + 1))):
        label = int(rng.integers(len(SHAPE_CLASSES)))
        size = float(rng.uniform(size_range[0], size_range[1]))
        polygon = _place(rng, _shape_outline(rng, SHAPE_CLASSES[label], size), height, width)
        shapes.append(dict(category_id=label + 1, polygon=polygon, mask=rasterize(polygon, height, width)))

    annotations = []
    for index, visible in resolve_occlusions([s["mask"] for s in shapes]):
        shape = shapes[index]
        _paint(rng, pixels, shape["mask"])
        annotation = mask_annotation(visible, shape["category_id"])
        if np.array_equal(visible, shape["mask"]):
            annotation["segmentation"] = [shape["polygon"]]  # fully visible: its polygon
        annotations.append(annotation)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8), annotations


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float32 in about 0..255: a muted gradient plus random blobs, stripes and noise."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * math.pi)
    ramp = xs * math.cos(angle) + ys * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    start, end = _muted_colour(rng), _muted_colour(rng)
    pixels = start + ramp[..., None] * (end - start)

    if rng.random() < P_BLOBS:
        cells = int(rng.integers(BLOB_CELLS[0], BLOB_CELLS[1] + 1))
        weight = (smooth_field(rng, height, width, cells) * rng.uniform(*BLOB_MIX)).astype(np.float32)[..., None]
        pixels += weight * (_muted_colour(rng) - pixels)
    if rng.random() < P_STRIPES:
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(*STRIPE_PERIOD)
        phase = (xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / period) + rng.uniform(0, 2 * math.pi)
        pixels += (np.float32(rng.uniform(*STRIPE_AMPLITUDE)) * np.sin(phase))[..., None]
    if rng.random() < P_NOISE:
        # uniform, not Gaussian: it looks the same and is several times cheaper to draw
        amplitude = np.float32(rng.uniform(*NOISE_AMPLITUDE))
        pixels += amplitude * (2 * rng.random(pixels.shape, dtype=np.float32) - 1)
    return pixels


def _shape_outline(rng: np.random.Generator, name: str, size: float) -> np.ndarray:
    """(K, 2) polygon vertices (x, y) centred on the origin."""
    if name == "circle":
        angles = np.linspace(0, 2 * math.pi, CIRCLE_VERTICES, endpoint=False)
        radius = size / 2
    elif name == "square":
        tilt = rng.uniform(-MAX_SQUARE_TILT_DEG, MAX_SQUARE_TILT_DEG) if rng.random() < P_SQUARE_TILTED else 0.0
        angles = math.radians(45 + tilt) + np.arange(4) * (math.pi / 2)
        radius = size / math.sqrt(2)
    elif name == "triangle":
        angles = rng.uniform(0, 2 * math.pi) + np.arange(3) * (2 * math.pi / 3)
        radius = size / math.sqrt(3)  # circumradius of an equilateral triangle of side `size`
    else:
        raise AssertionError(f"no outline for shape {name!r}")
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _place(rng: np.random.Generator, outline: np.ndarray, height: int, width: int) -> List[float]:
    """Shrink ``outline`` to fit the image if needed, move it to a random spot inside, flatten it."""
    extent = outline.max(axis=0) - outline.min(axis=0)
    outline = outline * min(1.0, width / extent[0], height / extent[1])
    low = -outline.min(axis=0)
    high = np.array([width, height]) - outline.max(axis=0)
    placed = outline + rng.uniform(low, np.maximum(low, high))
    placed = np.clip(np.round(placed, POLYGON_DECIMALS), 0, [width, height])
    return [float(v) for v in placed.reshape(-1)]


def _paint(rng: np.random.Generator, pixels: np.ndarray, mask: np.ndarray) -> None:
    """Fill ``mask`` in ``pixels`` with a random saturated colour, maybe noisy, maybe outlined."""
    colour = np.tile(_saturated_colour(rng), (int(mask.sum()), 1))
    if rng.random() < P_OBJECT_NOISE:
        colour = colour + rng.normal(0.0, rng.uniform(*OBJECT_NOISE_SIGMA), size=colour.shape)
    pixels[mask] = colour
    if rng.random() < P_OUTLINE:
        pixels[mask & ~erode(mask)] = pixels[mask].mean(axis=0) * OUTLINE_DARKEN


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv_colour(rng, BACKGROUND_SATURATION, BACKGROUND_VALUE)


def _saturated_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv_colour(rng, OBJECT_SATURATION, OBJECT_VALUE)


def _hsv_colour(rng: np.random.Generator, saturation: Tuple[float, float], value: Tuple[float, float]) -> np.ndarray:
    """(3,) RGB in 0..255 of a uniform hue with saturation and value drawn from the ranges."""
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*saturation), rng.uniform(*value))
    return np.array(rgb, dtype=np.float32) * 255


def _check_range(name: str, value: Tuple[int, int]) -> Tuple[int, int]:
    if len(value) != 2 or not 1 <= value[0] <= value[1]:
        raise UserError(f"generate_shapes_split: {name} must be (min, max) with 1 <= min <= max, got {value!r}")
    return int(value[0]), int(value[1])
