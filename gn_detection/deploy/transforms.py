"""What runs outside an exported graph, in NumPy: resizing the image before it, and mapping its
detections back to the image after it (boxes scaled, masks pasted). Each follows the eager
model's INPUT.RESIZE_STYLE step for step (modeling/meta_arch/transform.py), so that exported and
eager detections agree.
"""
import math
from typing import Dict, Tuple

import numpy as np
from PIL import Image

__all__ = ["resize_image", "to_image_pixels"]


def resize_image(image: np.ndarray, *, min_size: int, max_size: int, style: str) -> np.ndarray:
    """(H, W, C) float 0-255 -> the (h, w, C) image the model sees at test time."""
    height, width = image.shape[:2]
    elongated = min(height, width) * max_size < max(height, width)
    if style == "torchvision" and not elongated:
        scale = min(min_size / min(height, width), max_size / max(height, width))
        return _bilinear(image, (math.floor(height * scale), math.floor(width * scale)))
    scale = min_size / min(height, width)
    if max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    size = (max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5)))
    if style == "detectron2":  # PIL's bilinear filter on 8-bit pixels, channel by channel
        pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
        channels = [Image.fromarray(pixels[..., c]).resize(size[::-1], Image.BILINEAR) for c in range(image.shape[2])]
        return np.stack([np.asarray(c) for c in channels], axis=-1).astype(np.float32)
    return _bilinear(image, size)


def to_image_pixels(
    detections: Dict[str, np.ndarray], resized: Tuple[int, int], original: Tuple[int, int], style: str
) -> Dict[str, np.ndarray]:
    """The graph's detections (boxes in the resized image, M x M masks) in the original image:
    boxes scaled, and masks (D, H, W) probabilities pasted at their boxes."""
    ratio = np.array([original[1] / resized[1], original[0] / resized[0]] * 2, dtype=np.float32)
    boxes = detections["boxes"].astype(np.float32) * ratio
    out = dict(detections, boxes=boxes)
    masks = detections["masks"][:, 0]
    if style == "torchvision":
        out["masks"] = np.stack([_paste_torchvision(m, b, original) for m, b in zip(masks, boxes)]) if len(boxes) else \
            np.zeros((0, *original), np.float32)
        return out
    # detectron2: boxes clipped to the image, empty ones dropped, masks sampled at pixel centres
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, original[1])
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, original[0])
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    out = {k: v[keep] for k, v in out.items()}
    out["masks"] = np.stack([_paste_grid_sample(m, b, original) for m, b in zip(masks[keep], out["boxes"])]) \
        if keep.any() else np.zeros((0, *original), np.float32)
    return out


def _interpolation(in_size: int, out_size: int, positions: np.ndarray = None, zero_padding: bool = False) -> np.ndarray:
    """(out_size, in_size) weights of linear interpolation at ``positions`` (in input pixels; by
    default F.interpolate's for align_corners=False). Without zero padding, positions are clamped
    into the input as F.interpolate does; with it, samples beyond the edge weigh nothing, as
    grid_sample's padding_mode="zeros"."""
    if positions is None:
        positions = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0)
    low = np.floor(positions).astype(np.int64)
    weight_high = positions - low
    weights = np.zeros((len(positions), in_size), dtype=np.float64)
    rows = np.arange(len(positions))
    for index, weight in ((low, 1 - weight_high), (low + 1, weight_high)):
        if zero_padding:
            inside = (index >= 0) & (index < in_size)
            np.add.at(weights, (rows[inside], index[inside]), weight[inside])
        else:
            np.add.at(weights, (rows, np.clip(index, 0, in_size - 1)), weight)
    return weights


def _bilinear(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """F.interpolate(mode="bilinear", align_corners=False) of an (H, W, ...) array to ``size``."""
    rows, columns = _interpolation(image.shape[0], size[0]), _interpolation(image.shape[1], size[1])
    resized = np.tensordot(rows, image.astype(np.float64), axes=(1, 0))
    return np.moveaxis(np.tensordot(columns, resized, axes=(1, 1)), 0, 1).astype(np.float32)


def _paste_torchvision(mask: np.ndarray, box: np.ndarray, image_size: Tuple[int, int]) -> np.ndarray:
    """torchvision's paste_masks_in_image for one mask: padded by one pixel, its box grown to
    match, rounded to whole pixels, the mask resized into it."""
    height, width = image_size
    size = mask.shape[-1]
    padded = np.pad(mask, 1)
    scale = np.float32((size + 2) / size)
    half = (box[2:] - box[:2]) * np.float32(0.5) * scale
    centre = (box[2:] + box[:2]) * np.float32(0.5)
    x0, y0, x1, y1 = np.concatenate([centre - half, centre + half]).astype(np.int64)  # truncates, as torch
    resized = _bilinear(padded, (max(int(y1 - y0 + 1), 1), max(int(x1 - x0 + 1), 1)))
    out = np.zeros(image_size, dtype=np.float32)
    top, bottom, left, right = max(y0, 0), min(y1 + 1, height), max(x0, 0), min(x1 + 1, width)
    if bottom > top and right > left:
        out[top:bottom, left:right] = resized[top - y0 : bottom - y0, left - x0 : right - x0]
    return out


def _paste_grid_sample(mask: np.ndarray, box: np.ndarray, image_size: Tuple[int, int]) -> np.ndarray:
    """detectron2's pasting: each image pixel's centre sampled bilinearly in the box's mask."""
    height, width = image_size
    size = mask.shape[-1]
    x0, y0, x1, y1 = box.astype(np.float64)
    rows = _interpolation(size, height, (np.arange(height) + 0.5 - y0) / (y1 - y0) * size - 0.5, zero_padding=True)
    columns = _interpolation(size, width, (np.arange(width) + 0.5 - x0) / (x1 - x0) * size - 0.5, zero_padding=True)
    return (rows @ mask.astype(np.float64) @ columns.T).astype(np.float32)
