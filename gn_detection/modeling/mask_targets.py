"""The mask head's training targets: each foreground RoI's ground-truth mask, cut out by the RoI
and resampled to the head's M x M output, binary (detectron2's two ways, by ``INPUT.MASK_FORMAT``).

A target dict carries its masks as ``masks``, (G, H, W) uint8 bitmasks, or as ``polygons``,
per instance a list of float64 arrays ``[x0, y0, x1, y1, ...]`` in the image's pixels.
"""
from typing import Dict, List

import numpy as np
import torch
import torchvision
from pycocotools import mask as mask_utils

__all__ = ["crop_bitmasks", "mask_targets", "rasterize_polygons_in_box"]


def rasterize_polygons_in_box(polygons: List[np.ndarray], box: np.ndarray, size: int) -> np.ndarray:
    """Draw one instance's polygons as seen through ``box`` on a ``size`` x ``size`` grid.

    Args:
        polygons: float64 arrays [x0, y0, x1, y1, ...] in image pixels.
        box: float32 (4,) XYXY; its arithmetic stays float32, as detectron2's does, so the
            drawn pixels are detectron2's.
    Returns:
        (size, size) bool.
    """
    if not polygons:
        return np.zeros((size, size), dtype=bool)
    width, height = box[2] - box[0], box[3] - box[1]
    # max(): a degenerate box must not blow the polygon up to infinity.
    scale_x, scale_y = size / max(width, 0.1), size / max(height, 0.1)
    shifted = []
    for p in polygons:
        q = p.copy()
        q[0::2] = (q[0::2] - box[0]) * scale_x
        q[1::2] = (q[1::2] - box[1]) * scale_y
        shifted.append(q)
    rle = mask_utils.merge(mask_utils.frPyObjects(shifted, size, size))
    return mask_utils.decode(rle).astype(bool)


def crop_bitmasks(masks: torch.Tensor, boxes: torch.Tensor, indices: torch.Tensor, size: int) -> torch.Tensor:
    """Cut ``masks[indices[i]]`` by ``boxes[i]`` with aligned RoIAlign and threshold at 0.5.

    Args:
        masks: (G, H, W) bitmasks of any dtype.
        boxes: (M, 4) XYXY in the masks' pixels; indices: (M,) int64 into ``masks``.
    Returns:
        (M, size, size) bool.
    """
    rois = torch.cat([indices[:, None].to(boxes.dtype), boxes], dim=1)
    crops = torchvision.ops.roi_align(masks[:, None].float(), rois.float(), size, 1.0, 0, aligned=True)
    return crops[:, 0] >= 0.5


def mask_targets(target: Dict, boxes: torch.Tensor, indices: torch.Tensor, size: int) -> torch.Tensor:
    """(M, size, size) bool targets for RoIs ``boxes`` matched to ground-truth ``indices`` of
    ``target``, from its ``polygons`` (rasterized in each box) or else its ``masks``."""
    if "polygons" in target:
        polygons = target["polygons"]
        cells = [
            rasterize_polygons_in_box(polygons[i], box, size)
            for i, box in zip(indices.tolist(), boxes.detach().float().cpu().numpy())
        ]
        out = np.stack(cells) if cells else np.zeros((0, size, size), dtype=bool)
        return torch.from_numpy(out).to(boxes.device)
    if "masks" not in target:
        raise KeyError("training with a mask head needs a 'masks' or 'polygons' entry in every target")
    return crop_bitmasks(target["masks"], boxes.detach(), indices, size)
