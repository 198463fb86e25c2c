"""What the built-in synthetic datasets share: rendering in threads, polygons and masks in COCO's
terms, their COCO JSON and their cache folder."""
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from ..utils.errors import UserError

__all__ = [
    "PNG_COMPRESS_LEVEL",
    "check_split",
    "dataset_folder",
    "default_cache_dir",
    "dilate",
    "ensure_generated",
    "erode",
    "mask_annotation",
    "rasterize",
    "render_images",
    "smooth_field",
    "write_coco_json",
]

logger = logging.getLogger(__name__)

MAX_THREADS = 8
# zlib level 1: noisy images barely compress better at 6, which takes half again as long.
PNG_COMPRESS_LEVEL = 1


def render_images(write_image: Callable[[int], Tuple[dict, List[dict]]], num_images: int) -> Tuple[List[dict], List[dict]]:
    """COCO ``images`` and ``annotations`` of images 1..``num_images``.

    ``write_image(image_id)`` writes one image and returns its COCO image entry and its
    instances; they run in threads (numpy and the PNG encoder release the GIL for most of the
    work: ~1.6x faster on 2 cores), and annotation ids follow image order, whatever order the
    threads finish in.
    """
    images, annotations = [], []
    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, os.cpu_count() or 1)) as pool:
        for image, instances in pool.map(write_image, range(1, num_images + 1)):
            images.append(image)
            for instance in instances:
                annotations.append(dict(instance, id=len(annotations) + 1, image_id=image["id"], iscrowd=0))
    return images, annotations

def write_coco_json(annotation_dir: Path, split: str, dataset: dict) -> str:
    """Write ``annotations/instances_<split>.json`` byte-identically for equal content."""
    json_file = Path(annotation_dir) / f"instances_{split}.json"
    with open(json_file, "w", encoding="utf-8") as f:
        json.dump(dataset, f, sort_keys=True, separators=(",", ":"))
        f.write("\n")
    return str(json_file)

def ensure_generated(
    folder: Path, splits: Iterable[str], generate: Callable[[str], None], *, what: str, caller: str
) -> Dict[str, Tuple[str, str]]:
    """The splits of a generated dataset in ``folder``, generating it first if it is missing.

    ``generate(root)`` writes every split under ``root``: a temporary sibling folder that is then
    renamed into place, so a killed run leaves no half-written dataset, and of two concurrent runs
    the second to finish discards its (identical) copy.

    Returns:
        split -> (instances JSON, image folder).
    """
    folder = Path(folder)
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        try:
            start = time.perf_counter()
            generate(str(tmp))
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
            try:
                os.rename(tmp, folder)
            except OSError:
                if not folder.is_dir():
                    raise
                # Another process finished first; its files are the same as ours.
                logger.info("%s was generated concurrently; discarding this copy", folder)
            else:
                logger.info("Generated %s in %s in %.1f s", what, folder, time.perf_counter() - start)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    located = {}
    for split in splits:
        json_file = folder / "annotations" / f"instances_{split}.json"
        if not json_file.is_file():
            raise FileNotFoundError(
                f"{caller}: {folder} exists but has no {json_file.name}; delete the folder to regenerate it"
            )
        located[split] = (str(json_file), str(folder / split))
    return located


def default_cache_dir(name: str) -> Path:
    """``$GN_DETECTION_CACHE/<name>``, or ``~/.cache/gn_detection/<name>`` when it is unset."""
    base = os.environ.get("GN_DETECTION_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "gn_detection") / name


def dataset_folder(parent: Path, prefix: str, params: dict) -> Path:
    """``parent/<prefix>_<hash of params>``: other sizes, seeds or generator versions never share
    a folder, so stale files are never reused."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode("utf-8")).hexdigest()[:10]
    return Path(parent) / f"{prefix}_{digest}"


def check_split(split: str, caller: str) -> None:
    if not isinstance(split, str) or not split or split in (".", "..") or any(c in split for c in "/\\"):
        raise UserError(f"{caller}: split must be a plain folder name such as 'train', got {split!r}")


def rasterize(polygon: List[float], height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of ``polygon``, exactly as pycocotools decodes it from the annotation."""
    return mask_utils.decode(mask_utils.frPyObjects([polygon], height, width))[..., 0].astype(bool)


def mask_annotation(mask: np.ndarray, category_id: int) -> dict:
    """An annotation without ids: ``bbox`` (XYWH ints, tight on the mask), ``area`` (its pixels)
    and a compressed RLE ``segmentation`` with ``counts`` as str."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return dict(
        category_id=category_id,
        bbox=[int(v) for v in mask_utils.toBbox(rle)],
        area=int(mask.sum()),
        segmentation=dict(size=list(mask.shape), counts=rle["counts"].decode("ascii")),
    )


def erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour erosion; pixels on the image border count as edge."""
    p = np.pad(mask, 1)
    return mask & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """4-neighbour dilation, ``steps`` times."""
    for _ in range(steps):
        p = np.pad(mask, 1)
        mask = mask | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return mask


def smooth_field(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """(H, W) values in 0..1: a random (cells+1)^2 grid, smoothstep-interpolated."""
    grid = rng.random((cells + 1, cells + 1))
    return _interpolation_matrix(height, cells + 1) @ grid @ _interpolation_matrix(width, cells + 1).T

def _interpolation_matrix(n: int, knots: int) -> np.ndarray:
    """(n, knots) weights that spread ``knots`` values over n pixels with smoothstep blending."""
    position = (np.arange(n) + 0.5) / n * (knots - 1)
    left = np.minimum(np.floor(position).astype(int), knots - 2)
    t = position - left
    t = t * t * (3 - 2 * t)  # smoothstep: no creases at the grid lines
    weights = np.zeros((n, knots))
    weights[np.arange(n), left] = 1 - t
    weights[np.arange(n), left + 1] = t
    return weights
