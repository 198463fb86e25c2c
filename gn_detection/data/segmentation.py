"""COCO segmentations (polygons or run-length-encoded masks): rasterized for training and
drawing; RLEs checked without decoding them, so that a corrupt one is named when the JSON is
loaded, not when a training step first draws it."""
from typing import Any, Dict, List, Optional, Union

import numpy as np
import pycocotools.mask as mask_util

from ..utils.errors import UserError

__all__ = ["check_rle", "compressed_runs", "is_valid_polygon", "segmentation_to_mask"]

Segmentation = Union[List[List[float]], Dict[str, Any]]

# A polygon needs three (x, y) points to enclose an area. Fewer would also be misread by
# pycocotools: frPyObjects takes a first polygon of 4 numbers for an XYWH box.
_MIN_POLYGON_COORDS = 6


def segmentation_to_mask(segmentation: Segmentation, height: int, width: int) -> np.ndarray:
    """Rasterize one instance's COCO segmentation.

    Args:
        segmentation: polygons (a list of ``[x0, y0, x1, y1, ...]`` lists, in pixel-edge
            coordinates; those with fewer than 3 points are ignored), or an RLE dict with ``size``
            ``[height, width]`` and ``counts``, uncompressed (a list of run lengths) or compressed
            (a str or bytes).
        height, width: the image's size.

    Returns:
        (height, width) uint8 mask of 0/1; all zeros when no polygon is usable.

    Raises:
        ValueError: an RLE whose size is not (height, width).
        TypeError: ``segmentation`` is neither polygons nor an RLE dict.
    """
    if isinstance(segmentation, dict):
        size = segmentation.get("size")
        if not isinstance(size, (list, tuple)) or list(size) != [height, width]:
            raise UserError(
                f"segmentation_to_mask: RLE size {size} is not the image's "
                f"[height, width] = [{height}, {width}]"
            )
        counts = segmentation.get("counts")
        if isinstance(counts, list):
            rle = mask_util.frPyObjects(segmentation, height, width)
        elif isinstance(counts, (str, bytes)):
            # pycocotools decodes bytes; JSON gives str
            rle = {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        else:
            raise UserError(
                f"segmentation_to_mask: RLE counts must be a list, str or bytes; got {type(counts).__name__}"
            )
        return np.ascontiguousarray(mask_util.decode(rle), dtype=np.uint8)
    if isinstance(segmentation, list):
        polygons = [[float(v) for v in p] for p in segmentation if is_valid_polygon(p)]
        if not polygons:
            return np.zeros((height, width), dtype=np.uint8)
        rle = mask_util.merge(mask_util.frPyObjects(polygons, height, width))
        return np.ascontiguousarray(mask_util.decode(rle), dtype=np.uint8)
    raise UserError(
        f"segmentation_to_mask: segmentation must be a list of polygons or an RLE dict; "
        f"got {type(segmentation).__name__}"
    )


def is_valid_polygon(polygon: Any) -> bool:
    return isinstance(polygon, list) and len(polygon) >= _MIN_POLYGON_COORDS and len(polygon) % 2 == 0



def check_rle(rle: dict, record: dict, where: str, json_file: str) -> dict:
    """``rle`` if its size is its image's and its runs cover exactly that many pixels."""
    if "size" not in rle or "counts" not in rle:
        raise UserError(
            f"{json_file}: {where}: an RLE segmentation needs 'size' and 'counts', got keys {sorted(rle)}"
        )
    expected = [record["height"], record["width"]]
    if rle["size"] != expected:
        raise UserError(
            f"{json_file}: {where}: RLE size {rle['size']} is not the size of image id={record['image_id']}, "
            f"[height, width] = {expected}"
        )
    counts = rle["counts"]
    if not isinstance(counts, str) and not (isinstance(counts, list) and all(isinstance(c, int) for c in counts)):
        raise UserError(
            f"{json_file}: {where}: RLE counts must be a compressed string or a list of run lengths, "
            f"got {type(counts).__name__}"
        )
    runs = compressed_runs(counts) if isinstance(counts, str) else counts
    if runs is None or any(r < 0 for r in runs) or sum(runs) != expected[0] * expected[1]:
        raise UserError(
            f"{json_file}: {where}: RLE counts do not describe a {expected[0]}x{expected[1]} mask "
            f"(their runs must be >= 0 and add up to {expected[0] * expected[1]} pixels); the counts are corrupt"
        )
    return rle


def compressed_runs(counts: str) -> Optional[List[int]]:
    """The run lengths of a compressed RLE string (pycocotools' rleFrString: 5 bits a character
    from "0" on, 0x20 continues, 0x10 is the sign, runs after the second are differences); None
    when the string stops inside a number or holds a character outside that alphabet."""
    runs: List[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position == len(counts):
                return None
            c = ord(counts[position]) - 48
            if not 0 <= c < 64:
                return None
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            position, shift = position + 1, shift + 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs
