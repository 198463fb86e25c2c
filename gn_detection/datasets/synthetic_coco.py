"""A COCO instances JSON of COCO train2017's size (118,287 images, 860,001 polygon annotations,
80 categories with COCO's gaps in their ids, about 290 MB), random but reproducible, written as
a stream so that making it takes little memory. For measuring loaders at scale, not for training:
no image files exist."""
import json
import os
from typing import TextIO

import numpy as np

__all__ = ["COCO_TRAIN_SIZE", "write_synthetic_coco"]

COCO_TRAIN_SIZE = dict(num_images=118_287, num_annotations=860_001)
# COCO's 80 category ids run from 1 to 90 with these missing.
_CATEGORY_IDS = [i for i in range(1, 91) if i not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}]
_CHUNK = 10_000  # annotations formatted per write


def write_synthetic_coco(path: str, *, num_images: int, num_annotations: int, seed: int = 0) -> str:
    """Write the JSON to ``path`` (through a temporary file, renamed when complete); return ``path``.

    Images are 480-640 px on a side; annotations are spread over them at random (some images get
    none, as in COCO); each is one polygon of 6-16 points (one in twenty has a second one) with
    its bbox and area, coordinates with 2 decimals as in COCO's files.
    """
    rng = np.random.default_rng(seed)
    image_of_annotation = np.sort(rng.integers(1, num_images + 1, size=num_annotations))
    partial = f"{path}.tmp"
    with open(partial, "w", encoding="utf-8") as f:
        f.write('{"info": {"description": "synthetic, COCO train2017-sized"}, "licenses": [], "categories": ')
        json.dump([{"id": i, "name": f"class_{i}", "supercategory": "thing"} for i in _CATEGORY_IDS], f)
        f.write(', "images": [')
        heights = rng.integers(480, 641, size=num_images)
        widths = rng.integers(480, 641, size=num_images)
        f.write(", ".join(
            f'{{"id": {i + 1}, "file_name": "{i + 1:012d}.jpg", "height": {h}, "width": {w}, "license": 1}}'
            for i, (h, w) in enumerate(zip(heights.tolist(), widths.tolist()))
        ))
        f.write('], "annotations": [')
        for start in range(0, num_annotations, _CHUNK):
            image_ids = image_of_annotation[start : start + _CHUNK]
            _write_annotations(f, rng, image_ids, start, heights, widths, first=start == 0)
        f.write("]}")
    os.replace(partial, path)
    return path


def _write_annotations(f: TextIO, rng, image_ids, first_id: int, heights, widths, first: bool) -> None:
    parts = []
    for offset, image_id in enumerate(image_ids.tolist()):
        height, width = int(heights[image_id - 1]), int(widths[image_id - 1])
        polygons = [_polygon(rng, height, width) for _ in range(2 if rng.random() < 0.05 else 1)]
        xs = np.concatenate([p[0::2] for p in polygons])
        ys = np.concatenate([p[1::2] for p in polygons])
        x0, y0 = xs.min(), ys.min()
        bbox = f"[{x0:.2f}, {y0:.2f}, {xs.max() - x0:.2f}, {ys.max() - y0:.2f}]"
        segmentation = ", ".join("[" + ", ".join(f"{v:.2f}" for v in p.tolist()) + "]" for p in polygons)
        parts.append(
            f'{{"segmentation": [{segmentation}], "area": {float((xs.max() - x0) * (ys.max() - y0)) / 2:.2f}, '
            f'"iscrowd": 0, "image_id": {image_id}, "bbox": {bbox}, '
            f'"category_id": {_CATEGORY_IDS[int(rng.integers(len(_CATEGORY_IDS)))]}, "id": {first_id + offset + 1}}}'
        )
    f.write(("" if first else ", ") + ", ".join(parts))


def _polygon(rng, height: int, width: int) -> np.ndarray:
    """Points on a jittered circle, inside the image: x0, y0, x1, y1, ..."""
    points = int(rng.integers(6, 17))
    radius = rng.uniform(4, min(height, width) / 4)
    cx, cy = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=points))
    r = radius * rng.uniform(0.6, 1.0, size=points)
    return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1).ravel()
